"""summary.json: counts, metric stats, tokens, cost, redaction, validity, thresholds, CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import attrs
import numpy as np
import orjson
import pytest

from orchestrator.metrics.names import DISTRIBUTION_METRICS
from orchestrator.metrics.records import (
    ErrorRecord,
    SessionResult,
    ToolCallRecord,
    TurnRecord,
    to_json_line,
)
from orchestrator.metrics.summary import (
    CSV_COLUMNS,
    PRICES,
    Validity,
    build_summary,
    estimate_cost,
    price_for,
    redact_config,
    summary_csv,
    token_totals,
)
from orchestrator.metrics.text import (
    all_failed_warning,
    connection_line,
    planned_sessions,
    run_state_lines,
    summary_text,
)
from orchestrator.metrics.thresholds import ThresholdError
from orchestrator.supervisor.outputs import write_outputs


def turn(sid: str, i: int, **kw: object) -> TurnRecord:
    return TurnRecord(session_id=sid, turn_index=i, t_start_s=i, t_end_s=i + 1.0, **kw)  # type: ignore[arg-type]


def session(sid: str, status: str = "completed", **kw: object) -> SessionResult:
    return SessionResult(session_id=sid, status=status, planned_start_s=0.0, t_end_s=5.0, **kw)  # type: ignore[arg-type]


@pytest.fixture
def run() -> tuple[list[TurnRecord], list[SessionResult]]:
    v2v = [500.0, 700.0, 900.0, 1100.0]
    turns = [
        turn("a", 0, voice_to_voice_ms=v2v[0], ttfb_ms=200.0, response_status="completed",
             tool_calls=[ToolCallRecord(name="f", call_id="1", roundtrip_ms=10.0),
                         ToolCallRecord(name="g", call_id="2", roundtrip_ms=30.0)],
             tool_roundtrip_ms=30.0),
        turn("a", 1, voice_to_voice_ms=v2v[1], ttfb_ms=250.0, tool_roundtrip_ms=50.0),
        turn("b", 0, voice_to_voice_ms=v2v[2], response_status="failed"),
        turn("c", 0, voice_to_voice_ms=v2v[3], errors=[ErrorRecord(code="rate_limit_exceeded", message="x")]),
        turn("c", 1, response_status="cancelled", barge_in_stop_ms=120.0),
    ]  # fmt: skip
    # the same turns as the session actor now records them (status and reason)
    turns[0] = attrs.evolve(turns[0], status="completed")
    turns[2] = attrs.evolve(turns[2], status="failed", reason="server_error: boom")
    turns[4] = attrs.evolve(turns[4], status="interrupted", reason="turn_detected")
    sessions = [
        session("a", connect_ms=50.0, session_ready_ms=90.0, reconnects=1, gap_ms_total=250.0),
        session("b", "failed", reason="TransportClosed: code 1011 internal", connect_ms=70.0),
        session("c", "failed", reason="TransportClosed: code 1006", connect_ms=90.0),
        session("d", "failed", reason="HandshakeRejected: 429"),
        session("e", "cancelled"),
    ]
    return turns, sessions


def test_counts_rates_and_failure_reasons(
    run: tuple[list[TurnRecord], list[SessionResult]],
) -> None:
    turns, sessions = run
    s = build_summary(turns, sessions, late_starts=3, dropped_starts=1)
    t = s["totals"]
    assert (
        t["sessions_total"],
        t["sessions_completed"],
        t["sessions_failed"],
        t["sessions_cancelled"],
    ) == (5, 1, 3, 1)
    assert t["session_error_rate"] == pytest.approx(3 / 5)
    assert (t["turns_total"], t["turns_failed"]) == (5, 2)
    assert t["turn_error_rate"] == pytest.approx(2 / 5)
    assert (t["late_starts"], t["dropped_starts"], t["reconnects"]) == (3, 1, 1)
    assert s["sessions"]["by_status"] == {"cancelled": 1, "completed": 1, "failed": 3}
    assert s["sessions"]["failure_types"] == {"TransportClosed": 2, "HandshakeRejected": 1}
    assert s["sessions"]["failure_reasons"]["HandshakeRejected: 429"] == 1
    assert s["sessions"]["gap_ms_total"] == 250.0
    assert s["turns"]["by_response_status"] == {
        "(none)": 2,
        "cancelled": 1,
        "completed": 1,
        "failed": 1,
    }
    assert s["turns"]["by_error_code"] == {"rate_limit_exceeded": 1}
    assert s["turns"]["by_mode"] == {"audio": 5}
    assert s["turns"]["by_status"] == {
        "(unknown)": 2,  # records without a status (older files)
        "completed": 1,
        "failed": 1,
        "interrupted": 1,
    }
    # failed turns only: the turn's reason, else the first error code
    assert s["turns"]["failure_reasons"] == {"server_error: boom": 1, "rate_limit_exceeded": 1}
    assert s["run"]["duration_s"] == 5.0
    orjson.dumps(s)  # JSON-ready


def test_metric_stats(run: tuple[list[TurnRecord], list[SessionResult]]) -> None:
    turns, sessions = run
    m = build_summary(turns, sessions)["metrics"]
    assert list(m) == list(DISTRIBUTION_METRICS)
    v2v = np.array([500.0, 700.0, 900.0, 1100.0])
    assert m["voice_to_voice_ms"]["count"] == 4
    assert m["voice_to_voice_ms"]["p95"] == pytest.approx(round(float(np.percentile(v2v, 95)), 3))
    assert m["voice_to_voice_ms"]["mean"] == 800.0
    # per-call round trips when listed, else the turn's value
    assert m["tool_roundtrip_ms"]["count"] == 3
    assert (m["tool_roundtrip_ms"]["min"], m["tool_roundtrip_ms"]["max"]) == (10.0, 50.0)
    # session metrics from sessions
    assert m["connect_ms"]["count"] == 3 and m["connect_ms"]["p50"] == 70.0
    assert m["session_ready_ms"]["count"] == 1
    assert m["vad_delay_ms"] == {k: None for k in m["vad_delay_ms"]} | {"count": 0}


def test_token_totals_prefer_session_totals() -> None:
    turns = [
        turn("a", 0, input_tokens=10, output_tokens=5),
        turn("a", 1, input_tokens=10, output_tokens=5),
        turn("b", 0, input_tokens=7, output_tokens=3, input_cached_tokens=2),
    ]
    sessions = [session("a", input_tokens=100, output_tokens=50), session("b")]
    totals = token_totals(turns, sessions)
    assert totals["input_tokens"] == 107
    assert totals["output_tokens"] == 53
    assert totals["input_cached_tokens"] == 2
    assert totals["reasoning_tokens"] == 0


def test_cost_estimate() -> None:
    tokens = {
        "input_tokens": 1_000_000, "input_text_tokens": 200_000, "input_audio_tokens": 800_000,
        "input_cached_tokens": 300_000, "input_cached_text_tokens": 100_000,
        "input_cached_audio_tokens": 200_000,
        "output_tokens": 500_000, "output_text_tokens": 100_000, "output_audio_tokens": 400_000,
    }  # fmt: skip
    usd, note = estimate_cost(tokens, "gpt-realtime")
    expected = 0.1 * 4.0 + 0.1 * 0.40 + 0.1 * 16.0 + 0.6 * 32.0 + 0.2 * 0.40 + 0.4 * 64.0
    assert usd == pytest.approx(expected) and note is None
    assert price_for("gpt-realtime-2025-08-28") is PRICES["gpt-realtime"]
    assert price_for("gpt-realtime-mini") is PRICES["gpt-realtime-mini"]
    assert price_for("gpt-4o-realtime-preview-2024-12-17") is PRICES["gpt-4o-realtime-preview"]
    assert price_for("gpt-realtime-2.1-mini") is None  # not a dated snapshot of a known model
    usd, note = estimate_cost(tokens, "my-llama")
    assert usd is None and "my-llama" in (note or "")
    # cached tokens without split: proportional to input text/audio
    undetailed = {**tokens, "input_cached_text_tokens": 0, "input_cached_audio_tokens": 0}
    usd, note = estimate_cost(undetailed, "gpt-realtime-mini")
    p = PRICES["gpt-realtime-mini"]
    c_text, c_audio = 300_000 * 0.2, 300_000 * 0.8
    expected = (
        (200_000 - c_text) * p.text_in + c_text * p.text_cached + 100_000 * p.text_out
        + (800_000 - c_audio) * p.audio_in + c_audio * p.audio_cached + 400_000 * p.audio_out
    ) / 1e6  # fmt: skip
    assert usd == pytest.approx(expected) and "proportion" in (note or "")
    usd, note = estimate_cost({"input_tokens": 10, "output_tokens": 5}, "gpt-realtime")
    assert usd is None and "split" in (note or "")


def test_summary_cost_uses_config_model() -> None:
    turns = [turn("a", 0, input_tokens=10, input_text_tokens=10, output_tokens=0)]
    s = build_summary(turns, [], config={"model": "gpt-4o-mini-realtime-preview"})
    assert s["cost"]["model"] == "gpt-4o-mini-realtime-preview"
    assert s["cost"]["usd"] == pytest.approx(10 * 0.60 / 1e6)
    assert s["totals"]["cost_usd"] == s["cost"]["usd"]
    assert s["cost"]["prices_per_1m"]["audio_out"] == 20.0
    s = build_summary(turns, [], model="unknown-model")
    assert s["cost"]["usd"] is None and s["cost"]["note"]


def test_redact_config() -> None:
    config = {
        "model": "gpt-realtime",
        "api_key": "sk-live-123456789",
        "OPENAI_API_KEY": "x",
        "max_output_tokens": 4096,
        "target": {
            "url": "wss://res.openai.azure.com/openai/realtime?api-key=abc123&deployment=d",
            "headers": {"Authorization": "Bearer abc", "api-key": "zzz", "X-Trace": "ok"},
            "client_secret": {"value": "ek_1"},
        },
        "notes": ["prefix sk-abcdefghijklmnop suffix", 3, None, True],
        "session_token": "t",
    }
    out = redact_config(config)
    dumped = orjson.dumps(out).decode()
    for secret in ("sk-live", "abc123", "Bearer abc", "zzz", "ek_1", "sk-abcdef"):
        assert secret not in dumped
    assert out["max_output_tokens"] == 4096
    assert out["target"]["headers"] == {"X-Trace": "ok"}
    assert "api-key=[redacted]&deployment=d" in out["target"]["url"]
    assert out["notes"] == ["prefix [redacted] suffix", 3, None, True]
    assert "session_token" not in out and "OPENAI_API_KEY" not in out
    assert redact_config(None) == {}
    s = build_summary([], [], config=config, run={"name": "r1", "token": "t"})
    assert "sk-live" not in orjson.dumps(s).decode() and s["run"]["name"] == "r1"
    assert "token" not in s["run"]


def test_validity_and_thresholds(run: tuple[list[TurnRecord], list[SessionResult]]) -> None:
    turns, sessions = run
    s = build_summary(turns, sessions)
    assert s["validity"] == {"valid": True, "reasons": []}
    assert s["thresholds"] == [] and s["thresholds_ok"] is True
    s = build_summary(
        turns,
        sessions,
        validity=Validity(reasons=["event loop lag p99 120 ms > 50 ms"]),
        thresholds=["voice_to_voice_ms.p95<2000", "sessions_failed==0"],
    )
    assert s["validity"] == {"valid": False, "reasons": ["event loop lag p99 120 ms > 50 ms"]}
    assert [(t["expr"], t["ok"]) for t in s["thresholds"]] == [
        ("voice_to_voice_ms.p95<2000", True),
        ("sessions_failed==0", False),
    ]
    assert s["thresholds"][1]["actual"] == 3.0
    assert s["thresholds_ok"] is False
    assert build_summary([], [], validity={"valid": False})["validity"]["valid"] is False
    with pytest.raises(ThresholdError):
        build_summary(turns, sessions, thresholds=["bogus<1"])


def test_empty_run() -> None:
    s = build_summary([], [])
    assert s["totals"]["session_error_rate"] is None
    assert s["totals"]["turn_error_rate"] is None
    assert all(m["count"] == 0 for m in s["metrics"].values())
    assert s["run"]["duration_s"] == 0.0


def test_summary_csv(run: tuple[list[TurnRecord], list[SessionResult]]) -> None:
    turns, sessions = run
    s = build_summary(turns, sessions)
    rows = list(csv.reader(io.StringIO(summary_csv(s))))
    assert (
        tuple(rows[0])
        == CSV_COLUMNS
        == ("metric", "count", "mean", "p50", "p90", "p95", "p99", "max")
    )
    by_metric = {r[0]: r for r in rows[1:]}
    assert len(rows) - 1 == len(DISTRIBUTION_METRICS)
    v = by_metric["voice_to_voice_ms"]
    assert int(v[1]) == 4 and float(v[2]) == 800.0 and float(v[7]) == 1100.0
    assert float(v[5]) == s["metrics"]["voice_to_voice_ms"]["p95"]
    assert by_metric["vad_delay_ms"][1:] == ["0", "", "", "", "", "", ""]


def test_summary_text(run: tuple[list[TurnRecord], list[SessionResult]]) -> None:
    turns, sessions = run
    s = build_summary(
        turns,
        sessions,
        thresholds=["sessions_failed==0"],
        validity=Validity(valid=False, reasons=["lag"]),
    )
    text = summary_text(s)
    assert "sessions: 5 (1 completed, 3 failed, 1 cancelled)" in text
    assert "voice_to_voice_ms" in text and "vad_delay_ms" not in text
    assert "RESULTS NOT VALID: lag" in text
    assert "FAIL  sessions_failed==0" in text


def test_summary_text_lists_top_failure_reasons(
    run: tuple[list[TurnRecord], list[SessionResult]],
) -> None:
    turns, sessions = run
    long_reason = "HandshakeRejected: HTTP 401 " + "x" * 500
    sessions = [*sessions, *(session(f"f{i}", "failed", reason=long_reason) for i in range(3))]
    text = summary_text(build_summary(turns, sessions))
    lines = text.splitlines()
    start = lines.index("session failure reasons (top 3 of 4):")
    shown = lines[start + 1 : start + 4]
    assert shown[0].startswith("  3 x HandshakeRejected: HTTP 401 xxx") and shown[0].endswith("…")
    assert len(shown[0]) <= 2 + len("3 x ") + 200
    assert {line.split(" x ", 1)[1] for line in shown[1:]} <= {
        "TransportClosed: code 1011 internal", "TransportClosed: code 1006", "HandshakeRejected: 429",
    }  # fmt: skip
    assert "turn failure reasons:" in lines
    assert "  1 x server_error: boom" in lines
    assert all_failed_warning(build_summary(turns, sessions)) is None


def test_all_sessions_failed_warning() -> None:
    reason = "HandshakeRejected: websocket handshake rejected with HTTP 401"
    s = build_summary([], [session(str(i), "failed", reason=reason) for i in range(3)])
    assert all_failed_warning(s) == f"all 3 sessions failed: {reason}"
    assert "  3 x " + reason in summary_text(s).splitlines()
    assert all_failed_warning(build_summary([], [])) is None  # nothing ran
    mixed = build_summary([], [session("a", "failed", reason=reason), session("b", "cancelled")])
    assert all_failed_warning(mixed) is None
    assert "failure reasons" not in summary_text(build_summary([], [session("a")]))


def test_turn_status_counts_and_failure_reasons_top_n() -> None:
    lost = "connection lost: TransportClosed: code 1011"
    turns = [
        turn("a", 0, status="failed", reason=lost),
        turn("a", 1, status="failed", reason=lost),
        turn("b", 0, status="failed", reason="no response before the next turn"),
        turn("b", 1, status="cancelled", reason="session completed"),
        turn("b", 2, status="interrupted", reason="client_cancelled"),
        turn("c", 0, status="completed", response_status="failed", status_reason="server_error"),
        *(turn("d", i, status="failed", reason=f"reason {i}") for i in range(30)),
    ]
    s = build_summary(turns, [session("a")])
    assert s["turns"]["by_status"] == {
        "cancelled": 1, "completed": 1, "failed": 33, "interrupted": 1,
    }  # fmt: skip
    assert s["totals"]["turns_failed"] == 34  # cancelled/interrupted are not failures
    reasons = s["turns"]["failure_reasons"]
    assert len(reasons) == 20  # most common 20
    assert list(reasons.items())[0] == (lost, 2)
    assert "session completed" not in reasons and "client_cancelled" not in reasons
    # a failed response on a turn without a reason falls back to its status_reason
    assert reasons.get("server_error") == 1


# --- how the run ended, said first -----------------------------------------------------


def closed_plan(sessions: int) -> dict[str, object]:
    return {"load": {"model": "closed", "concurrency": 20, "sessions": sessions}}


def test_interrupted_run_says_so_first_with_the_sessions_never_started() -> None:
    s = build_summary(
        [], [session(str(i)) for i in range(20)], run={"interrupted": True}, config=closed_plan(40)
    )
    lines = summary_text(s).splitlines()
    assert lines[0].startswith("RUN INTERRUPTED: ")
    assert lines[1] == "sessions planned: 40; started: 20; never started: 20"
    assert lines[2].startswith("sessions: 20 (20 completed")
    assert planned_sessions(s) == 40
    # the whole plan ran: nothing to say
    done = build_summary([], [session(str(i)) for i in range(40)], config=closed_plan(40))
    assert run_state_lines(done) == []
    assert summary_text(done).startswith("sessions: 40 ")


def test_plan_unknown_or_open_model_says_nothing_about_it() -> None:
    sessions = [session("a")]
    open_load = {"load": {"model": "open", "rate": 2.0, "duration_s": 10.0, "sessions": 40}}
    for config in (None, {}, open_load, {"load": {"model": "closed", "sessions": None}}):
        assert planned_sessions(build_summary([], sessions, config=config)) is None
        assert run_state_lines(build_summary([], sessions, config=config)) == []


def test_a_run_that_ended_as_planned_says_nothing_of_its_plan() -> None:
    """A closed model capped by both ``sessions`` and ``duration_s`` ends as planned when
    the duration runs out first: no warning lines however few sessions it started."""
    both = {"load": {"model": "closed", "sessions": 1000, "duration_s": 10.0}}
    s = build_summary([], [session("a")], config=both)
    assert planned_sessions(s) == 1000
    assert run_state_lines(s) == []


def test_aborted_run_says_so_first() -> None:
    abort = {"threshold": "ttfb_ms.p95<1:abort", "reason": "threshold 'ttfb_ms.p95<1:abort' failed"}
    s = build_summary([], [session("a")], run={"aborted": abort}, config=closed_plan(10))
    lines = summary_text(s).splitlines()
    assert lines[:2] == [
        "RUN ABORTED: threshold 'ttfb_ms.p95<1:abort' failed",
        "sessions planned: 10; started: 1; never started: 9",
    ]
    assert not any(line.startswith("RUN INTERRUPTED") for line in lines)
    assert [line for line in lines if line.startswith("RUN ABORTED")] == [lines[0]]  # once


def test_crashed_and_cut_off_results_file_says_so_first(tmp_path: Path) -> None:
    """``report DIR`` of a results file without ``run_end`` whose last line is cut off."""
    results = tmp_path / "results.jsonl"
    head = orjson.dumps({"kind": "run", "run": {"name": "x"}, "config": closed_plan(5)})
    body = b"".join(to_json_line(session(f"s{i}")) for i in range(2))
    results.write_bytes(head + b"\n" + body + b'{"kind":"session","session_id":"s2","sta')
    s = write_outputs(tmp_path).summary
    lines = summary_text(s).splitlines()
    assert lines[:3] == [
        "RUN DID NOT END: no run_end line: the run crashed or is still running",
        "RESULTS TRUNCATED: the last line of the results file was cut off and skipped",
        "sessions planned: 5; with results: 2; 3 not started or not finished",
    ]
    assert lines[3].startswith("sessions: 2 (2 completed")


def test_connection_line_counts_failed_connects_apart_from_handshakes() -> None:
    refused = session("a", "failed", connect_attempts=4, connect_failed=4)
    s = build_summary([], [refused, session("b", connect_attempts=1, connect_failed=0)])
    assert s["connections"]["connect_failed"] == 4
    assert connection_line(s) == (
        "connections: 5 attempts, 4 failed to connect (TCP/TLS), 1 handshakes, 0 refused, "
        "0 reconnected, 0 restarts"
    )
    # no failed connects: every attempt was a handshake
    s = build_summary([], [session("a", connect_attempts=3, connect_failed=0, reconnects=2)])
    assert connection_line(s) == "connections: 3 handshakes, 0 refused, 2 reconnected, 0 restarts"
    # records written before connect_failed existed: attempts, not claimed as handshakes
    s = build_summary([], [session("a", connect_attempts=3, reconnects=2)])
    assert s["connections"]["connect_failed"] is None
    assert connection_line(s) == "connections: 3 attempts, 0 refused, 2 reconnected, 0 restarts"
    # one handshake per session and nothing else: no line
    assert connection_line(build_summary([], [session("a", connect_attempts=1)])) is None
