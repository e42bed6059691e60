"""The embedded server hears cached caller lines (``orchestrator.mockserver.hearing``).

Clips are real speech from the hibari engine, written into a temporary voice cache in
the layout of ``orchestrator.audio.voices.layout``; turns are those clips as a client
sends them (silence around, a noise bed, a telephone round trip, G.711 input). The
server-side tests join a client and the server over a memory stream on MockClock.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing
from mockserver_helpers import FAST, mem_connection, next_event, recv_until, send

from orchestrator.audio import (
    float_to_pcm16,
    pcm16_to_b64,
    resample,
    speech_like,
    ulaw_decode,
    ulaw_encode,
    white_noise,
    write_wav,
)
from orchestrator.audio.voices.layout import ClipInfo, clip_key, write_atomic
from orchestrator.mockserver import MockServer, ServerConfig, ToolRule
from orchestrator.mockserver.hearing import MATCH_THRESHOLD, MAX_TURN_S, Hearing, TurnAudio
from orchestrator.mockserver.vad import InputAudio

SENTENCES = (
    "What is the weather in Paris today?",
    "Book a table for two at eight.",
    "Cancel my order please.",
    "I would like to speak to an agent.",
    "Yes, that is correct.",
    "Hello there.",
)


def write_clip(directory: Path, text: str, samples: np.ndarray) -> ClipInfo:
    """Put one clean clip into ``directory`` the way the voice cache does."""
    key = clip_key("hibari", "test", "default", 1.0, text)
    info = ClipInfo(text, "hibari", "test", "default", 1.0, samples.size, directory / f"{key}.wav")
    write_wav(info.wav, samples, 24000)
    write_atomic(directory / f"{key}.json", info.to_json())
    return info


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The clean 24 kHz PCM16 clip of every sentence (synthesized once per module)."""
    hibari = pytest.importorskip("hibari")
    engine = hibari.Hibari(threads=1)
    return {text: float_to_pcm16(engine(text, seed=0) * 32767.0) for text in SENTENCES}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, np.ndarray]) -> Path:
    """A voice cache holding every sentence."""
    directory = tmp_path_factory.mktemp("voices")
    for text, samples in clips.items():
        write_clip(directory, text, samples)
    return directory


# -- what a client does to a clip --------------------------------------------------------


def padded(clip: np.ndarray, lead_ms: int = 400, tail_ms: int = 600) -> np.ndarray:
    return np.concatenate(
        [np.zeros(lead_ms * 24, np.int16), clip, np.zeros(tail_ms * 24, np.int16)]
    )


def with_noise(signal: np.ndarray, speech: np.ndarray, kind: str, snr_db: float) -> np.ndarray:
    """``signal`` plus a white or pink (-3 dB/octave) noise bed ``snr_db`` below the RMS
    of ``speech``."""
    rng = np.random.default_rng(7)
    bed = rng.standard_normal(signal.size)
    if kind == "pink":
        spectrum = np.fft.rfft(bed)
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        bed = np.fft.irfft(spectrum, signal.size)
    loud = speech.astype(np.float64)
    level = np.sqrt(np.mean(loud * loud)) / 10 ** (snr_db / 20)
    bed *= level / np.sqrt(np.mean(bed * bed))
    return float_to_pcm16(signal.astype(np.float64) + bed)


def telephone(signal: np.ndarray) -> np.ndarray:
    """24 kHz -> 8 kHz µ-law round trip -> 24 kHz."""
    narrow = ulaw_decode(ulaw_encode(resample(signal, 24000, 8000)))
    return resample(narrow, 8000, 24000)


# -- the recogniser -----------------------------------------------------------------------


def test_each_sentence_is_heard_and_none_confused(
    cache: Path, clips: dict[str, np.ndarray], tmp_path: Path
) -> None:
    hearing = Hearing(cache)
    assert hearing.clips == len(SENTENCES)
    for text, clip in clips.items():
        result = hearing.match(padded(clip), 24000)
        assert (result.text, round(result.score, 1)) == (text, 1.0)
    # without its own clip, no turn is taken for another sentence
    for missing in SENTENCES:
        others = tmp_path / f"without-{SENTENCES.index(missing)}"
        others.mkdir()
        for text, clip in clips.items():
            if text != missing:
                write_clip(others, text, clip)
        result = Hearing(others).match(padded(clips[missing]), 24000)
        assert result.text is None, (missing, result)
        assert result.score < MATCH_THRESHOLD


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_heard_through_a_noise_bed_at_10_db(
    cache: Path, clips: dict[str, np.ndarray], kind: str
) -> None:
    hearing = Hearing(cache)
    for text, clip in clips.items():
        turn = with_noise(padded(clip, lead_ms=503), clip, kind, 10.0)  # off the frame grid
        assert hearing.hear(turn, 24000) == text


def test_heard_after_leading_silence_and_through_the_telephone_band(
    cache: Path, clips: dict[str, np.ndarray]
) -> None:
    hearing = Hearing(cache)
    for text, clip in clips.items():
        assert hearing.hear(padded(clip, lead_ms=2500, tail_ms=1500), 24000) == text
        assert hearing.hear(telephone(padded(clip)), 24000) == text
        # G.711 input: the server decodes 8 kHz samples
        narrow = ulaw_decode(ulaw_encode(resample(padded(clip), 24000, 8000)))
        assert hearing.hear(narrow, 8000) == text
        noisy = telephone(with_noise(padded(clip), clip, "pink", 10.0))
        assert hearing.hear(noisy, 24000) == text


def test_sound_that_is_no_cached_line_is_not_heard(
    cache: Path, clips: dict[str, np.ndarray]
) -> None:
    hearing = Hearing(cache)
    for seed in range(6):
        result = hearing.match(padded(speech_like(2500, seed=seed)), 24000)
        assert result.text is None and result.score < MATCH_THRESHOLD / 1.5
    assert hearing.match(white_noise(3000, -30.0, seed=1), 24000).text is None
    assert hearing.match(np.zeros(24000, np.int16), 24000).text is None
    assert hearing.match(np.zeros(10, np.int16), 24000).text is None
    # a turn holding only the first half of a line is not that line
    clip = clips["I would like to speak to an agent."]
    assert hearing.match(padded(clip[: clip.size // 2]), 24000).text is None


def test_new_clips_are_found_by_a_rate_limited_rescan(
    tmp_path: Path, clips: dict[str, np.ndarray]
) -> None:
    now = [0.0]
    hearing = Hearing(tmp_path, rescan_interval_s=5.0, clock=lambda: now[0])
    assert hearing.clips == 0
    turn = padded(clips["Hello there."])
    hearing.hear(turn, 24000)  # nothing new: within the interval, no rescan
    assert hearing.rescans == 0
    write_clip(tmp_path, "Hello there.", clips["Hello there."])
    assert hearing.hear(turn, 24000) == "Hello there."  # the directory changed: at once
    assert (hearing.rescans, hearing.clips) == (1, 1)
    other = padded(clips["Cancel my order please."])
    assert hearing.hear(other, 24000) is None
    assert hearing.rescans == 1  # unchanged directory, interval not over
    now[0] = 5.0
    assert hearing.hear(other, 24000) is None
    assert hearing.rescans == 2
    # a server keeps turn audio only when it has something to hear
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = Hearing(empty, rescan_interval_s=5.0, clock=lambda: now[0])
    assert not nothing.has_clips() and nothing.rescans == 0
    write_clip(empty, "Hello there.", clips["Hello there."])
    assert nothing.has_clips() and nothing.rescans == 1
    # a damaged clip is skipped, not fatal, and not read again
    (tmp_path / "0badc0de.json").write_bytes(b'{"text": "x"}')
    broken = write_clip(tmp_path, "Broken.", clips["Yes, that is correct."])
    broken.wav.write_bytes(b"not a wav")
    assert hearing.load_new() == 0
    assert hearing.clips == 1


def test_turn_audio_keeps_the_most_recent_seconds() -> None:
    turn = TurnAudio(8000, max_s=1.0)
    for i in range(30):
        turn.append(np.full(800, i, np.int16))  # 100 ms blocks
    kept = turn.take()
    assert kept.size == 8000
    assert kept[0] == 20 and kept[-1] == 29
    assert turn.take().size == 0
    assert MAX_TURN_S == 30.0


# -- the server ---------------------------------------------------------------------------


def _frames(samples: np.ndarray, per: int, encode: bool = False) -> list[str]:
    out = []
    for i in range(0, samples.size, per):
        chunk = samples[i : i + per]
        audio = (
            base64.b64encode(ulaw_encode(chunk).tobytes()).decode()
            if encode
            else pcm16_to_b64(chunk)
        )
        out.append(send({"type": "input_audio_buffer.append", "audio": audio}))
    return out


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_server_hears_a_noisy_clip_and_its_tool_rule_fires(
    autojump_clock: trio.testing.MockClock, cache: Path, clips: dict[str, np.ndarray]
) -> None:
    text = "What is the weather in Paris today?"
    rule = ToolRule("weather in (\\w+)", "get_weather", '{"city": "Paris"}')
    server = MockServer(ServerConfig(port=0, latency=FAST, hearing_dir=cache, tool_rules=(rule,)))
    turn = with_noise(padded(clips[text]), clips[text], "pink", 10.0)
    async with mem_connection(server) as ws:
        await next_event(ws)
        session = {
            "type": "realtime",
            "tools": [WEATHER_TOOL],
            "audio": {
                "input": {
                    "turn_detection": None,
                    "transcription": {"model": "gpt-4o-transcribe"},
                }
            },
        }
        await ws.send_message(send({"type": "session.update", "session": session}))
        assert (await next_event(ws))["type"] == "session.updated"
        for frame in _frames(turn, 2400):
            await ws.send_message(frame)
        await ws.send_message(send({"type": "input_audio_buffer.commit"}))
        events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
        committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
        completed = events[-1]
        assert completed["transcript"] == text
        deltas = "".join(
            e["delta"]
            for e in events
            if e["type"] == "conversation.item.input_audio_transcription.delta"
        )
        assert deltas.strip() == text
        await ws.send_message(
            send({"type": "conversation.item.retrieve", "item_id": committed["item_id"]})
        )
        item = (await recv_until(ws, "conversation.item.retrieved"))[-1]["item"]
        assert item["content"][0]["transcript"] == text
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert (call["name"], call["arguments"]) == ("get_weather", '{"city": "Paris"}')


async def test_server_vad_turn_in_g711_is_heard_without_hints(
    autojump_clock: trio.testing.MockClock, cache: Path, clips: dict[str, np.ndarray]
) -> None:
    text = "Book a table for two at eight."
    server = MockServer(
        ServerConfig(port=0, latency=FAST, hearing_dir=cache, spoken_transcripts=("scripted hint",))
    )
    narrow = resample(padded(clips[text], lead_ms=300, tail_ms=800), 24000, 8000)
    async with mem_connection(server) as ws:
        await next_event(ws)
        session = {
            "type": "realtime",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": "whisper-1"},
                }
            },
        }
        await ws.send_message(send({"type": "session.update", "session": session}))
        assert (await next_event(ws))["type"] == "session.updated"
        for frame in _frames(narrow, 800, encode=True):
            await ws.send_message(frame)
        events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
        assert events[-1]["transcript"] == text
        assert any(e["type"] == "input_audio_buffer.speech_stopped" for e in events)
        # sound that is no cached line falls back to the scripted hint
        await recv_until(ws, "response.done")
        for frame in _frames(resample(padded(speech_like(1500, seed=3)), 24000, 8000), 800, True):
            await ws.send_message(frame)
        events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
        assert events[-1]["transcript"] == "scripted hint"


def test_turn_audio_is_kept_only_when_the_server_hears(tmp_path: Path) -> None:
    assert MockServer(ServerConfig(port=0)).hearing is None
    server = MockServer(ServerConfig(port=0, hearing_dir=tmp_path / "absent"))
    assert server.hearing is not None and server.hearing.clips == 0
    config = {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None}
    deaf, hearing = InputAudio(config), InputAudio(config, keep_turns=True)
    samples = speech_like(300, seed=1)
    for audio in (deaf, hearing):
        audio.append(samples)
        audio.take()
    assert deaf.turn_audio() is None
    kept = hearing.turn_audio()
    assert kept is not None and np.array_equal(kept, samples)
