"""Tags: every turn and session record carries its scenario name, its turn label and the
user tags (the run's and the scenario file's), through the supervisor and results.jsonl.

Supervised runs use the autojump MockClock and the embedded mock server over memory
streams.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from session_helpers import memory_factory, server_config

from orchestrator.metrics import build_summary, read_results
from orchestrator.metrics.records import to_json_line
from orchestrator.metrics.thresholds import parse_tag
from orchestrator.mockserver import MockServer
from orchestrator.scenario import (
    BuiltinConversation,
    ScenarioError,
    load_scenario,
    voice_session_config,
)
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ListSink, open_supervisor


def test_scenario_file_tags(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "s"\ntags = { team = "voice", suite = "smoke" }\n[[turns]]\nsay = "hi"\n'
    )
    assert load_scenario(path).tags == {"team": "voice", "suite": "smoke"}
    path.write_text('name = "s"\ntags = { "bad key" = "x", n = 1 }\n[[turns]]\nsay = "hi"\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "tags[n]" in str(err.value) and "expected a string" in str(err.value)
    path.write_text('name = "s"\ntags = { "bad key" = "x" }\n[[turns]]\nsay = "hi"\n')
    with pytest.raises(ScenarioError, match=r"tags\[bad key\]: a tag name"):
        load_scenario(path)
    path.write_text('name = "s"\n[[turns]]\nsay = "hi"\n')
    assert load_scenario(path).tags == {}


def test_bad_tags_are_refused_naming_where() -> None:
    with pytest.raises(ValueError, match="SessionSpec.tags: tag 'env' needs a non-empty"):
        SessionSpec(connect=lambda: None, tags={"env": 1})  # type: ignore[arg-type, dict-item]
    with pytest.raises(ValueError, match="SessionSpec.tags: bad tag name 'a b'"):
        SessionSpec(connect=lambda: None, tags={"a b": "x"})


def test_tag_arguments() -> None:
    assert parse_tag("env=staging") == ("env", "staging")
    assert parse_tag(" region = eu-west=1 ") == ("region", "eu-west=1")
    for bad, message in (("env", "expected NAME=VALUE"), ("=x", "bad tag name ''"),
                         ("env=", "needs a non-empty")):  # fmt: skip
        with pytest.raises(ValueError, match=message) as err:
            parse_tag(bad)
        assert repr(bad) in str(err.value)


async def test_bad_run_tags_refused_before_anything_starts() -> None:
    sink = ListSink()
    with pytest.raises(ValueError, match=r"open_supervisor\(tags=...\): tag 'env'"):
        async with open_supervisor(sink=sink, tags={"env": ""}, monitor=False):
            pass  # pragma: no cover
    assert sink.sessions == []


async def test_records_carry_scenario_label_and_tags(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = server_config()
    server = MockServer(config)
    conversation = BuiltinConversation(speech_ms=400, lead_ms=100, tail_ms=100)

    def spec(label: str, tags: dict[str, str]) -> SessionSpec:
        return SessionSpec(
            connect=memory_factory(config, server=server),
            config=voice_session_config(),
            label=label,
            tags=tags,
        )

    sink = ListSink()
    with trio.fail_after(60):
        async with open_supervisor(
            sink=sink, timeline_interval_s=None, tags={"env": "staging", "team": "run"}
        ) as sup:
            a = sup.start_nowait(spec("alpha", {"team": "a", "tier": "1"}), conversation)
            b = sup.start_nowait(spec(conversation.name, {}), conversation)
            await a.wait()
            await b.wait()
    by_scenario = {s.scenario: s for s in sink.sessions}
    assert set(by_scenario) == {"alpha", "builtin:one-question"}
    # the run's tags win over a session's own on a clash
    assert by_scenario["alpha"].tags == {"team": "run", "tier": "1", "env": "staging"}
    assert by_scenario["builtin:one-question"].tags == {"env": "staging", "team": "run"}
    assert len(sink.turns) == 2
    for t in sink.turns:
        session = next(s for s in sink.sessions if s.session_id == t.session_id)
        assert (t.scenario, t.tags, t.label) == (session.scenario, session.tags, "question")

    # through results.jsonl and into the summary's breakdown
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"".join(to_json_line(r) for r in (*sink.turns, *sink.sessions)))
    back = read_results(path)
    assert {(t.scenario, tuple(sorted((t.tags or {}).items()))) for t in back.turns} == {
        (t.scenario, tuple(sorted((t.tags or {}).items()))) for t in sink.turns
    }
    breakdown = build_summary(back.turns, back.sessions)["breakdown"]
    assert set(breakdown["scenario"]) == {"alpha", "builtin:one-question"}
    assert breakdown["label"]["question"]["turns"] == 2


def test_records_without_tags_omit_them() -> None:
    from orchestrator.metrics import SessionResult

    line = to_json_line(SessionResult(session_id="s", status="completed", planned_start_s=0.0,
                                      t_end_s=1.0))  # fmt: skip
    assert b"tags" not in line and b"scenario" not in line and b"refused" not in line


def test_run_tag_options_reach_the_setup_and_the_spec(tmp_path: Path) -> None:
    from test_cli_run import parse

    from orchestrator.cli.run_setup import UsageError, build_target, make_spec, prepare

    scenario = tmp_path / "tagged.toml"
    scenario.write_text(
        'name = "tagged"\ntags = {team = "voice"}\n[[turns]]\nsay = "hello"\n', encoding="utf-8"
    )
    setup = prepare(parse(str(scenario), "--tag", "env=staging", "--out", str(tmp_path / "o")))
    assert setup.tags == {"env": "staging"}
    assert setup.config["tags"] == {"env": "staging"}
    loopback = {"url": "ws://127.0.0.1:9/v1", "provider": "custom", "api_key": None}
    target = build_target({**setup.target_kwargs, **loopback})
    spec = make_spec(setup, target, parse(str(scenario)))
    assert spec.tags == {"team": "voice"}
    with pytest.raises(UsageError, match="--tag 'env': expected NAME=VALUE"):
        prepare(parse("--tag", "env", "--out", str(tmp_path / "o2")))
