"""A scenario's failed expectations are on the failing turn's own record: the turn line
of ``results.jsonl`` (``errors`` with code ``expectation_failed``) and the summary's
``turns.failure_reasons``, besides the session's ``ScenarioFailed`` reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio
import trio.testing
from session_helpers import memory_factory

from orchestrator.cli import main
from orchestrator.metrics import read_results
from orchestrator.metrics.records import TurnRecord
from orchestrator.mockserver import Distribution, LatencyModel, ServerConfig
from orchestrator.scenario import ScenarioDriver, parse_scenario
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
FAST = ["--server-ttfb-ms", "20", "--server-realtime-factor", "0", "--quiet"]


def test_failed_expectation_is_on_the_turn_line_and_in_the_summary(tmp_path: Path) -> None:
    text = (EXAMPLES / "faq_text.toml").read_text()
    text = text.replace(
        'expect_tool_args = { topic = "opening_hours" }', 'expect_tool_args = { topic = "returns" }'
    )
    path = tmp_path / "faq_wrong.toml"
    path.write_text(text)
    out = tmp_path / "out"
    argv = ["run", str(path), "--sessions", "2", "--concurrency", "2", "--out", str(out)]
    assert main([*argv, *FAST]) == 0
    message = (
        'expect_tool_args: no lookup_faq call has arguments containing {"topic":"returns"} '
        '(topic is "opening_hours", expected "returns")'
    )
    lines = [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    turn_lines = [line for line in lines if line["kind"] == "turn"]
    assert len(turn_lines) == 2  # the script stopped at the failing turn
    for line in turn_lines:
        assert line["label"] == "opening hours" and line["status"] == "completed"
        assert [(e["code"], e["message"]) for e in line["errors"]] == [
            ("expectation_failed", message)
        ]
        assert line["errors"][0].get("event_type") is None
    results = read_results(out / "results.jsonl")
    assert all(t.failed for t in results.turns)
    # the session still fails with the same reason as before
    assert {s.reason for s in results.sessions} == {
        f"ScenarioFailed: turn 0 (opening hours): {message}"
    }
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["turns"]["failure_reasons"] == {"expectation_failed": 2}
    assert summary["turns"]["by_error_code"] == {"expectation_failed": 2}
    assert summary["totals"]["turns_failed"] == 2


def test_passing_turns_have_clean_lines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [str(EXAMPLES / "faq_text.toml"), "--sessions", "1", "--out", str(out)]
    assert main(["run", *argv, *FAST]) == 0
    results = read_results(out / "results.jsonl")
    assert [(t.label, t.errors, t.failed) for t in results.turns] == [
        ("opening hours", (), False),
        ("thanks", (), False),
    ]
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["turns"]["failure_reasons"] == {}


# ---------------------------------------------------------------------------- fake clock
def latency(transcription_ms: float) -> LatencyModel:
    return LatencyModel(
        response_created_ms=Distribution.parse("fixed:5"),
        first_delta_ms=Distribution.parse("fixed:300"),
        response_words=Distribution.parse("fixed:4"),
        realtime_factor=2.0,
        transcription_ms=Distribution.parse(f"fixed:{transcription_ms:g}"),
    )


@asynccontextmanager
async def session_for(
    driver: ScenarioDriver, config: ServerConfig, records: list[TurnRecord]
) -> AsyncIterator[Any]:
    spec = SessionSpec(
        connect=memory_factory(config),
        config=driver.session_config(),
        tools=driver.tool_registry(),
        on_turn=records.append,
    )
    async with open_session(spec) as session:
        yield session


def spoken(regex: str) -> ScenarioDriver:
    return ScenarioDriver(
        parse_scenario(
            {
                "name": "heard",
                "session": {"turn_detection": "none", "transcription": True},
                "turns": [
                    {
                        "synth_ms": 600,
                        "commit": "manual",
                        "label": "q",
                        "expect_user_transcript_regex": regex,
                        "expect_transcript_regex": "^zebra$",
                    }
                ],
            }
        )
    )


async def test_user_transcript_known_at_the_end_is_judged_on_the_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    driver = spoken("^goodbye")
    config = ServerConfig(port=0, latency=latency(50), spoken_transcripts=("hello there",))
    records: list[TurnRecord] = []
    async with session_for(driver, config, records) as session:
        (outcome,) = await driver.play(session)
    assert [f.expectation for f in outcome.failures] == [
        "expect_transcript_regex",
        "expect_user_transcript_regex",
    ]
    assert outcome.failures[1].message == "user transcript 'hello there' does not match /^goodbye/"
    (record,) = records
    assert [e.message for e in record.errors] == [
        f"{f.expectation}: {f.message}" for f in outcome.failures
    ]
    assert outcome.turn.expectation_failures == tuple(e.message for e in record.errors)


async def test_user_transcript_arriving_late_is_judged_after_the_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # the transcription comes 3 s after the commit, long after the answer ended: the
    # record (emitted at the end) cannot hold its verdict, the outcome (and so the
    # session's reason) does
    driver = spoken("^goodbye")
    config = ServerConfig(port=0, latency=latency(3000), spoken_transcripts=("hello there",))
    records: list[TurnRecord] = []
    async with session_for(driver, config, records) as session:
        (outcome,) = await driver.play(session)
    (record,) = records
    assert record.user_transcript is None
    assert [e.message.split(":")[0] for e in record.errors] == ["expect_transcript_regex"]
    assert [f.expectation for f in outcome.failures] == [
        "expect_transcript_regex",
        "expect_user_transcript_regex",
    ]
    assert outcome.turn.user_transcript == "hello there"
    # a late transcription that matches passes
    driver = spoken("^hello")
    records.clear()
    async with session_for(driver, config, records) as session:
        (outcome,) = await driver.play(session)
    assert [f.expectation for f in outcome.failures] == ["expect_transcript_regex"]


async def test_a_turn_cut_short_by_the_session_end_is_not_marked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    driver = ScenarioDriver(
        parse_scenario({"name": "n", "turns": [{"say": "hi", "expect_transcript_regex": "^z$"}]})
    )
    config = ServerConfig(port=0, latency=latency(50))
    records: list[TurnRecord] = []
    with trio.move_on_after(0.1):  # before the first answer (300 ms)
        async with session_for(driver, config, records) as session:
            await driver(session)
    (record,) = records
    assert record.status == "cancelled" and record.errors == () and not record.failed
    assert session.result is not None and session.result.status == "cancelled"
