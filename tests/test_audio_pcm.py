"""PCM16 helpers: wire base64 encoding, framing, conversions."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from orchestrator.audio import (
    SAMPLE_RATE,
    as_pcm16,
    b64_to_pcm16,
    float_to_pcm16,
    frames,
    ms_for_samples,
    pcm16_to_b64,
    samples_for_ms,
)


def test_sample_rate_is_protocol_rate() -> None:
    assert SAMPLE_RATE == 24000


def test_b64_is_little_endian_pcm16() -> None:
    x = np.array([1, -2, 0x1234, -32768, 32767], dtype=np.int16)
    raw = base64.b64decode(pcm16_to_b64(x))
    assert raw == b"\x01\x00\xfe\xff\x34\x12\x00\x80\xff\x7f"


def test_b64_round_trip_and_writable_result() -> None:
    x = np.random.default_rng(3).integers(-32768, 32768, 4801).astype(np.int16)
    y = b64_to_pcm16(pcm16_to_b64(x))
    assert y.dtype == np.int16
    np.testing.assert_array_equal(x, y)
    y[0] = 5  # must not be a read-only view of the decoded bytes
    assert b64_to_pcm16("").size == 0


def test_b64_accepts_in_range_int_arrays_and_rejects_others() -> None:
    assert pcm16_to_b64(np.array([1, -1], dtype=np.int64)) == pcm16_to_b64(
        np.array([1, -1], dtype=np.int16)
    )
    with pytest.raises(ValueError, match="outside the int16 range"):
        pcm16_to_b64(np.array([40000]))
    with pytest.raises(TypeError, match="float_to_pcm16"):
        pcm16_to_b64(np.array([0.5]))
    with pytest.raises(ValueError, match="1-D"):
        pcm16_to_b64(np.zeros((2, 2), np.int16))


def test_b64_decode_errors() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        b64_to_pcm16(base64.b64encode(b"abc").decode())
    with pytest.raises(ValueError, match="not valid base64"):
        b64_to_pcm16("@@@@")


def test_frames_even_split_and_partial_tail() -> None:
    sig = np.arange(24000 * 2 + 100, dtype=np.int16)
    out = list(frames(sig, 100))
    assert [len(f) for f in out] == [2400] * 20 + [100]
    np.testing.assert_array_equal(np.concatenate(out), sig)
    assert list(frames(sig[:0], 20)) == []


def test_frames_fractional_sample_frames_do_not_drift() -> None:
    # 10 ms at 22.05 kHz is 220.5 samples: lengths alternate, boundaries stay on the clock
    sig = np.zeros(22050, np.int16)
    lens = [len(f) for f in frames(sig, 10, rate=22050)]
    assert sum(lens) == 22050 and len(lens) == 100
    assert set(lens) == {220, 221}
    assert sum(lens[:10]) == 2205


def test_frames_rejects_bad_args() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        list(frames(np.zeros(10, np.int16), 0))
    with pytest.raises(ValueError, match="rate"):
        list(frames(np.zeros(10, np.int16), 10, rate=0))


def test_conversions() -> None:
    assert samples_for_ms(100) == 2400
    assert samples_for_ms(10, 22050) == 220  # 220.5 rounds half to even
    assert ms_for_samples(2400) == 100.0
    np.testing.assert_array_equal(
        float_to_pcm16(np.array([0.4, 0.6, -1.5, 40000.0, -40000.0])),
        np.array([0, 1, -2, 32767, -32768], np.int16),
    )
    assert as_pcm16([1, 2]).dtype == np.int16
