"""results.jsonl records: serialization, round trip, tolerant parsing."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from orchestrator.metrics.records import (
    ErrorRecord,
    ResultsFormatError,
    SessionResult,
    TimelinePoint,
    ToolCallRecord,
    TurnRecord,
    append_jsonl,
    parse_results,
    read_results,
    to_json_line,
)


def make_turn(**kw: object) -> TurnRecord:
    base: dict[str, object] = dict(
        session_id="s1",
        turn_index=0,
        label="greeting",
        mode="audio",
        t_start_s=1.25,
        t_end_s=3.5,
        voice_to_voice_ms=812.5,
        ttfb_ms=301.0,
        tool_calls=[ToolCallRecord(name="lookup", call_id="call_1", roundtrip_ms=12.5)],
        tool_roundtrip_ms=12.5,
        response_id="resp_1",
        response_status="completed",
        input_tokens=120,
        input_audio_tokens=100,
        input_text_tokens=20,
        errors=[ErrorRecord(code="bad", message="oops", event_type="error", t_s=3.0)],
        event_counts={"response.output_audio.delta": 42},
        transcript="Hello there",
        status="failed",
        reason="connection lost: TransportClosed: code 1011",
        gap_ms=250.0,
        user_transcript="Hi, what's the weather?",
    )
    base.update(kw)
    return TurnRecord(**base)  # type: ignore[arg-type]


def make_session(**kw: object) -> SessionResult:
    base: dict[str, object] = dict(
        session_id="s1",
        status="failed",
        reason="TransportClosed: code 1011",
        planned_start_s=0.5,
        late_start_ms=1.5,
        connect_ms=80.0,
        session_ready_ms=150.0,
        t_end_s=9.0,
        turns=2,
        reconnects=1,
        gap_ms_total=300.0,
        errors=1,
        events_received=500,
        output_tokens=77,
        rollovers=1,
        protocol_errors=2,
        audio_frames_dropped=7,
    )
    base.update(kw)
    return SessionResult(**base)  # type: ignore[arg-type]


def test_turn_line_is_one_json_object_with_kind_first_and_no_nulls() -> None:
    line = to_json_line(make_turn())
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = orjson.loads(line)
    assert next(iter(data)) == "kind" and data["kind"] == "turn"
    assert "vad_delay_ms" not in data  # None omitted
    assert "status_reason" not in data
    assert data["tool_calls"] == [
        {"name": "lookup", "call_id": "call_1", "roundtrip_ms": 12.5, "ok": True}
    ]
    assert data["errors"][0] == {
        "code": "bad",
        "message": "oops",
        "event_type": "error",
        "t_s": 3.0,
    }
    assert data["voice_to_voice_ms"] == 812.5


def test_round_trip_all_kinds() -> None:
    turn = make_turn()
    session = make_session()
    snap = TimelinePoint(t_s=2.0, active=5, started=6, completed=1, loop_lag_ms=0.5)
    results = read_results([to_json_line(turn), to_json_line(session), to_json_line(snap)])
    assert results.turns == [turn]
    assert results.sessions == [session]
    assert results.snapshots == [snap]
    assert not results.truncated
    assert isinstance(results.turns[0].tool_calls, tuple)
    assert results.turns[0].failed


def test_failed_property() -> None:
    assert not make_turn(errors=[], status=None).failed
    assert not make_turn(errors=[], status="completed").failed
    assert not make_turn(errors=[], response_status="cancelled", status="interrupted").failed
    assert not make_turn(errors=[], status="cancelled").failed
    assert make_turn(errors=[], response_status="failed", status=None).failed
    # a turn failed by a lost connection: no failed response, still a failure
    assert make_turn(errors=[], response_status=None, status="failed").failed


def test_new_fields_are_written_and_read_back() -> None:
    turn = orjson.loads(to_json_line(make_turn()))
    assert (turn["status"], turn["gap_ms"]) == ("failed", 250.0)
    assert turn["reason"].startswith("connection lost")
    assert turn["user_transcript"] == "Hi, what's the weather?"
    session = orjson.loads(to_json_line(make_session()))
    assert (session["rollovers"], session["protocol_errors"]) == (1, 2)
    assert session["audio_frames_dropped"] == 7
    with pytest.raises(ResultsFormatError, match="status"):
        parse_results([orjson.dumps({**turn, "status": "exploded"})])


def test_files_written_before_the_new_fields_still_read() -> None:
    old_turn = {
        "kind": "turn", "session_id": "a", "turn_index": 0, "mode": "text",
        "t_start_s": 0.0, "t_end_s": 1.0, "response_status": "completed",
        "transcript": "hi",
    }  # fmt: skip
    old_session = {
        "kind": "session", "session_id": "a", "status": "completed",
        "planned_start_s": 0.0, "t_end_s": 2.0, "turns": 1, "reconnects": 0,
    }  # fmt: skip
    (turn,), (session,) = parse_results([orjson.dumps(old_turn), orjson.dumps(old_session)])
    assert (turn.status, turn.reason, turn.user_transcript, turn.gap_ms) == (
        None,
        None,
        None,
        0.0,
    )
    assert not turn.failed
    assert (session.rollovers, session.protocol_errors, session.audio_frames_dropped) == (0, 0, 0)


def test_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    good = to_json_line(make_turn()) + to_json_line(make_session())
    partial = to_json_line(make_turn(turn_index=1))[:40]  # crash mid-write, no newline
    path.write_bytes(good + partial)
    results = read_results(path)
    assert results.truncated
    assert [t.turn_index for t in results.turns] == [0]
    assert len(results.sessions) == 1
    turns, sessions = parse_results(str(path))
    assert len(turns) == 1 and len(sessions) == 1


def test_bad_line_in_middle_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(to_json_line(make_turn()) + b"\n{not json\n" + to_json_line(make_session()))
    with pytest.raises(ResultsFormatError, match=r"r\.jsonl:3: not valid JSON"):
        parse_results(path)


def test_wrong_field_type_names_the_field() -> None:
    bad = orjson.dumps(
        {"kind": "turn", "session_id": "a", "turn_index": "x", "t_start_s": 0, "t_end_s": 1}
    )
    with pytest.raises(ResultsFormatError, match=r"<lines>:1: invalid turn record.*turn_index"):
        parse_results([bad])
    with pytest.raises(ResultsFormatError, match="status"):
        parse_results(
            [orjson.dumps({**orjson.loads(to_json_line(make_session())), "status": "meh"})]
        )


def test_missing_required_field_is_an_error_even_on_last_line() -> None:
    line = orjson.dumps({"kind": "session", "session_id": "a", "status": "completed"})
    with pytest.raises(ResultsFormatError, match="planned_start_s"):
        parse_results([line])


def test_unknown_kind_skipped_missing_kind_rejected() -> None:
    lines = [b'{"kind": "future_thing", "x": 1}', to_json_line(make_turn()), b"", b"  "]
    turns, sessions = parse_results(lines)
    assert len(turns) == 1 and sessions == []
    with pytest.raises(ResultsFormatError, match="missing 'kind'"):
        parse_results([b'{"session_id": "a"}', to_json_line(make_turn())])
    with pytest.raises(ResultsFormatError, match="expected a JSON object"):
        parse_results([b"[1, 2]", to_json_line(make_turn())])


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    data = orjson.loads(to_json_line(make_session()))
    data["new_field"] = 1
    _, sessions = parse_results([orjson.dumps(data)])
    assert sessions == [make_session()]


def test_ints_in_float_fields_are_accepted() -> None:
    line = (
        b'{"kind":"turn","session_id":"a","turn_index":0,"t_start_s":0,"t_end_s":1,"ttfb_ms":300}'
    )
    (turn,), _ = parse_results([line.decode()])
    assert turn.ttfb_ms == 300.0 and isinstance(turn.ttfb_ms, float)


def test_append_jsonl_writes_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with open(path, "wb", buffering=1 << 20) as fp:
        append_jsonl(fp, make_turn())
        append_jsonl(fp, make_session())
        # visible to a reader before close: flushed
        assert parse_results(path) == ([make_turn()], [make_session()])
    text = io.StringIO()
    append_jsonl(text, make_session())
    assert text.getvalue().encode() == to_json_line(make_session())
