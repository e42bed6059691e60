"""Scenario files: parsing, validation errors (file + field path + what), the
expectation checker, and WAV / manual-commit turns on the embedded server (MockClock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import orjson
import pytest
import trio
import trio.testing
from session_helpers import memory_factory

from orchestrator import protocol as P
from orchestrator.audio import silence, speech_like, write_wav
from orchestrator.mockserver import Distribution, LatencyModel, ServerConfig, ToolRule
from orchestrator.scenario import (
    Observed,
    ScenarioDriver,
    ScenarioError,
    ScenarioFailed,
    TurnSpec,
    check_turn,
    load_scenario,
    parse_scenario,
)
from orchestrator.scenario.expect import subset_mismatch
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec

MINIMAL = {"name": "n", "turns": [{"say": "hello"}]}


def problems(data: Any, **kw: Any) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, origin="s.toml", **kw)
    assert str(info.value).startswith("scenario s.toml: ")
    return list(info.value.problems)


# ---------------------------------------------------------------------------- parsing
def test_toml_and_json_files_give_the_same_scenario(tmp_path: Path) -> None:
    toml = tmp_path / "a.toml"
    toml.write_text(
        'name = "n"\n[[tools]]\nname = "t"\nresult = { ok = true }\n'
        '[[turns]]\nsay = "hi"\nexpect_tool = "t"\nexpect_tool_args = { x = [1, 2] }\n'
    )
    js = tmp_path / "a.json"
    data = {
        "name": "n",
        "tools": [{"name": "t", "result": {"ok": True}}],
        "turns": [{"say": "hi", "expect_tool": "t", "expect_tool_args": {"x": [1, 2]}}],
    }
    js.write_bytes(orjson.dumps(data))
    a, b = load_scenario(toml), load_scenario(js)
    assert attrs.evolve(a, origin="") == attrs.evolve(b, origin="")
    assert a.origin == str(toml) and a.turns[0].kind == "text"
    assert a.tools[0].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("s.yaml", "", "unsupported file type"),
        ("s.toml", "name = ", "not valid TOML"),
        ("s.json", "{", "not valid JSON"),
        ("s.json", "[1]", "expected a table at the top level, got an array"),
    ],
)
def test_file_level_errors_name_the_file(
    tmp_path: Path, name: str, content: str, needle: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ScenarioError, match=needle) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("turn", "path", "message"),
    [
        (
            {"say": "a", "expect_tool_args": "x"},
            "turns[0].expect_tool_args",
            "expected a table, got a string",
        ),
        ({"sya": "a"}, "turns[0].sya", "unknown key (did you mean 'say'?)"),
        ({"synth_ms": "1500"}, "turns[0].synth_ms", "expected a number, got a string"),
        ({"synth_ms": True}, "turns[0].synth_ms", "expected a number, got a boolean"),
        ({"say": "a", "commit": "vad"}, "turns[0].commit", "only applies to audio turns"),
        (
            {"synth_ms": 500, "commit": "later"},
            "turns[0].commit",
            "must be one of 'auto', 'vad', 'manual', got 'later'",
        ),
        ({"say": "a", "audio": "q.wav"}, "turns[0].audio", "both say and audio given"),
        ({}, "turns[0]", "give what the user says: say, speak, audio or synth_ms"),
        (
            {"say": "a", "expect_tool_args": {"c": 1}},
            "turns[0].expect_tool_args",
            "needs expect_tool",
        ),
        (
            {"say": "a", "expect_tool": "nope"},
            "turns[0].expect_tool",
            "unknown tool 'nope' (tools: none declared)",
        ),
        (
            {"say": "a", "expect_transcript_regex": "("},
            "turns[0].expect_transcript_regex",
            "not a valid regular expression",
        ),
        (
            {"say": "a", "max_voice_to_voice_ms": 900},
            "turns[0].max_voice_to_voice_ms",
            "only measured for audio turns",
        ),
        ({"say": "a", "max_ttfb_ms": 0}, "turns[0].max_ttfb_ms", "must be > 0"),
        (
            {"synth_ms": 500, "barge_in_at_ms": 100},
            "turns[0].barge_in_at_ms",
            "no answer to barge in on",
        ),
        (
            {"say": "a", "expect_status": "interrupted"},
            "turns[0].expect_status",
            "needs the next turn to barge in",
        ),
        (
            {"synth_ms": 500, "commit": "manual"},
            "turns[0].commit",
            "needs session.turn_detection = 'none'",
        ),
        ({"audio": "nowhere.wav"}, "turns[0].audio", "audio file not found"),
    ],
)
def test_turn_errors_name_the_field_path(
    turn: dict[str, Any], path: str, message: str, tmp_path: Path
) -> None:
    found = problems({"name": "n", "turns": [turn]}, base_dir=tmp_path)
    assert any(p == path and message in m for p, m in found), found


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "name": "n",
        "session": {"turn_detection": "none", "vad_silence_ms": 300, "voice": 3},
        "tools": [
            {"name": "bad name", "result_template": "{city}", "parameters": {"type": "object"}}
        ],
        "turns": [{"say": "a"}, {"synth_ms": -1}],
        "extra": 1,
    }
    found = problems(data)
    paths = [p for p, _ in found]
    assert paths == [
        "session.voice",
        "tools[0].name",
        "tools[0].result_template",
        "turns[1].synth_ms",
        "extra",
    ]
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, origin="s.toml")
    assert str(info.value).startswith(
        "scenario s.toml: 5 problems:\n  session.voice: expected a string"
    )


def test_missing_audio_is_reported_with_type_errors_of_other_turns(tmp_path: Path) -> None:
    """A missing WAV in turns[0] and a bad ``say`` in turns[1]: both in one error."""
    data = {
        "name": "n",
        "turns": [
            {"audio": "missing.wav"},
            {"say": 5},
            {"audio": "also_missing.wav", "synth_ms": 100},  # invalid on its own: no file check
            {"audio": "third.wav", "label": "ok"},
        ],
    }
    found = problems(data, base_dir=tmp_path)
    assert [p for p, _ in found] == [
        "turns[1].say",
        "turns[2].synth_ms",
        "turns[0].audio",
        "turns[3].audio",
    ], found
    assert "audio file not found" in found[2][1] and "missing.wav" in found[2][1]
    assert "third.wav" in found[3][1]
    with pytest.raises(ScenarioError, match=r"^scenario s\.toml: 4 problems:"):
        parse_scenario(data, origin="s.toml", base_dir=tmp_path)


def test_every_unreadable_wav_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not a wav")
    write_wav(tmp_path / "quiet.wav", silence(500))
    sc = parse_scenario(
        {"name": "n", "turns": [{"audio": "bad.wav"}, {"say": "hi"}, {"audio": "quiet.wav"}]},
        origin="s.toml",
        base_dir=tmp_path,
    )
    with pytest.raises(ScenarioError) as info:
        ScenarioDriver(sc)
    assert [p for p, _ in info.value.problems] == ["turns[0].audio", "turns[2].audio"]
    assert "no speech found" in info.value.problems[1][1]


def test_cross_field_checks() -> None:
    tool = {"name": "get_weather", "result": "sunny"}
    found = problems(
        {
            "name": "n",
            "session": {"turn_detection": "none", "output_modality": "text"},
            "tools": [tool, tool],
            "turns": [
                {"synth_ms": 500, "commit": "vad"},
                {
                    "synth_ms": 500,
                    "expect_user_transcript_regex": "x",
                    "barge_in_at_ms": 10,
                    "max_barge_in_stop_ms": 100,
                },
            ],
            "server": {"tool_rules": [{"pattern": "w", "tool": "get_wether"}]},
        }
    )
    assert found == [
        ("tools[1].name", "duplicate tool name 'get_weather'"),
        (
            "turns[0].commit",
            "'vad' needs server turn detection, but session.turn_detection = 'none'",
        ),
        (
            "turns[1].max_barge_in_stop_ms",
            "barge_in_stop_ms needs audio output (session.output_modality = 'text')",
        ),
        (
            "turns[1].expect_user_transcript_regex",
            "needs session.transcription = true for audio turns",
        ),
        (
            "server.tool_rules[0].tool",
            "unknown tool 'get_wether' (tools: get_weather, get_weather)",
        ),
    ]


def test_tool_templates_are_checked_and_rendered() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    bad = problems(
        {
            "name": "n",
            "tools": [{"name": "w", "parameters": params, "result_template": "{town} {city!r} {"}],
            "turns": [{"say": "a"}],
        }
    )
    assert bad == [
        (
            "tools[0].result_template",
            "bad template (Single '{' encountered in format string); use {{ and }} for braces",
        )
    ]
    bad = problems(
        {
            "name": "n",
            "tools": [{"name": "w", "parameters": params, "result_template": "{town} {city!r}"}],
            "turns": [{"say": "a"}],
        }
    )
    assert bad == [
        ("tools[0].result_template", "{city}: only plain {name} fields are allowed"),
        ("tools[0].result_template", "uses {town}, which is not a parameter (parameters: city)"),
    ]
    sc = parse_scenario(
        {
            "name": "n",
            "tools": [{"name": "w", "parameters": params, "result_template": "{{ok}} {city}"}],
            "turns": [{"say": "a"}],
        }
    )
    assert sc.tools[0].render({"city": "Oslo", "unit": "C"}) == "{ok} Oslo"
    with pytest.raises(ValueError, match="needs argument 'city'"):
        sc.tools[0].render({})


# ---------------------------------------------------------------------------- expectations
def test_subset_matching() -> None:
    assert subset_mismatch({"city": "Paris"}, {"city": "Paris", "unit": "C"}) is None
    assert (
        subset_mismatch({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1.0, {"c": 2, "d": 3}]}}) is None
    )
    assert (
        subset_mismatch({"city": "Paris"}, {"city": "London"})
        == 'city is "London", expected "Paris"'
    )
    assert subset_mismatch({"n": 1}, {"n": True}) == "n is true, expected 1"
    assert subset_mismatch({"a": {"b": 1}}, {"a": {}}) == "a.b is missing"
    assert subset_mismatch({"l": [1]}, {"l": [1, 2]}) == "l is [1,2], expected [1]"


def test_check_turn_reports_each_failed_expectation() -> None:
    spec = TurnSpec(
        label="q",
        synth_ms=1000,
        expect_tool="get_weather",
        expect_tool_args={"city": "Paris"},
        expect_transcript_regex="sunny",
        max_ttfb_ms=500,
        max_voice_to_voice_ms=800,
    )
    ok = Observed(
        status="completed",
        tool_calls=(("get_weather", '{"city": "Paris"}'),),
        transcript="It is SUNNY",
        metrics={"ttfb_ms": 400.0, "voice_to_voice_ms": 700.0},
    )
    assert check_turn(spec, 3, ok) == []
    bad = attrs.evolve(
        ok,
        tool_calls=(("get_weather", '{"city": "Rome"}'), ("get_weather", "{not json")),
        transcript="rainy",
        metrics={"ttfb_ms": 612.25},
    )
    assert [str(f) for f in check_turn(spec, 3, bad)] == [
        "turn 3 (q): expect_tool_args: no get_weather call has arguments containing "
        '{"city":"Paris"} (city is "Rome", expected "Paris"; arguments are not valid JSON: '
        "'{not json')",
        "turn 3 (q): expect_transcript_regex: assistant transcript 'rainy' does not match /sunny/",
        "turn 3 (q): max_voice_to_voice_ms: voice_to_voice_ms was not measured (budget 800 ms)",
        "turn 3 (q): max_ttfb_ms: ttfb_ms 612.2 ms > 500 ms",
    ]
    none = attrs.evolve(ok, tool_calls=(("lookup", "{}"),))
    assert [f.message for f in check_turn(spec, 0, none)][
        0
    ] == "get_weather was not called (calls: lookup)"
    failed = Observed(status="failed", reason="connection lost")
    assert [(f.expectation, f.message) for f in check_turn(spec, 0, failed)] == [
        ("expect_status", "the turn was failed (connection lost), expected completed")
    ]
    quiet = TurnSpec(say="thanks", expect_no_tool=True)
    assert [f.message for f in check_turn(quiet, 1, none)] == ["expected no tool call, got: lookup"]


# ---------------------------------------------------------------------------- audio files
LATENCY = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:4"),
    realtime_factor=2.0,
    transcription_ms=Distribution.parse("fixed:50"),
)


@asynccontextmanager
async def session_for(driver: ScenarioDriver, config: ServerConfig) -> AsyncIterator[Any]:
    spec = SessionSpec(
        connect=memory_factory(config),
        config=driver.session_config(),
        tools=driver.tool_registry(),
    )
    async with open_session(spec) as session:
        yield session


def write_question(path: Path) -> None:
    write_wav(
        path,
        np.concatenate([silence(100), speech_like(700, seed=3), silence(100)]),
    )


async def test_wav_turn_with_manual_commit(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    (tmp_path / "audio").mkdir()
    write_question(tmp_path / "audio" / "q.wav")
    path = tmp_path / "manual.toml"
    path.write_text(
        'name = "manual"\n[session]\nturn_detection = "none"\ntranscription = true\n'
        '[[tools]]\nname = "hang_up"\nresult = "bye"\n'
        '[[turns]]\naudio = "audio/q.wav"\ncommit = "manual"\nexpect_tool = "hang_up"\n'
        'expect_user_transcript_regex = "^goodbye"\nmax_ttfb_ms = 700\n'
    )
    driver = ScenarioDriver(load_scenario(path))
    config = ServerConfig(
        port=0,
        latency=LATENCY,
        spoken_transcripts=("goodbye now",),
        tool_rules=(ToolRule("goodbye", "hang_up"),),
    )
    async with session_for(driver, config) as session:
        sent = driver.session_config()
        assert sent.audio.input.turn_detection is P.NULL
        (outcome,) = await driver.play(session)
    assert outcome.ok, outcome.failures
    assert outcome.turn.mode == "manual" and outcome.turn.status == "completed"
    # ttfb counts to the first audio: the call (300 ms), the tool, the follow-up (300 ms)
    assert outcome.turn.record.ttfb_ms == pytest.approx(600.0, abs=5.0)
    assert outcome.turn.user_transcript == "goodbye now"


async def test_failed_expectation_raises_scenario_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sc = parse_scenario(
        {
            "name": "n",
            "turns": [
                {"say": "hi", "label": "greet", "expect_transcript_regex": "^zebra$"},
                {"say": "never"},
            ],
        }
    )
    driver = ScenarioDriver(sc)
    with pytest.RaisesGroup(
        pytest.RaisesExc(ScenarioFailed, match=r"^turn 0 \(greet\): expect_transcript_regex: "),
        flatten_subgroups=True,
    ) as info:
        async with session_for(driver, ServerConfig(port=0, latency=LATENCY)) as session:
            await driver(session)
    (exc,) = _leaves(info.value)
    assert isinstance(exc, ScenarioFailed)
    assert [f.expectation for f in exc.failures] == ["expect_transcript_regex"]
    assert len(session.turns) == 1  # the script stopped at the failing turn


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for sub in group.exceptions for leaf in _leaves(sub)]
    return [group]


def test_wav_problems_are_scenario_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not a wav")
    write_wav(tmp_path / "quiet.wav", silence(500))
    for name, needle in (("bad.wav", "bad.wav"), ("quiet.wav", "no speech found")):
        sc = parse_scenario(
            {"name": "n", "turns": [{"audio": name}]}, origin="s.toml", base_dir=tmp_path
        )
        with pytest.raises(ScenarioError, match=needle) as info:
            ScenarioDriver(sc)
        assert info.value.problems[0][0] == "turns[0].audio"
        assert str(info.value).startswith("scenario s.toml: turns[0].audio: ")


async def test_session_config_and_tools_follow_the_file() -> None:
    sc = parse_scenario(
        {
            "name": "n",
            "session": {
                "instructions": "be brief",
                "voice": "verse",
                "vad_threshold": 0.7,
                "vad_silence_ms": 450,
                "transcription": True,
                "tool_choice": "required",
            },
            "tools": [
                {
                    "name": "w",
                    "description": "weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "result_template": "sunny in {city}",
                },
                {"name": "n", "result": {"ok": True, "n": [1, 2]}},
            ],
            "turns": [{"say": "a"}],
        }
    )
    driver = ScenarioDriver(sc)
    cfg = driver.session_config()
    assert cfg.instructions == "be brief" and cfg.output_modalities == ["audio"]
    assert cfg.tool_choice == "required" and cfg.tools is None  # the session adds them
    td = cfg.audio.input.turn_detection
    assert (td.type, td.threshold, td.silence_duration_ms, td.prefix_padding_ms) == (
        "server_vad",
        0.7,
        450,
        300,
    )
    assert cfg.audio.input.transcription.model == "gpt-4o-mini-transcribe"
    assert cfg.audio.output.voice == "verse"
    semantic = parse_scenario({**MINIMAL, "session": {"turn_detection": "semantic_vad"}})
    td = ScenarioDriver(semantic).session_config().audio.input.turn_detection
    assert (td.type, td.threshold) == ("semantic_vad", None)
    registry = driver.tool_registry()
    assert registry is not None
    assert [(t.name, t.description) for t in registry.function_tools()] == [
        ("w", "weather"),
        ("n", None),
    ]
    assert (await registry.call("w", '{"city": "Oslo"}')).output == "sunny in Oslo"
    assert (await registry.call("n", "{}")).output == '{"ok":true,"n":[1,2]}'
    broken = await registry.call("w", "{}")
    assert not broken.ok and "needs argument 'city'" in (broken.error or "")
    assert ScenarioDriver(parse_scenario(MINIMAL)).tool_registry() is None
