"""Transcription sessions end to end on the embedded server (MockClock, memory streams):
the built-in conversation as a speech-to-text turn, measuring ``transcription_ms``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio
import trio.testing
from session_helpers import memory_factory

from orchestrator.cli import main
from orchestrator.metrics.names import TURN_METRICS
from orchestrator.metrics.records import TurnRecord
from orchestrator.mockserver import Distribution, FaultConfig, LatencyModel, ServerConfig
from orchestrator.scenario import (
    BuiltinConversation,
    ScenarioDriver,
    ScenarioError,
    ScenarioFailed,
    parse_scenario,
)
from orchestrator.scenario.transcription import transcription_session_config
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec

LATENCY = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    transcription_ms=Distribution.parse("fixed:150"),
)
SAID = "what time does the pharmacy close"


def spec_for(config: ServerConfig) -> SessionSpec:
    return SessionSpec(
        connect=memory_factory(config), config=transcription_session_config(vad_silence_ms=200)
    )


async def test_transcription_turn_measures_transcription_ms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = ServerConfig(port=0, latency=LATENCY, spoken_transcripts=(SAID,))
    conversation = BuiltinConversation(speech_ms=1500, lead_ms=200, tail_ms=300)
    async with open_session(spec_for(config)) as session:
        await conversation(session)
    assert session.result is not None and session.result.status == "completed"
    (turn,) = session.turns
    record = turn.record
    assert record.status == "completed" and record.response_status is None
    assert record.user_transcript == SAID
    assert record.ttfb_ms is None and record.voice_to_voice_ms is None
    # .completed comes the seeded 150 ms after speech_stopped
    assert record.vad_delay_ms is not None and record.transcription_ms is not None
    assert record.transcription_ms == pytest.approx(record.vad_delay_ms + 150.0, abs=2.0)
    assert "transcription_ms" in TURN_METRICS


async def test_failed_transcription_fails_the_turn(autojump_clock: trio.testing.MockClock) -> None:
    faults = FaultConfig(transcription_failure_probability=1.0)
    config = ServerConfig(port=0, latency=LATENCY, faults=faults)
    failed = pytest.RaisesExc(ScenarioFailed, match="transcription failed")
    with pytest.RaisesGroup(failed, flatten_subgroups=True):
        async with open_session(spec_for(config)) as session:
            await BuiltinConversation(speech_ms=1000)(session)


async def test_scenario_transcription_session(autojump_clock: trio.testing.MockClock) -> None:
    scenario = parse_scenario(
        {
            "name": "dictation",
            "session": {"type": "transcription", "transcription_model": "whisper-1"},
            "turns": [
                {"synth_ms": 800, "label": "a", "expect_user_transcript_regex": "pharmacy"},
                {"synth_ms": 600, "label": "b"},
            ],
        }
    )
    driver = ScenarioDriver(scenario)
    config = driver.session_config()
    assert config.type == "transcription"
    assert config.audio.input.transcription.model == "whisper-1"
    records: list[TurnRecord] = []
    server = ServerConfig(port=0, latency=LATENCY, spoken_transcripts=(SAID,))
    spec = SessionSpec(connect=memory_factory(server), config=config, on_turn=records.append)
    async with open_session(spec) as session:
        outcomes = await driver.play(session)
    assert [o.failures for o in outcomes] == [(), ()]
    assert [r.status for r in records] == ["completed", "completed"]
    assert all(r.transcription_ms is not None and r.ttfb_ms is None for r in records)


def test_scenario_transcription_settings_are_checked() -> None:
    with pytest.raises(ScenarioError, match="does not apply to type = 'transcription'"):
        parse_scenario(
            {
                "name": "n",
                "session": {"type": "transcription", "voice": "alloy"},
                "turns": [{"synth_ms": 500}],
            }
        )


def test_scenario_transcription_session_has_only_vad_audio_turns() -> None:
    with pytest.raises(ScenarioError, match="only audio turns ended by server VAD"):
        parse_scenario(
            {"name": "n", "session": {"type": "transcription"}, "turns": [{"say": "hi"}]}
        )


def test_cli_run_mode_transcription(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--mode", "transcription", "--sessions", "4", "--concurrency", "2"]
    quick = ["--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100"]
    quick += ["--realtime-factor", "4", "--quiet"]
    assert main([*argv, "--out", str(out), *quick]) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["metrics"]["transcription_ms"]["count"] == 4
    assert summary["validity"]["valid"] is True
    assert not (summary["metrics"].get("ttfb_ms") or {}).get("count")
