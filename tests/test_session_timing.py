"""Latency anchors on the fake clock: client actor and embedded server joined over
``trio.testing.memory_stream_pair()``, server latency model with a fixed 300 ms time to
first audio. Every number is exact because nothing but the plan moves the clock."""

from __future__ import annotations

import math

import pytest
import trio
from session_helpers import memory_factory, server_config

from orchestrator.metrics.records import to_json_line
from orchestrator.protocol import NULL, AudioConfig, AudioInput, SessionConfig, TurnDetection
from orchestrator.session import AudioSource, PacingSpec, SessionSpec, open_session

TTFA_MS = 300.0
SILENCE_MS = 200  # the server's default silence_duration_ms
CHUNK_MS = 100


def exact(value: float | None) -> float:
    assert value is not None
    return round(value, 6)


async def test_text_turn_ttfb_is_the_model_latency(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()), session_id="s1")
    async with open_session(spec) as session:
        turn = await session.say_text("Hello there")
    rec = turn.record
    assert turn.status == "completed" and rec.mode == "text"
    assert exact(rec.ttfb_ms) == TTFA_MS
    assert exact(rec.response_created_ms) == 5.0
    assert exact(rec.first_text_ms) == TTFA_MS
    assert rec.voice_to_voice_ms is None and rec.vad_delay_ms is None
    assert rec.audio_out_ms and rec.audio_out_ms > 0
    assert rec.transcript and rec.transcript == turn.transcript
    assert rec.input_tokens and rec.output_audio_tokens
    assert b'"kind":"turn"' in to_json_line(rec)
    assert session.result is not None and session.result.status == "completed"
    assert session.result.turns == 1 and session.result.output_tokens == rec.output_tokens


@pytest.mark.parametrize("speech_ms", [1000, 1270])
async def test_vad_turn_voice_to_voice_follows_the_plan(
    autojump_clock: object, speech_ms: int
) -> None:
    src = AudioSource.synthetic(speech_ms, lead_ms=200)
    assert src.speech_end is not None
    spec = SessionSpec(
        connect=memory_factory(server_config()), pacing=PacingSpec(chunk_ms=CHUNK_MS)
    )
    async with open_session(spec) as session:
        t_call = trio.current_time()
        turn = await session.say_audio(src)
    rec = turn.record
    assert turn.status == "completed" and rec.mode == "audio"
    assert turn.user_item_id is not None
    # planned anchors come from the audio timeline: t0 + last speech sample / 24 kHz
    speech_end_ms = src.speech_end / 24.0
    assert exact(turn.timer.planned_speech_end - t_call) == round(speech_end_ms / 1000, 6)
    # the server's VAD fires once silence_duration of audio after the speech arrived; a
    # frame is sent when its audio has been spoken, so that is the end of the chunk
    # holding speech_end + silence_duration
    expected_vad = math.ceil((speech_end_ms + SILENCE_MS) / CHUNK_MS) * CHUNK_MS - speech_end_ms
    assert exact(rec.vad_delay_ms) == round(expected_vad, 6)
    assert exact(rec.ttfb_ms) == TTFA_MS
    assert exact(rec.voice_to_voice_ms) == round(expected_vad + TTFA_MS, 6)
    assert rec.pacer_lateness_max_ms == 0.0  # the fake clock never runs late
    assert rec.t_start_s == pytest.approx(0.2)  # speech starts after the 200 ms lead


async def test_manual_commit_turn(autojump_clock: object) -> None:
    config = SessionConfig(audio=AudioConfig(input=AudioInput(turn_detection=NULL)))
    src = AudioSource.synthetic(800, tail_ms=100)
    spec = SessionSpec(connect=memory_factory(server_config()), config=config)
    async with open_session(spec) as session:
        t_call = trio.current_time()
        turn = await session.say_audio(src)
    rec = turn.record
    assert turn.status == "completed" and rec.mode == "manual"
    # commit + response.create go out right after the last frame (audio end = 900 ms)
    assert exact(turn.timer.create_sent_at - t_call) == 0.9
    assert exact(rec.ttfb_ms) == TTFA_MS
    speech_end_ms = src.speech_end / 24.0
    assert exact(rec.voice_to_voice_ms) == round(900 - speech_end_ms + TTFA_MS, 6)
    assert rec.vad_delay_ms is None
    assert turn.user_item_id in session.state.items


async def test_explicit_vad_commit_mode_and_realtime_factor(autojump_clock: object) -> None:
    config = SessionConfig(
        audio=AudioConfig(input=AudioInput(turn_detection=TurnDetection(type="server_vad")))
    )
    src = AudioSource.synthetic(1000, lead_ms=200)
    spec = SessionSpec(
        connect=memory_factory(server_config()),
        config=config,
        pacing=PacingSpec(chunk_ms=50, realtime_factor=2.0),
    )
    async with open_session(spec) as session:
        t_call = trio.current_time()
        turn = await session.say_audio(src, commit="vad")
    assert turn.status == "completed"
    # twice as fast as real time: the planned end of speech is at half the audio time
    assert exact(turn.timer.planned_speech_end - t_call) == round(src.speech_end / 24000 / 2, 6)
    assert exact(turn.record.ttfb_ms) == TTFA_MS
    assert turn.record.vad_delay_ms is not None and turn.record.vad_delay_ms < SILENCE_MS


async def test_g711_session_encodes_input_and_counts_output_at_8_khz(
    autojump_clock: object,
) -> None:
    from orchestrator.protocol import AudioFormat, AudioOutput

    pcmu = AudioFormat(type="audio/pcmu")
    config = SessionConfig(
        audio=AudioConfig(input=AudioInput(format=pcmu), output=AudioOutput(format=pcmu))
    )
    spec = SessionSpec(connect=memory_factory(server_config()), config=config)
    async with open_session(spec) as session:
        turn = await session.say_audio(AudioSource.synthetic(1000, lead_ms=200))
        text = await session.say_text("and now?")
    assert turn.status == "completed" and turn.mode == "audio"
    assert exact(turn.record.ttfb_ms) == TTFA_MS
    assert turn.record.vad_delay_ms is not None
    # same answer length at 8 kHz G.711 as at 24 kHz PCM16: durations, not bytes
    assert text.record.audio_out_ms == pytest.approx(2800.0)


async def test_shared_ticker_paces_frames_on_its_grid(autojump_clock: object) -> None:
    from orchestrator.session import Ticker

    ticker = Ticker(resolution=0.010)
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        spec = SessionSpec(connect=memory_factory(server_config()), pacing=PacingSpec(pacer=ticker))
        await trio.sleep(0.0037)  # start off the ticker's grid
        async with open_session(spec) as session:
            turn = await session.say_audio(AudioSource.synthetic(600, lead_ms=100))
        nursery.cancel_scope.cancel()
    assert turn.status == "completed"
    assert ticker.wakes >= 10  # the frames were released by the shared ticker
    # the audio timeline starts on the ticker grid, so no frame is late
    assert turn.record.pacer_lateness_max_ms == 0.0
    assert round(turn.timer.planned_speech_start * 1000, 6) % 10 == 0
    assert session.turn_records == [turn.record]
