"""PCM16 mono helpers: sample/ms conversion, framing, base64 transport encoding.

All audio in this package is mono, signed 16-bit (``np.int16``) at 24 kHz unless a
function says otherwise. On the wire (``input_audio_buffer.append`` and
``response.output_audio.delta``) PCM16 is little-endian and base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

SAMPLE_RATE = 24000
"""The Realtime protocol's PCM rate (``audio/pcm`` with ``rate: 24000``)."""

_INT16_MIN = -32768
_INT16_MAX = 32767


def _check_rate(rate: int, name: str = "rate") -> int:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer sample rate in Hz, got {rate!r}")
    return int(rate)


def samples_for_ms(ms: float, rate: int = SAMPLE_RATE) -> int:
    """Number of samples in ``ms`` milliseconds at ``rate`` (rounded to nearest)."""
    rate = _check_rate(rate)
    if ms < 0:
        raise ValueError(f"ms must be >= 0, got {ms!r}")
    return round(Fraction(ms) * rate / 1000)


def ms_for_samples(n: int, rate: int = SAMPLE_RATE) -> float:
    """Duration in milliseconds of ``n`` samples at ``rate``."""
    rate = _check_rate(rate)
    return n * 1000.0 / rate


def as_pcm16(samples: np.ndarray | list[int], *, name: str = "samples") -> np.ndarray:
    """Return ``samples`` as a 1-D ``np.int16`` array (no copy when already one).

    Integer input outside the int16 range and non-integer input are rejected with a
    ``ValueError`` / ``TypeError`` naming ``name``; use :func:`float_to_pcm16` for floats.
    """
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D mono audio, got shape {arr.shape}")
    if arr.dtype == np.int16:
        return arr
    if arr.size == 0:
        return np.zeros(0, np.int16)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{name} must be an integer PCM16 array, got dtype {arr.dtype}"
            " (use float_to_pcm16 for float audio)"
        )
    lo, hi = int(arr.min()), int(arr.max())
    if lo < _INT16_MIN or hi > _INT16_MAX:
        raise ValueError(f"{name} has values outside the int16 range: min {lo}, max {hi}")
    return arr.astype(np.int16)


def float_to_pcm16(x: np.ndarray) -> np.ndarray:
    """Round float audio on the int16 scale (full scale = 32768) to int16, clipping."""
    arr = np.asarray(x, dtype=np.float64)
    return np.clip(np.rint(arr), _INT16_MIN, _INT16_MAX).astype(np.int16)


def pcm16_to_b64(samples: np.ndarray) -> str:
    """Encode mono PCM16 samples as base64 of little-endian 16-bit bytes (wire format)."""
    arr = as_pcm16(samples)
    return base64.b64encode(arr.astype("<i2", copy=False).tobytes()).decode("ascii")


def b64_to_pcm16(data: str | bytes) -> np.ndarray:
    """Decode base64 little-endian PCM16 (wire format) into a writable ``np.int16`` array.

    Raises ``ValueError`` if ``data`` is not valid base64 or decodes to an odd number of
    bytes (not whole 16-bit samples).
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"audio is not valid base64: {exc}") from None
    if len(raw) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def frames(signal: np.ndarray, frame_ms: float, rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Slice ``signal`` into consecutive ``frame_ms`` chunks (views); the last partial frame is kept.

    Frame boundaries are at ``round(k * frame_ms * rate / 1000)`` samples, so when a frame is
    not a whole number of samples (e.g. 10 ms at 22.05 kHz) frame lengths alternate and never
    drift from the audio clock. An empty signal yields nothing.
    """
    rate = _check_rate(rate)
    if not frame_ms > 0:
        raise ValueError(f"frame_ms must be > 0, got {frame_ms!r}")
    arr = np.asarray(signal)
    n = arr.shape[0] if arr.ndim else 0
    step = Fraction(frame_ms) * rate / 1000
    if step < 1:
        raise ValueError(f"frame_ms={frame_ms} is shorter than one sample at {rate} Hz")
    k = 0
    start = 0
    while start < n:
        k += 1
        end = min(n, round(step * k))
        yield arr[start:end]
        start = end
