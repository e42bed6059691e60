"""Latency anchors on the fake clock: client actor and embedded server joined over
``trio.testing.memory_stream_pair()``, server latency model with a fixed 300 ms time to
first audio. Every number is exact because nothing but the plan moves the clock."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing
from session_helpers import NO_VAD, memory_factory, server_config

from orchestrator.metrics.records import read_results, to_json_line
from orchestrator.mockserver import FaultConfig
from orchestrator.protocol import (
    AudioConfig,
    AudioInput,
    SessionConfig,
    Transcription,
    TurnDetection,
)
from orchestrator.session import (
    AudioSource,
    PacingSpec,
    ReconnectPolicy,
    SessionSpec,
    open_session,
)

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
    assert rec.status == "completed" and rec.reason is None and rec.gap_ms == 0.0
    assert rec.user_transcript == "Hello there"  # a text turn: the text sent
    assert b'"kind":"turn"' in to_json_line(rec)
    assert read_results([to_json_line(rec)]).turns == [rec]  # the new fields round-trip
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
    config = NO_VAD
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


async def test_vad_turn_records_the_input_transcription(autojump_clock: object) -> None:
    cfg = server_config(spoken_transcripts=("what time is it",))
    transcribe = AudioInput(transcription=Transcription(model="gpt-4o-transcribe"))
    config = SessionConfig(audio=AudioConfig(input=transcribe))
    spec = SessionSpec(connect=memory_factory(cfg), config=config)
    async with open_session(spec) as session:
        turn = await session.say_audio(AudioSource.synthetic(1000, lead_ms=200))
    assert turn.status == "completed" and turn.mode == "audio"
    assert turn.record.user_transcript == "what time is it" == turn.user_transcript


async def test_a_turn_started_while_disconnected_records_the_gap(autojump_clock: object) -> None:
    cfg = server_config(faults=FaultConfig(close_after_responses=1))
    spec = SessionSpec(
        connect=memory_factory(cfg),
        config=SessionConfig(instructions="brief"),
        reconnect=ReconnectPolicy(max_attempts=2, initial_delay=0.5, jitter=0.0),
    )
    async with open_session(spec) as session:
        first = await session.say_text("one")
        # the server closes after that response: once everything has settled, the link
        # loop is in its 500 ms backoff
        await trio.testing.wait_all_tasks_blocked()
        second = await session.say_text("two")  # queued until the next link is ready
    assert first.record.gap_ms == 0.0  # it had ended before the connection went away
    rec = second.record
    assert rec.status == "completed" and rec.reason is None
    assert exact(rec.gap_ms) == 500.0  # the whole backoff, nothing else
    assert exact(rec.ttfb_ms) == TTFA_MS  # anchored at the request actually sent
    assert exact((rec.t_end_s - rec.t_start_s) * 1000) >= 500.0 + TTFA_MS
    result = session.result
    assert result is not None and result.reconnects == 1 and result.rollovers == 0
    assert exact(result.gap_ms_total) == 500.0
    assert result.audio_frames_dropped == 0  # no audio was on its way


async def test_audio_frames_for_a_lost_connection_are_dropped_and_counted(
    autojump_clock: object,
) -> None:
    # the server closes 1.05 s into the connection, between two 100 ms frames
    cfg = server_config(faults=FaultConfig(close_after_s=1.05))
    spec = SessionSpec(
        connect=memory_factory(cfg),
        pacing=PacingSpec(chunk_ms=CHUNK_MS),
        reconnect=ReconnectPolicy(max_attempts=2, initial_delay=0.1, jitter=0.0),
    )
    src = AudioSource.synthetic(2000, lead_ms=100)
    frames = math.ceil(len(src.samples) / (CHUNK_MS * 24))
    async with open_session(spec) as session:
        turn = await session.say_audio(src)
    rec = turn.record
    assert turn.status == "failed" and rec.status == "failed" and rec.failed
    assert rec.reason and rec.reason.startswith("connection lost: ") and rec.reason == turn.reason
    assert rec.gap_ms == 0.0  # failed the moment the connection went away
    assert rec.user_transcript is None  # no transcription configured, no text sent
    result = session.result
    assert result is not None and result.status == "completed" and result.reconnects == 1
    # frames 1..10 (due up to 1.0 s) went out; every later one was made for the lost
    # connection and is dropped by the next connection's sender
    assert result.audio_frames_dropped == frames - 10 > 0
