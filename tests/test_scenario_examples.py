"""Scenario files played through the library on the embedded server (MockClock, memory
streams): every example of ``examples/scenarios/`` passes, and a failed expectation
fails the session with a reason naming the turn and the expectation.

The sessions are set up exactly as ``orchestrator run SCENARIO`` sets them up
(``prepare`` builds the server config with the scenario's ``[server]`` hints, and
``make_spec`` the session spec), only joined over memory streams instead of sockets.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing
from session_helpers import memory_factory

from orchestrator.cli import build_parser
from orchestrator.cli.run_setup import RunSetup, make_spec, prepare
from orchestrator.protocol import Dialect
from orchestrator.scenario import ScenarioDriver, TurnOutcome
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ListSink, RestartPolicy, RestartType, open_supervisor
from orchestrator.transport import Target

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
URL = "ws://127.0.0.1/v1/realtime?model=gpt-realtime"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``prepare`` without ``--out`` picks ``runs/<stamp>`` under the working directory,
    where the embedded server writes its ground truth: keep that out of the checkout."""
    monkeypatch.chdir(tmp_path)


def setup_for(path: Path, *argv: str) -> tuple[RunSetup, argparse.Namespace]:
    args = build_parser().parse_args(["run", str(path), *argv])
    return prepare(args, env={}), args


@asynccontextmanager
async def embedded(
    path: Path, *argv: str
) -> AsyncIterator[tuple[ScenarioDriver, Callable[[], SessionSpec]]]:
    """The scenario's driver and a factory of its session specs, connected over memory
    streams to one embedded server configured as ``orchestrator run`` would."""
    setup, args = setup_for(path, *argv)
    assert isinstance(setup.conversation, ScenarioDriver)
    assert setup.server_config is not None
    setup.conversation.prepare()  # synthesize the speak lines, as a run does before its clock
    target = Target(url=URL, dialect=Dialect.GA)
    connect = memory_factory(setup.server_config, target=target)
    base = make_spec(setup, target, args)

    def spec() -> SessionSpec:
        return attrs.evolve(base, target=None, connect=connect)

    yield setup.conversation, spec


async def play(path: Path, *argv: str) -> tuple[list[TurnOutcome], Any]:
    async with embedded(path, *argv) as (driver, spec):
        async with open_session(spec()) as session:
            outcomes = await driver.play(session)
    return outcomes, session


def test_examples_exist() -> None:
    names = sorted(p.name for p in EXAMPLES.glob("*.toml"))
    assert names == [
        "barge_in.toml", "faq_text.toml", "greeting.toml", "mcp_docs.toml", "weather_voice.toml"
    ]  # fmt: skip


def test_spoken_examples_carry_no_transcript_hints() -> None:
    """The embedded server hears what the caller says: no example tells it."""
    for path in EXAMPLES.glob("*.toml"):
        assert "spoken_transcripts" not in path.read_text(), path.name


async def test_weather_by_voice_calls_the_tool_for_each_city(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes, session = await play(EXAMPLES / "weather_voice.toml")
    assert [o.failures for o in outcomes] == [(), ()]
    first, second = (o.turn for o in outcomes)
    assert first.mode == second.mode == "audio"
    assert [(c.name, orjson.loads(c.arguments)) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert [orjson.loads(c.arguments) for c in second.tool_calls] == [{"city": "London"}]
    # the answer is built from the tool's templated result
    assert "sunny in Paris" in first.transcript
    # the server heard the spoken line (no hints): the user transcript is that text
    assert first.user_transcript == "What's the weather in Paris today?"
    assert second.user_transcript == "And in London?"
    record = first.record
    assert record.tool_calls[0].ok and record.voice_to_voice_ms is not None
    assert record.tool_roundtrip_ms == pytest.approx(40.0, abs=1.0)  # the tool's delay_ms
    assert session.result.status == "completed"


async def test_barge_in_interrupts_the_long_answer(autojump_clock: trio.testing.MockClock) -> None:
    outcomes, session = await play(EXAMPLES / "barge_in.toml")
    assert [o.failures for o in outcomes] == [(), ()]
    story, interrupt = (o.turn for o in outcomes)
    assert story.status == "interrupted" and story.mode == "text"
    assert interrupt.status == "completed"
    stop = interrupt.record.barge_in_stop_ms
    assert stop is not None and 0 <= stop <= 600
    assert interrupt.user_transcript == "Sorry, stop there and just tell me the ending, please."
    assert session.result.status == "completed"


async def test_greeting_is_awaited_and_measured(autojump_clock: trio.testing.MockClock) -> None:
    outcomes, session = await play(EXAMPLES / "greeting.toml")
    assert [o.failures for o in outcomes] == [()]
    (question,) = (o.turn for o in outcomes)
    assert question.user_transcript == "Hi, when are you open on Saturday?"
    result = session.result
    assert result.status == "completed"
    # ready -> the greeting's first audible sample as played: the server's first-delta
    # latency (no leading silence by default)
    assert result.greeting_ms is not None and 0 < result.greeting_ms < 1500
    assert (
        question.record.ttfa_ms is not None and question.record.ttfa_ms >= question.record.ttfb_ms
    )


async def test_text_faq_uses_the_tool_then_none(autojump_clock: trio.testing.MockClock) -> None:
    outcomes, session = await play(EXAMPLES / "faq_text.toml")
    assert [o.failures for o in outcomes] == [(), ()]
    faq, thanks = (o.turn for o in outcomes)
    assert faq.mode == thanks.mode == "text"
    assert faq.record.audio_out_ms is None  # text only: no audio at all
    assert "FAQ opening_hours" in faq.transcript
    assert thanks.tool_calls == [] and thanks.transcript
    # the history was seeded before the first turn
    roles = [session.state.items[i].role for i in session.state.order[:2]]
    assert roles == ["user", "assistant"]


async def test_mcp_docs_asks_approval_then_calls_the_mcp_tool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes, _ = await play(EXAMPLES / "mcp_docs.toml")
    assert [o.failures for o in outcomes] == [()]
    record = outcomes[0].turn.record
    assert [(c.name, c.status, c.approval) for c in record.mcp_calls] == [
        ("search_docs", "approval_requested", "approved"),
        ("search_docs", "completed", "approved"),
    ]
    assert record.mcp_call_ms is not None and record.mcp_call_ms > 0


async def test_a_denied_mcp_call_never_runs(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    scenario = await trio.Path(EXAMPLES / "mcp_docs.toml").read_text()
    path = trio.Path(tmp_path / "denied.toml")
    await path.write_text(scenario.replace('mcp_approval = "approve"', 'mcp_approval = "deny"'))
    outcomes, _ = await play(Path(path))
    record = outcomes[0].turn.record
    assert [(c.status, c.approval) for c in record.mcp_calls] == [("approval_requested", "denied")]
    assert record.mcp_call_ms is None


def test_mcp_servers_of_a_scenario_are_checked_and_offered() -> None:
    from orchestrator.scenario import load_scenario
    from orchestrator.scenario.loader import parse_scenario

    driver = ScenarioDriver(load_scenario(EXAMPLES / "mcp_docs.toml"))
    (tool,) = driver.session_config().tools
    assert (tool.type, tool.server_label, tool.require_approval) == ("mcp", "docs", "always")
    assert tool.allowed_tools == ["search_docs"]
    registry = driver.tool_registry()
    assert registry is not None and registry.approve_mcp
    with pytest.raises(Exception, match=r"mcp\[0\]\.server_label"):
        parse_scenario({"name": "x", "mcp": [{"server_label": "bad label"}],
                        "turns": [{"say": "hi"}]})  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["weather_voice.toml", "barge_in.toml", "faq_text.toml", "greeting.toml", "mcp_docs.toml"],
)
async def test_every_example_completes_under_the_supervisor(
    autojump_clock: trio.testing.MockClock, name: str
) -> None:
    sink = ListSink()
    async with embedded(EXAMPLES / name) as (driver, spec):
        async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
            handles = [
                await sup.start(attrs.evolve(spec(), session_id=f"s{i}"), driver) for i in range(3)
            ]
    assert [h.result.status for h in handles] == ["completed"] * 3  # type: ignore[union-attr]
    assert len(sink.turns) == 3 * len(driver.scenario.turns)


async def test_failed_expectation_fails_the_session_naming_turn_and_expectation(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    text = (EXAMPLES / "weather_voice.toml").read_text()
    text = text.replace(
        'expect_tool_args = { city = "London" }', 'expect_tool_args = { city = "Rome" }'
    )
    path = tmp_path / "weather_rome.toml"
    path.write_text(text)
    sink = ListSink()
    async with embedded(path) as (driver, spec):
        async with open_supervisor(
            sink=sink, restart=RestartPolicy(RestartType.TEMPORARY), timeline_interval_s=None
        ) as sup:
            handle = await sup.start(spec(), driver)
    result = handle.result
    assert result is not None and result.status == "failed"
    assert result.reason == (
        "ScenarioFailed: turn 1 (follow-up): expect_tool_args: no get_weather call has "
        'arguments containing {"city":"Rome"} (city is "London", expected "Rome")'
    )
    # both turns ran and were recorded; the failure is the script's, not the server's
    assert [t.status for t in sink.turns] == ["completed", "completed"]


def test_readme_from_python_snippet_runs_and_passes() -> None:
    """README "Scenario files" -> "From Python": the snippet, run as it is from the
    repository root (its own in-process server on a loopback port), passes every turn."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("### From Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "server_hints()" in code and "trio.run(main)" in code
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[True, True]", done.stdout + done.stderr[-2000:]
