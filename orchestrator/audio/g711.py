"""ITU-T G.711 µ-law and A-law codecs (8-bit companded PCM, used at 8 kHz).

Bit-exact with the classic Sun/CCITT reference code that CPython's ``audioop`` uses
(``lin2ulaw``/``ulaw2lin``/``lin2alaw``/``alaw2lin`` with width 2):

- µ-law: the 16-bit sample is arithmetically shifted to 14 bits, its magnitude clipped to
  8159, biased by 33, and coded as sign/segment/4-bit mantissa with all bits inverted.
- A-law: the sample is shifted to 13 bits (negative values ones'-complemented), coded as
  sign/segment/mantissa, and the even bits are inverted (xor 0x55).

Every function is a table lookup: the 65536-entry encode tables and 256-entry decode
tables are computed once, vectorised, at import.
"""

from __future__ import annotations

import numpy as np

from .pcm import as_pcm16

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)


def _segment(mag: np.ndarray, seg_end: np.ndarray) -> np.ndarray:
    """Index of the first segment end >= mag (8 when above the last one)."""
    return np.searchsorted(seg_end, mag, side="left").astype(np.int32)


def _build_ulaw_encode() -> np.ndarray:
    val = _ALL_INT16 >> 2  # 14-bit, arithmetic shift as in the reference
    neg = val < 0
    mag = np.where(neg, -val, val)
    mask = np.where(neg, 0x7F, 0xFF)
    mag = np.minimum(mag, 8159) + 33
    seg_end = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = _segment(mag, seg_end)
    uval = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    uval = np.where(seg >= 8, 0x7F, uval)
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t = t << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    val = _ALL_INT16 >> 3  # 13-bit
    neg = val < 0
    mask = np.where(neg, 0x55, 0xD5)
    mag = np.where(neg, -val - 1, val)
    seg_end = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = _segment(mag, seg_end)
    segc = np.minimum(seg, 7)
    quant = np.where(segc < 2, mag >> 1, mag >> segc) & 0x0F
    aval = (segc << 4) | quant
    aval = np.where(seg >= 8, 0x7F, aval)
    return ((aval ^ mask) & 0xFF).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_ENC = _build_alaw_encode()
_ALAW_DEC = _build_alaw_decode()
for _t in (_ULAW_ENC, _ULAW_DEC, _ALAW_ENC, _ALAW_DEC):
    _t.flags.writeable = False


def _codes(data: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    arr = np.asarray(data)
    if arr.ndim != 1:
        raise ValueError(f"G.711 data must be 1-D, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.size and (
            not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255
        ):
            raise ValueError(f"G.711 data must be bytes or uint8 codes, got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    return arr


def _index(samples: np.ndarray) -> np.ndarray:
    # int16 -> table index 0..65535 (index 0 is -32768)
    return as_pcm16(samples).astype(np.int32) + 32768


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """Encode int16 PCM to G.711 µ-law codes (``np.uint8``, one byte per sample)."""
    return _ULAW_ENC[_index(samples)]


def ulaw_decode(data: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    """Decode G.711 µ-law codes (bytes or uint8 array) to int16 PCM."""
    return _ULAW_DEC[_codes(data)]


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """Encode int16 PCM to G.711 A-law codes (``np.uint8``, one byte per sample)."""
    return _ALAW_ENC[_index(samples)]


def alaw_decode(data: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    """Decode G.711 A-law codes (bytes or uint8 array) to int16 PCM."""
    return _ALAW_DEC[_codes(data)]
