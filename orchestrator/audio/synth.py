"""Synthetic test signals: silence, tones, white noise and a seeded speech-like voice.

Levels are RMS dBFS as measured by :func:`orchestrator.audio.meter.rms_dbfs` (0 dBFS =
RMS 32768), over the whole returned signal.
"""

from __future__ import annotations

import math

import numpy as np

from .meter import dbfs_to_rms
from .pcm import SAMPLE_RATE, float_to_pcm16, samples_for_ms

__all__ = ["silence", "speech_like", "tone", "white_noise"]

# speech_like syllable timing (ms): ~4.4 syllables/s, gaps always < 150 ms.
_SYL_MS = (120.0, 200.0)
_GAP_MS = (30.0, 100.0)


def _level_to_rms(dbfs: float) -> float:
    if not math.isfinite(dbfs) or dbfs > 0:
        raise ValueError(f"dbfs must be a finite level <= 0, got {dbfs!r}")
    return dbfs_to_rms(dbfs)


def silence(ms: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``ms`` milliseconds of digital silence (int16 zeros)."""
    return np.zeros(samples_for_ms(ms, rate), np.int16)


def tone(freq_hz: float, ms: float, dbfs: float = -20.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A sine at ``freq_hz`` whose RMS is ``dbfs`` (peak = RMS + 3.01 dB), starting at phase 0."""
    n = samples_for_ms(ms, rate)
    if not 0 <= freq_hz < rate / 2:
        raise ValueError(f"freq_hz must be in [0, {rate / 2}) for rate {rate}, got {freq_hz!r}")
    amp = _level_to_rms(dbfs) * math.sqrt(2.0)
    t = np.arange(n, dtype=np.float64)
    return float_to_pcm16(amp * np.sin(2.0 * np.pi * freq_hz / rate * t))


def white_noise(
    ms: float, dbfs: float = -60.0, *, seed: int = 0, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Seeded Gaussian white noise with RMS ``dbfs`` (exact before int16 rounding)."""
    n = samples_for_ms(ms, rate)
    x = np.random.default_rng(seed).standard_normal(n)
    if n:
        x *= _level_to_rms(dbfs) / math.sqrt(float(np.mean(x * x)))
    return float_to_pcm16(x)


def _syllables(n: int, rate: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(start, length) of each syllable; the last syllable runs to the end of the signal."""
    ms = rate / 1000.0
    min_syl = int(_SYL_MS[0] * ms)
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < n:
        d = int(rng.uniform(*_SYL_MS) * ms)
        g = int(rng.uniform(*_GAP_MS) * ms)
        if n - pos - d - g < min_syl:
            out.append((pos, n - pos))
            break
        out.append((pos, d))
        pos += d + g
    return out


def _envelope(d: int, rate: int) -> np.ndarray:
    """Syllable amplitude envelope: raised-cosine attack and longer release."""
    env = np.ones(d)
    a = max(1, min(int(0.025 * rate), d // 3))
    r = max(1, min(int(0.06 * rate), d // 2))
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(a) + 0.5) / a)
    env[d - r :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
    return env


def speech_like(
    ms: float, *, seed: int = 0, rate: int = SAMPLE_RATE, dbfs: float = -20.0
) -> np.ndarray:
    """A seeded, deterministic speech-like utterance of ``ms`` milliseconds (int16).

    Structure: syllables of 120-200 ms separated by gaps of 30-100 ms (about 4.4
    syllables per second, every gap < 150 ms, so an energy VAD with a silence duration of
    >= 150 ms sees one utterance). Speech starts at sample 0 and the last syllable runs to
    the last sample. Each syllable is a voiced harmonic series (f0 90-220 Hz, per-seed
    speaker pitch with a per-syllable glide, harmonics to ~4 kHz with a formant-like
    tilt), shaped by a raised-cosine syllable envelope; about 40 % of syllables start with
    a short high-passed noise burst (a consonant). Gaps are digital silence.

    The overall RMS is scaled to ``dbfs`` (peaks are about 10-12 dB above it; values are
    clipped to int16 if ``dbfs`` is close to 0).
    """
    n = samples_for_ms(ms, rate)
    out = np.zeros(n)
    if n == 0:
        return np.zeros(0, np.int16)
    rng = np.random.default_rng(seed)
    speaker_f0 = rng.uniform(95.0, 190.0)
    top = min(4000.0, 0.45 * rate)
    for start, d in _syllables(n, rate, rng):
        t = np.arange(d) / rate
        f0a = speaker_f0 * rng.uniform(0.85, 1.2)
        f0b = f0a * rng.uniform(0.85, 1.1)
        f0 = f0a + (f0b - f0a) * t / max(t[-1], 1e-9)
        phase = 2.0 * np.pi * np.cumsum(f0) / rate + rng.uniform(0, 2 * np.pi)
        k = np.arange(1, max(2, int(top / max(f0a, f0b))) + 1)
        formant = rng.uniform(400.0, 900.0)
        amps = (1.0 / k) * (1.0 + 1.5 * np.exp(-(((k * f0a - formant) / 250.0) ** 2)))
        voiced = np.sin(np.outer(phase, k)) @ amps
        voiced /= math.sqrt(float(np.mean(voiced * voiced))) or 1.0
        env = _envelope(d, rate)
        seg = voiced * env * rng.uniform(0.6, 1.0)
        if rng.random() < 0.4:
            b = min(d // 2, int(rng.uniform(0.025, 0.06) * rate))
            if b > 1:
                burst = np.diff(rng.standard_normal(b + 1))
                burst *= _envelope(b, rate) * rng.uniform(0.3, 0.6)
                seg[:b] += burst
        out[start : start + d] = seg
    level = math.sqrt(float(np.mean(out * out)))
    out *= _level_to_rms(dbfs) / level
    return float_to_pcm16(out)
