"""Synthetic sources and the level meter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.audio import peak_dbfs, rms, rms_dbfs, silence, speech_like, tone, white_noise


def test_silence() -> None:
    s = silence(250)
    assert s.dtype == np.int16 and s.size == 6000 and not s.any()
    assert silence(10, rate=8000).size == 80
    assert rms_dbfs(s) == -math.inf and rms(s) == 0.0


def test_tone_level_frequency_and_phase() -> None:
    x = tone(1000, 1000, dbfs=-20)
    assert x.dtype == np.int16 and x.size == 24000
    assert abs(rms_dbfs(x) - (-20)) < 0.01
    assert abs(peak_dbfs(x) - (-20 + 20 * math.log10(math.sqrt(2)))) < 0.01
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins for a 1 s signal
    assert x[0] == 0 and x[6] > 0  # starts at phase 0, rising
    with pytest.raises(ValueError, match="freq_hz"):
        tone(5000, 10, rate=8000)
    with pytest.raises(ValueError, match="dbfs"):
        tone(100, 10, dbfs=3)


def test_meter_reference_is_full_scale_square() -> None:
    sq = np.tile(np.array([32767, -32768], np.int16), 100)
    assert abs(rms_dbfs(sq)) < 0.001
    assert rms_dbfs(np.zeros(0, np.int16)) == -math.inf
    assert peak_dbfs(np.array([-16384], np.int16)) == pytest.approx(-6.0206, abs=1e-3)


def test_white_noise_level_and_seed() -> None:
    n = white_noise(1000, dbfs=-60, seed=4)
    assert abs(rms_dbfs(n) - (-60)) < 0.1
    np.testing.assert_array_equal(n, white_noise(1000, dbfs=-60, seed=4))
    assert not np.array_equal(n, white_noise(1000, dbfs=-60, seed=5))


def test_speech_like_is_deterministic_per_seed_and_levelled() -> None:
    a = speech_like(3000, seed=7)
    assert a.dtype == np.int16 and a.size == 72000
    np.testing.assert_array_equal(a, speech_like(3000, seed=7))
    assert not np.array_equal(a, speech_like(3000, seed=8))
    assert abs(rms_dbfs(a) - (-20)) < 0.05
    assert abs(rms_dbfs(speech_like(1000, seed=1, dbfs=-35)) - (-35)) < 0.05
    assert speech_like(0).size == 0
    assert speech_like(50).size == 1200  # shorter than one syllable: one syllable


def _zero_runs(x: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """(start, length) of runs of exact zeros at least ``min_len`` long."""
    z = np.concatenate(([0], (x == 0).astype(np.int8), [0]))
    d = np.diff(z)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True) if e - s >= min_len]


@pytest.mark.parametrize("seed", range(6))
def test_speech_like_syllable_structure(seed: int) -> None:
    x = speech_like(10_000, seed=seed, rate=24000)
    gaps = _zero_runs(x, 240)  # gaps between syllables are digital silence (>= 30 ms)
    rate = (len(gaps) + 1) / 10.0
    assert 4.0 <= rate <= 5.0, rate
    assert max(length for _, length in gaps) < 0.150 * 24000
    assert min(length for _, length in gaps) >= 0.025 * 24000
    assert x[:240].any() and x[-240:].any()  # speech starts at once and runs to the end


def test_speech_like_spectrum_is_voice_band() -> None:
    x = speech_like(4000, seed=3).astype(np.float64)
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / 24000)
    voice = p[(f >= 80) & (f <= 4000)].sum() / p.sum()
    assert voice > 0.9
    assert p[f > 4000].sum() > 0  # consonant noise bursts reach above the harmonics
    low = p[(f >= 80) & (f <= 300)].sum() / p.sum()
    assert low > 0.1  # a fundamental in the speaking-pitch range


def test_speech_like_other_rates() -> None:
    x = speech_like(1000, seed=2, rate=8000)
    assert x.size == 8000 and abs(rms_dbfs(x) - (-20)) < 0.05
