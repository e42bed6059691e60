"""``speak`` turns and ``wait_for_greeting`` in scenario files: validation (without the
voices extra the message says how to get it), synthesis before the clock, each caller's
variant played with its exact speech range, and the embedded server hearing the text
(MockClock, memory streams). Voice caches live under ``tmp_path``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import voices_helpers
from session_helpers import FIXED, memory_factory

from orchestrator.audio.voices import engines, layout
from orchestrator.audio.voices.cache import VoiceCache
from orchestrator.audio.voices.variation import speech_bounds
from orchestrator.mockserver import ServerConfig
from orchestrator.scenario import ScenarioDriver, ScenarioError, ScenarioFailed, parse_scenario
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec

WEATHER_TOOL = {
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "result_template": "It is 18 degrees and sunny in {city}.",
}


@pytest.fixture(autouse=True)
def cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    directory = tmp_path / "voices"
    monkeypatch.setenv(layout.CACHE_ENV, str(directory))
    voices_helpers.calls.clear()
    return directory


def problems(data: dict[str, Any], base_dir: Path | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, base_dir=base_dir)
    return list(info.value.problems)


def test_speak_without_the_voices_extra_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setitem(sys.modules, "hibari", None)  # as if hibari-tts were not installed
    data = {"name": "n", "turns": [{"say": "hi"}, {"speak": "Is it sunny?"}]}
    found = problems(data)
    assert found == [
        (
            "turns[1].speak",
            "engine 'hibari' is not installed: install the voices extra: "
            "pip install 'realtime-orchestrator[voices]'",
        )
    ]
    with pytest.raises(ScenarioError, match=r"turns\[1\]\.speak: engine 'hibari'"):
        parse_scenario(data, origin="f.toml")


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"turns": [{"say": "hi", "voice": "heart"}]}, "turns[0].voice", "only applies to speak"),
        ({"turns": [{"say": "hi", "speed": 1.2}]}, "turns[0].speed", "only applies to speak"),
        ({"turns": [{"speak": " "}]}, "turns[0].speak", "must not be empty"),
        ({"turns": [{"speak": "a", "speed": 9}]}, "turns[0].speed", "must be in [0.25, 4]"),
        ({"turns": [{"speak": "a", "say": "b"}]}, "turns[0].speak", "a turn is one of say, speak"),
        ({"turns": [{"speak": "a", "seed": 1}]}, "turns[0].seed", "only applies to synth_ms"),
        ({"turns": [{"speak": "a", "voice": "nobody"}]}, "turns[0].voice", "has no voice 'nobody'"),
        (
            {"voices": {"voices": ["heart", "emma"]}, "turns": [{"speak": "a"}]},
            "voices.voices[1]",
            "engine 'hibari' has no voice 'emma' offline",
        ),
        (
            {"voices": {"engine": "festival"}, "turns": [{"speak": "a"}]},
            "turns[0].speak",
            "unknown voice engine 'festival'",
        ),
        (
            {"voices": {"speed_range": [1.2, 0.8]}, "turns": [{"say": "a"}]},
            "voices.speed_range",
            "",
        ),
        (
            {"voices": {"snr_db": 10}, "turns": [{"say": "a"}]},
            "voices.snr_db",
            "only applies with noise",
        ),
        ({"voices": {"variants": 0}, "turns": [{"say": "a"}]}, "voices.variants", "[1, 1024]"),
        ({"voices": {"noise": "hum.wav"}, "turns": [{"say": "a"}]}, "voices.noise", "not found"),
        ({"voices": {"colour": "x"}, "turns": [{"say": "a"}]}, "voices.colour", "unknown key"),
        (
            {"session": {"greeting_timeout_ms": 100}, "turns": [{"say": "a"}]},
            "session.greeting_timeout_ms",
            "needs wait_for_greeting = true",
        ),
        (
            {
                "session": {"wait_for_greeting": True, "greeting_timeout_ms": 0},
                "turns": [{"say": "a"}],
            },
            "session.greeting_timeout_ms",
            "must be > 0",
        ),
    ],
)
def test_voice_fields_are_checked_with_their_path(
    data: dict[str, Any], path: str, message: str, tmp_path: Path
) -> None:
    found = problems({"name": "n", **data}, base_dir=tmp_path)
    assert any(p == path and message in m for p, m in found), found


def test_speak_turns_are_valid_with_the_engine_installed(tmp_path: Path) -> None:
    scenario = parse_scenario(
        {
            "name": "n",
            "voices": {"noise": "pink", "snr_db": 15, "jitter_ms": 50, "speed_range": [0.9, 1.1]},
            "turns": [{"speak": "Hello.", "lead_ms": 100, "tail_ms": 400}],
        },
        base_dir=tmp_path,
    )
    assert scenario.turns[0].kind == "speak"
    assert scenario.voices.speed_range == (0.9, 1.1)


async def run_driver(driver: ScenarioDriver, config: ServerConfig, seed: int = 0) -> Any:
    spec = SessionSpec(
        connect=memory_factory(config),
        config=driver.session_config(),
        tools=driver.tool_registry(),
        seed=seed,
    )
    async with open_session(spec) as session:
        outcomes = await driver.play(session)
    return session, outcomes


def fake_voice_scenario(**voices: Any) -> dict[str, Any]:
    return {
        "name": "fake",
        "voices": {"engine": voices_helpers.SPEC, **voices},
        "turns": [
            {"speak": "first line", "label": "one"},
            {"speak": "second line", "voice": "high", "speed": 1.5, "label": "two"},
        ],
    }


async def test_lines_are_synthesized_once_in_prepare_and_played_per_caller(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    cache = VoiceCache(tmp_path / "c")
    scenario = parse_scenario(fake_voice_scenario(noise="white", snr_db=20, jitter_ms=100))
    driver = ScenarioDriver(scenario, cache=cache)
    assert cache.engine_calls == 0  # nothing synthesized at construction
    driver.prepare()
    driver.prepare()
    assert sorted(voices_helpers.calls) == [
        ("first line", "low", 1.0),
        ("second line", "high", 1.5),
    ]
    config = ServerConfig(port=0, latency=FIXED)
    sessions = []
    for seed in (0, 1):
        session, outcomes = await run_driver(driver, config, seed=seed)
        assert [o.ok for o in outcomes] == [True, True]
        sessions.append(session)
    assert cache.engine_calls == 2
    first, second = (s.turns[0].record for s in sessions)
    assert first.mode == "audio" and first.response_status == "completed"
    # anchored on the exact end of speech; the noise bed keeps the server's VAD hearing
    # "speech" through the tail silence (300 ms + up to 100 ms jitter) before its 200 ms
    assert first.vad_delay_ms is not None and 150 <= first.vad_delay_ms <= 650
    sources = [driver._spoken[0].source(seed) for seed in (0, 1)]
    assert sources[0] is not sources[1]  # each caller has its own variant
    clean = cache.clip(driver._spoken[0].line)
    start, end = speech_bounds(clean)
    for source in sources:  # the speech range is the clean clip's, not re-detected
        assert source.speech_end - source.speech_start == end - start


async def test_the_embedded_server_hears_the_spoken_text(
    autojump_clock: trio.testing.MockClock, cache_env: Path
) -> None:
    """The acceptance scenario: speak turns and tool rules, no spoken-transcript hints;
    the user transcript is the spoken text and the tool is called."""
    scenario = parse_scenario(
        {
            "name": "weather",
            "session": {"transcription": True},
            "tools": [WEATHER_TOOL],
            "turns": [
                {
                    "speak": "What is the weather in Paris today?",
                    "expect_tool": "get_weather",
                    "expect_tool_args": {"city": "Paris"},
                    "expect_user_transcript_regex": "^What is the weather in Paris today\\?$",
                },
                {"speak": "Thank you, goodbye.", "expect_no_tool": True},
            ],
            "server": {
                "tool_rules": [
                    {
                        "pattern": "weather in paris",
                        "tool": "get_weather",
                        "arguments": {"city": "Paris"},
                    }
                ]
            },
        }
    )
    driver = ScenarioDriver(scenario, cache=VoiceCache())
    driver.prepare()
    hints = driver.server_hints()
    from orchestrator.mockserver import ToolRule

    config = ServerConfig(
        port=0,
        latency=FIXED,
        hearing_dir=cache_env,
        tool_rules=tuple(
            ToolRule(pattern=p, tool=t, arguments=a) for p, t, a in hints["tool_rules"]
        ),
    )
    session, outcomes = await run_driver(driver, config)
    assert [o.failures for o in outcomes] == [(), ()]
    assert [t.user_transcript for t in session.turns] == [
        "What is the weather in Paris today?",
        "Thank you, goodbye.",
    ]


GREETING = {
    "name": "greeted",
    "session": {"wait_for_greeting": True, "greeting_timeout_ms": 2000},
    "turns": [{"say": "Hi, I need help."}],
}


async def test_waits_for_the_greeting_before_the_first_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    driver = ScenarioDriver(parse_scenario(GREETING))
    config = ServerConfig(port=0, latency=FIXED, greeting="Hello, how can I help you today?")
    session, outcomes = await run_driver(driver, config)
    assert [o.ok for o in outcomes] == [True]
    assert session.result is not None and session.result.status == "completed"
    (turn,) = session.turns
    # The caller speaks only once the greeting has played (first delta at 300 ms, then
    # its whole audio), never over it.
    greeting = session.playback.segments[0]
    assert greeting.dur_ms > 1000
    assert turn.record.t_start_s == pytest.approx(
        greeting.end - session._core.book.run_t0, abs=0.01
    )


async def test_no_greeting_in_time_fails_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    driver = ScenarioDriver(parse_scenario(GREETING))
    config = ServerConfig(port=0, latency=FIXED)  # this server never speaks first
    failed_at = []
    with pytest.RaisesGroup(pytest.RaisesExc(ScenarioFailed, match=r"^no greeting within 2\.0 s$")):
        async with open_session(
            SessionSpec(connect=memory_factory(config), config=driver.session_config())
        ) as session:
            try:
                await driver(session)
            finally:
                failed_at.append(trio.current_time())
    assert failed_at[0] == pytest.approx(2.0, abs=0.05)  # ready at ~0 s, then 2 s of waiting


def test_a_line_with_a_pause_longer_than_the_vad_silence_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two sentences with a pause the server VAD (200 ms silence) would cut: warned at
    prepare, naming the turn; one sentence is not."""
    two = "Sorry, let me stop you there. Just the ending, please."
    driver = ScenarioDriver(
        parse_scenario({"name": "pauses", "turns": [{"speak": two}, {"speak": "And in London?"}]})
    )
    with caplog.at_level("WARNING", logger="orchestrator.scenario.driver"):
        driver.prepare()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert (
        "turns[0].speak: the line has 1 pause(s) longer than vad_silence_ms (200 ms)" in warnings[0]
    )
