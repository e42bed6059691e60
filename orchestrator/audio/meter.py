"""Level metering: RMS and peak in dBFS.

Reference: 0 dBFS is an RMS of 32768 (a full-scale square wave), so a full-scale sine
measures -3.01 dBFS and ``tone(f, ms, dbfs=-20)`` measures -20 dBFS.
"""

from __future__ import annotations

import math

import numpy as np

FULL_SCALE = 32768.0


def dbfs_to_rms(dbfs: float) -> float:
    """The RMS (int16 scale) of a ``dbfs`` level: the inverse of :func:`rms_dbfs`."""
    return FULL_SCALE * 10.0 ** (dbfs / 20.0)


def rms(samples: np.ndarray) -> float:
    """Root mean square of ``samples`` on the int16 scale (0.0 for an empty array)."""
    arr = np.asarray(samples)
    if arr.size == 0:
        return 0.0
    x = arr.astype(np.float64, copy=False).ravel()
    return math.sqrt(float(np.dot(x, x)) / x.size)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dBFS (``20*log10(rms/32768)``); ``-inf`` for digital silence or empty."""
    r = rms(samples)
    return 20.0 * math.log10(r / FULL_SCALE) if r > 0 else -math.inf


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak absolute level in dBFS; ``-inf`` for digital silence or empty."""
    arr = np.asarray(samples)
    if arr.size == 0:
        return -math.inf
    p = float(np.max(np.abs(arr.astype(np.float64, copy=False))))
    return 20.0 * math.log10(p / FULL_SCALE) if p > 0 else -math.inf
