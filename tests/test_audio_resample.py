"""Polyphase resampler: anti-aliasing, passband flatness, alignment, streaming exactness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.audio import Resampler, resample, rms_dbfs, tone

RATES = [8000, 16000, 22050, 24000, 44100, 48000]
PAIRS = [(r, 24000) for r in RATES if r != 24000] + [(24000, r) for r in RATES if r != 24000]


def _trim(y: np.ndarray, rate: int) -> np.ndarray:
    """Drop 20 ms at both ends (filter start-up/tail)."""
    k = rate // 50
    return y[k:-k]


def _amp_at(y: np.ndarray, rate: int, freq: float) -> float:
    """Amplitude of ``freq`` in ``y`` by projection (y is long enough for sharp bins)."""
    t = np.arange(y.size) / rate
    c = np.dot(y, np.cos(2 * np.pi * freq * t)) * 2 / y.size
    s = np.dot(y, np.sin(2 * np.pi * freq * t)) * 2 / y.size
    return math.hypot(c, s)


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_passband_tones_kept_within_half_db(src: int, dst: int) -> None:
    nyq = min(src, dst) / 2
    for f in (440.0, 0.8 * nyq):
        x = tone(f, 300, dbfs=-10, rate=src)
        y = resample(x, src, dst)
        assert y.dtype == np.int16
        gain = rms_dbfs(_trim(y, dst)) - rms_dbfs(_trim(x, src))
        assert abs(gain) < 0.5, (src, dst, f, gain)


@pytest.mark.parametrize(("src", "dst"), [(s, d) for s, d in PAIRS if d < s])
def test_tones_above_new_nyquist_attenuated_40db(src: int, dst: int) -> None:
    # what would alias into the output must be >= 40 dB down
    nyq = dst / 2
    for frac in (0.0, 0.05, 0.5, 0.95):
        f = nyq + frac * (src / 2 - nyq)
        x = tone(f, 300, dbfs=-3, rate=src)
        y = resample(x, src, dst)
        atten = rms_dbfs(x) - rms_dbfs(_trim(y, dst))
        assert atten >= 40, (src, dst, f, atten)


@pytest.mark.parametrize(("src", "dst"), [(s, d) for s, d in PAIRS if d > s])
def test_upsampling_images_attenuated_40db(src: int, dst: int) -> None:
    # a tone near the old Nyquist produces images at src - f, src + f, ...: measure them
    f = 0.8 * src / 2
    x = tone(f, 500, dbfs=-3, rate=src).astype(np.float64)
    y = _trim(resample(x, src, dst), dst)
    signal = _amp_at(y, dst, f)
    for image in (src - f, src + f):
        if image < dst / 2:
            assert 20 * math.log10(_amp_at(y, dst, image) / signal) <= -40, (src, dst, image)
    # and overall: everything that is not the tone is >= 40 dB down
    t = np.arange(y.size) / dst
    basis = np.stack([np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    resid = y - basis @ coef
    assert rms_dbfs(resid) - rms_dbfs(y) <= -40


def test_output_length_and_time_alignment() -> None:
    # an impulse must land at the same time (group delay compensated)
    for src, dst in [(48000, 24000), (44100, 24000), (24000, 44100), (8000, 24000)]:
        x = np.zeros(src // 10)
        x[src // 20] = 10000.0
        y = resample(x, src, dst)
        assert y.size == math.ceil(x.size * dst / src)
        peak_t = np.argmax(np.abs(y)) / dst
        assert abs(peak_t - 0.05) <= 1.0 / dst, (src, dst, peak_t)


def test_equal_rates_copy_and_empty_input() -> None:
    x = np.arange(10, dtype=np.int16)
    y = resample(x, 24000, 24000)
    np.testing.assert_array_equal(x, y)
    assert y is not x
    assert resample(np.zeros(0, np.int16), 48000, 24000).size == 0


def test_dc_gain_is_unity_and_int16_clipped() -> None:
    y = resample(np.full(4800, 1000, np.int16), 48000, 24000)
    assert np.all(y[100:-100] == 1000)
    loud = np.tile(np.array([32767, -32768], np.int16), 2000)
    z = resample(np.concatenate([np.full(100, 32767, np.int16), loud]), 48000, 44100)
    assert z.dtype == np.int16  # no wrap-around on overshoot


def test_bad_rates() -> None:
    with pytest.raises(ValueError, match="from_rate"):
        Resampler(0, 24000)
    with pytest.raises(ValueError, match="24001"):
        resample(np.zeros(10, np.int16), 24001, 44100)


def _stream(x: np.ndarray, src: int, dst: int, cuts: list[int]) -> np.ndarray:
    r = Resampler(src, dst)
    parts = [r.process(c) for c in np.split(x, sorted(set(cuts)))]
    parts.append(r.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_streaming_equals_whole_exactly_fixed_chunkings(src: int, dst: int) -> None:
    x = np.random.default_rng(src + dst).integers(-20000, 20000, src // 5).astype(np.int16)
    whole = resample(x, src, dst)
    for size in (1, 7, 160, 441, 2400, x.size + 5):
        cuts = list(range(size, x.size, size))
        np.testing.assert_array_equal(_stream(x, src, dst, cuts), whole)


@settings(max_examples=40, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    n=st.integers(0, 3000),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    floats=st.booleans(),
)
def test_streaming_equals_whole_exactly_random(
    pair: tuple[int, int], n: int, cuts: list[int], floats: bool
) -> None:
    src, dst = pair
    x = np.random.default_rng(n).normal(0, 8000, n)
    if not floats:
        x = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    whole = resample(x, src, dst)
    streamed = _stream(x, src, dst, [c for c in cuts if c <= n])
    assert streamed.dtype == whole.dtype
    np.testing.assert_array_equal(streamed, whole)  # bit-identical, floats included


def test_resampler_is_reusable_after_flush() -> None:
    r = Resampler(44100, 24000)
    x = tone(300, 100, rate=44100)
    first = np.concatenate([r.process(x), r.flush()])
    second = np.concatenate([r.process(x), r.flush()])
    np.testing.assert_array_equal(first, second)


def test_int_and_float_paths_agree() -> None:
    # int16 input takes the exact (quantised-tap, BLAS) path, float input the row-sum path;
    # they differ only by float rounding, i.e. at most 1 LSB and almost never
    x = np.random.default_rng(9).integers(-32768, 32768, 4800).astype(np.int16)
    for src, dst in [(24000, 8000), (8000, 24000), (44100, 24000)]:
        exact = resample(x, src, dst).astype(np.int32)
        viafloat = np.rint(np.clip(resample(x.astype(np.float64), src, dst), -32768, 32767))
        diff = np.abs(viafloat - exact)
        assert diff.max() <= 1 and np.count_nonzero(diff) <= exact.size // 1000


def test_int_chunks_must_fit_int16() -> None:
    with pytest.raises(ValueError, match="chunk"):
        Resampler(8000, 24000).process(np.array([40000], np.int32))
