"""The built-in conversation over the embedded server (MockClock, memory streams)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from session_helpers import memory_factory

from orchestrator.mockserver import (
    Distribution,
    FaultConfig,
    LatencyModel,
    ServerConfig,
)
from orchestrator.scenario import BuiltinConversation, ScenarioFailed, voice_session_config
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec

LATENCY = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:4"),
    realtime_factor=2.0,
)


def spec_for(config: ServerConfig) -> SessionSpec:
    return SessionSpec(
        connect=memory_factory(config),
        config=voice_session_config(vad_silence_ms=200),
    )


async def test_one_question_one_answer(autojump_clock: trio.testing.MockClock) -> None:
    config = ServerConfig(port=0, latency=LATENCY)
    conversation = BuiltinConversation(speech_ms=1500, lead_ms=200, tail_ms=300)
    source = conversation.source()
    assert source.duration_ms == 2000
    async with open_session(spec_for(config)) as session:
        await conversation(session)
    assert session.result is not None and session.result.status == "completed"
    (turn,) = session.turns
    record = turn.record
    assert record.label == "question" and record.mode == "audio"
    assert record.response_status == "completed"
    # the server answers exactly 300 ms after speech_stopped (the ttfb anchor) ...
    assert record.ttfb_ms == pytest.approx(300.0, abs=1.0)
    # ... and speech_stopped comes after the VAD's 200 ms of silence past the speech end.
    assert record.vad_delay_ms is not None and 190 <= record.vad_delay_ms <= 320
    assert record.voice_to_voice_ms == pytest.approx(record.vad_delay_ms + 300.0, abs=2.0)


async def test_no_answer_fails_the_conversation(autojump_clock: trio.testing.MockClock) -> None:
    config = ServerConfig(port=0, latency=LATENCY, faults=FaultConfig(error_probability=1.0))
    conversation = BuiltinConversation(speech_ms=500, lead_ms=100, tail_ms=100)
    with pytest.RaisesGroup(pytest.RaisesExc(ScenarioFailed, match="turn 0 \\(question\\) failed")):
        async with open_session(spec_for(config)) as session:
            await conversation(session)


def test_builtin_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError, match="speech_ms"):
        BuiltinConversation(speech_ms=0)
    with pytest.raises(ValueError, match="tail_ms"):
        BuiltinConversation(tail_ms=-1)
