"""Energy VAD: Realtime server-VAD event semantics on the audio clock, chunking invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.audio import (
    EnergyVad,
    VadEvent,
    frames,
    silence,
    speech_like,
    threshold_to_dbfs,
    tone,
    white_noise,
)

START, STOP = "speech_started", "speech_stopped"


def _feed_all(vad: EnergyVad, x: np.ndarray, frame_ms: float = 100) -> list[VadEvent]:
    out: list[VadEvent] = []
    for f in frames(x, frame_ms):
        out += vad.feed(f)
    return out


def _window_speech(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Independent reference: which 10 ms windows have RMS >= the threshold level."""
    n = x.size // 240
    w = x[: n * 240].astype(np.float64).reshape(n, 240)
    level = 10 * np.log10(np.maximum((w**2).mean(axis=1), 1e-12) / 32768**2)
    return level >= threshold_to_dbfs(threshold)


def test_threshold_mapping() -> None:
    assert threshold_to_dbfs(0.5) == -45.0
    assert threshold_to_dbfs(0.0) == -90.0 and threshold_to_dbfs(1.0) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        threshold_to_dbfs(1.5)
    loud = tone(500, 500, dbfs=-40)
    assert [e.kind for e in _feed_all(EnergyVad(0.5), loud)] == [START]
    assert _feed_all(EnergyVad(0.6), loud) == []  # 0.6 -> -36 dBFS
    quiet = tone(500, 500, dbfs=-50)
    assert _feed_all(EnergyVad(0.5), quiet) == []
    assert [e.kind for e in _feed_all(EnergyVad(0.4), quiet)] == [START]  # -54 dBFS


def test_silence_and_quiet_noise_are_not_speech() -> None:
    vad = EnergyVad()
    assert _feed_all(vad, silence(2000)) == []
    assert _feed_all(vad, white_noise(5000, dbfs=-60, seed=1)) == []
    assert vad.audio_ms == 7000 and not vad.in_speech


def test_one_utterance_timestamps_match_reference() -> None:
    x = np.concatenate([silence(1000), speech_like(2000, seed=1), silence(1000)])
    events = _feed_all(EnergyVad(), x)
    sp = np.flatnonzero(_window_speech(x))
    onset_ms, last_end_ms = sp[0] * 10, (sp[-1] + 1) * 10
    assert 1000 <= onset_ms <= 1020 and 2950 <= last_end_ms <= 3000
    assert events == [VadEvent(START, onset_ms - 300), VadEvent(STOP, last_end_ms + 200)]


def test_emission_points_on_the_audio_clock() -> None:
    x = np.concatenate([silence(500), tone(300, 700), silence(600)])
    vad = EnergyVad(prefix_padding_ms=300, silence_duration_ms=200)
    seen: list[tuple[int, VadEvent]] = []
    for f in frames(x, 10):
        for e in vad.feed(f):
            seen.append((vad.audio_ms, e))
    # detected after 30 ms of speech; stopped exactly when 200 ms of silence has arrived
    assert seen == [(530, VadEvent(START, 200)), (1400, VadEvent(STOP, 1400))]


def test_prefix_padding_clamped_at_zero() -> None:
    assert _feed_all(EnergyVad(), tone(300, 500))[0] == VadEvent(START, 0)
    x = np.concatenate([silence(200), tone(300, 500)])
    assert _feed_all(EnergyVad(), x)[0] == VadEvent(START, 0)
    assert _feed_all(EnergyVad(prefix_padding_ms=100), x)[0] == VadEvent(START, 100)


def test_silence_duration_controls_splitting() -> None:
    x = np.concatenate([tone(300, 400), silence(300), tone(300, 400), silence(1000)])
    long = _feed_all(EnergyVad(silence_duration_ms=500), x)
    assert long == [VadEvent(START, 0), VadEvent(STOP, 1100 + 500)]
    short = _feed_all(EnergyVad(silence_duration_ms=200), x)
    # second start is clamped at the previous stop (start of the new input buffer)
    assert short == [
        VadEvent(START, 0),
        VadEvent(STOP, 600),
        VadEvent(START, 600),
        VadEvent(STOP, 1300),
    ]


def test_zero_silence_duration_stops_at_first_silent_window() -> None:
    x = np.concatenate([tone(300, 100), silence(100)])
    assert _feed_all(EnergyVad(silence_duration_ms=0), x, 10) == [
        VadEvent(START, 0),
        VadEvent(STOP, 100),
    ]


@pytest.mark.parametrize("seed", range(8))
def test_speech_like_is_one_utterance(seed: int) -> None:
    # syllable gaps are < 150 ms, so even a 150 ms silence duration never splits it
    x = np.concatenate([silence(500), speech_like(3000, seed=seed), silence(500)])
    events = _feed_all(EnergyVad(silence_duration_ms=150), x)
    assert [e.kind for e in events] == [START, STOP]
    assert 200 <= events[0].audio_ms <= 230
    assert 3500 <= events[1].audio_ms <= 3650


def test_short_blip_does_not_start_speech() -> None:
    x = np.concatenate([silence(100), tone(300, 20), silence(500)])
    assert _feed_all(EnergyVad(), x, 10) == []
    assert [e.kind for e in _feed_all(EnergyVad(min_speech_ms=10), x, 10)] == [START, STOP]


def test_reset_drops_speech_and_moves_clamp() -> None:
    vad = EnergyVad()
    assert [e.kind for e in _feed_all(vad, tone(300, 500))] == [START]
    vad.reset()  # e.g. input_audio_buffer.clear
    assert not vad.in_speech
    assert _feed_all(vad, silence(1000)) == []  # no speech_stopped after a reset
    vad.feed(tone(300, 100)[:100])  # speech restarts mid-window
    events = _feed_all(vad, tone(300, 200))
    assert events == [VadEvent(START, 1200)]  # onset 1500 - 300


def test_reset_point_clamps_prefix() -> None:
    vad = EnergyVad()
    _feed_all(vad, silence(1000))
    vad.reset()
    assert _feed_all(vad, np.concatenate([silence(100), tone(300, 300)])) == [VadEvent(START, 1000)]


def test_reconfigure_keeps_clock() -> None:
    vad = EnergyVad()
    _feed_all(vad, tone(300, 300, dbfs=-40))
    assert vad.in_speech
    vad.reconfigure(threshold=0.7, silence_duration_ms=100)  # -27 dBFS: the tone is now silence
    assert _feed_all(vad, tone(300, 300, dbfs=-40)) == [VadEvent(STOP, 400)]
    assert vad.audio_ms == 600


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="threshold"):
        EnergyVad(threshold=-0.1)
    with pytest.raises(ValueError, match="silence_duration_ms"):
        EnergyVad(silence_duration_ms=-1)
    with pytest.raises(ValueError, match="prefix_padding_ms"):
        EnergyVad(prefix_padding_ms=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EnergyVad().feed(np.zeros(10))


def test_other_rate_uses_same_clock() -> None:
    x = np.concatenate(
        [silence(700, rate=8000), tone(300, 500, rate=8000), silence(400, rate=8000)]
    )
    events = []
    vad = EnergyVad(rate=8000)
    for f in frames(x, 20, rate=8000):
        events += vad.feed(f)
    assert events == [VadEvent(START, 400), VadEvent(STOP, 1400)]


_CONVERSATION = np.concatenate(
    [
        silence(300),
        speech_like(1200, seed=11),
        silence(250),
        speech_like(800, seed=12, dbfs=-30),
        silence(600),
        white_noise(400, dbfs=-55, seed=2),
        speech_like(1500, seed=13),
        silence(350),
    ]
)
_REFERENCE = _feed_all(EnergyVad(), _CONVERSATION, 100)


def test_reference_conversation_has_three_turns() -> None:
    assert [e.kind for e in _REFERENCE] == [START, STOP] * 3


@pytest.mark.parametrize("frame_ms", [1, 7.5, 10, 20, 33, 100, 1000, 10_000])
def test_chunking_invariance_fixed_sizes(frame_ms: float) -> None:
    assert _feed_all(EnergyVad(), _CONVERSATION, frame_ms) == _REFERENCE


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, _CONVERSATION.size), max_size=40))
def test_chunking_invariance_random_cuts(cuts: list[int]) -> None:
    vad = EnergyVad()
    events: list[VadEvent] = []
    for chunk in np.split(_CONVERSATION, sorted(set(cuts))):
        events += vad.feed(chunk)
    assert events == _REFERENCE
    assert vad.audio_ms == _CONVERSATION.size // 24
