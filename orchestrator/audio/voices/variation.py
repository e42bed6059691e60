"""Seeded per-caller variation of a clean clip: speed, voice, noise bed, silence jitter,
telephone band. Pure numpy, deterministic for ``(seed, caller, turn)``.

Two kinds of variation:

- chosen *before synthesis* (:meth:`Variation.caller`): the caller's speed, drawn from
  ``speed_range`` quantised to :data:`SPEED_STEP` steps, and voice, drawn from
  ``voices``. Every value a draw can give is known up front (:meth:`Variation.speeds`,
  :meth:`Variation.voice_choices`), so every clip can be synthesized before the clock.
- applied *to a clip* (:meth:`Variation.render`): the clip's speech (the engine's own
  leading and trailing silence cut off, see :func:`speech_bounds`) between
  ``lead_ms``/``tail_ms`` of silence each lengthened by up to ``jitter_ms`` (uniform), a
  noise bed over the whole result at
  ``snr_db`` below the speech (white, pink, or a WAV file looped from a random offset), then
  the telephone band (24 kHz → 8 kHz, G.711 µ-law round trip, → 24 kHz: 0-3.5 kHz left).

SNR is the RMS of the clean clip's speech over the RMS of the noise, in dB. The speech
range of a rendered clip is exact: it starts right after the lead silence and ends where
the clean clip's speech ends, never re-detected in the noisy result (the telephone band's
filters are time-aligned). Rendering a 3 s line costs a few ms (see
``benchmarks/bench_audio.py``): callers pre-render a bounded pool of variants before the
clock instead of rendering per session on the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from orchestrator.audio.g711 import ulaw_decode, ulaw_encode
from orchestrator.audio.pcm import SAMPLE_RATE, float_to_pcm16, samples_for_ms
from orchestrator.audio.resample import resample
from orchestrator.audio.wav import read_wav

__all__ = [
    "NOISE_KINDS",
    "SPEED_STEP",
    "Rendered",
    "Variation",
    "noise",
    "quantise_speed",
    "speech_bounds",
    "telephone_band",
]

#: Caller speeds are multiples of this, so a range has few distinct clips.
SPEED_STEP = 0.05

#: Built-in noise beds (anything else is a WAV file path).
NOISE_KINDS = ("white", "pink")

#: Speech is where the clean clip is louder than this, relative to its peak (hibari pads
#: its lines with ~200 ms of digital silence and fades in and out below -60 dBFS).
SPEECH_FLOOR_DB = -50.0


def quantise_speed(speed: float) -> float:
    """``speed`` rounded to the nearest multiple of :data:`SPEED_STEP`."""
    return round(round(speed / SPEED_STEP) * SPEED_STEP, 2)


def speech_bounds(clip: np.ndarray) -> tuple[int, int]:
    """``(start, end)`` of the speech in a clean clip (end exclusive): the first and last
    samples above :data:`SPEECH_FLOOR_DB` of its peak; ``(0, 0)`` for silence."""
    mag = np.abs(clip.astype(np.int32))
    peak = int(mag.max()) if mag.size else 0
    if peak == 0:
        return 0, 0
    above = np.flatnonzero(mag > peak * 10.0 ** (SPEECH_FLOOR_DB / 20.0))
    return int(above[0]), int(above[-1]) + 1


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS ``white`` or ``pink`` (-3 dB/octave) noise, float64."""
    if n == 0:
        return np.zeros(0)
    white = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(white)
        f = np.arange(spectrum.size, dtype=np.float64)
        f[0] = 1.0
        spectrum /= np.sqrt(f)
        spectrum[0] = 0.0
        white = np.fft.irfft(spectrum, n)
    elif kind != "white":
        raise ValueError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    return white / (math.sqrt(float(np.mean(white * white))) or 1.0)


def _looped(bed: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``bed`` from a random offset, looped; unit RMS."""
    if bed.size == 0 or not np.any(bed):
        raise ValueError("the noise WAV file is silent")
    start = int(rng.integers(bed.size))
    idx = (start + np.arange(n)) % bed.size
    out = bed[idx].astype(np.float64)
    level = math.sqrt(float(np.mean(out * out))) if n else 1.0
    return out / (level or 1.0)


def telephone_band(samples: np.ndarray) -> np.ndarray:
    """``samples`` (24 kHz int16) as heard through a phone line: resampled to 8 kHz, G.711
    µ-law encoded and decoded, resampled back to 24 kHz (same length, time-aligned)."""
    narrow = resample(samples, SAMPLE_RATE, 8000)
    line = ulaw_decode(ulaw_encode(narrow))
    return resample(line, 8000, SAMPLE_RATE)[: samples.size]


@attrs.frozen(eq=False)
class Rendered:
    """One caller's rendition of a clip: 24 kHz int16 ``samples`` (read-only) and the exact
    ``speech_start``/``speech_end`` sample indices of its speech."""

    samples: np.ndarray
    speech_start: int
    speech_end: int


def _check_range(value: tuple[float, float] | None) -> None:
    if value is None:
        return
    lo, hi = value
    if not 0.25 <= lo <= hi <= 4.0:
        raise ValueError(
            f"speed_range must be [low, high] with 0.25 <= low <= high <= 4, got {value}"
        )


@attrs.frozen(kw_only=True)
class Variation:
    """How callers differ (see the module docstring). All defaults: no variation.

    Raises ``ValueError`` naming the field for a bad value.
    """

    speed_range: tuple[float, float] | None = attrs.field(default=None)
    voices: tuple[str, ...] = ()
    noise: str | None = None
    snr_db: float = 20.0
    jitter_ms: float = 0.0
    telephone: bool = False
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        _check_range(self.speed_range)
        if not math.isfinite(self.snr_db):
            raise ValueError(f"snr_db must be a finite number, got {self.snr_db!r}")
        if not (self.jitter_ms >= 0 and math.isfinite(self.jitter_ms)):
            raise ValueError(f"jitter_ms must be >= 0, got {self.jitter_ms!r}")
        if self.noise is not None and not self.noise.strip():
            raise ValueError("noise must be 'white', 'pink' or a WAV file path")

    @property
    def renders(self) -> bool:
        """Whether :meth:`render` changes anything beyond adding the lead/tail silence."""
        return self.noise is not None or self.jitter_ms > 0 or self.telephone

    @property
    def varies(self) -> bool:
        """Whether two callers can sound different."""
        return self.renders or self.speed_range is not None or len(self.voices) > 1

    def speeds(self, base: float) -> tuple[float, ...]:
        """Every speed :meth:`caller` can draw (``(base,)`` without a range)."""
        if self.speed_range is None:
            return (base,)
        lo, hi = (round(s / SPEED_STEP) for s in self.speed_range)
        return tuple(quantise_speed(k * SPEED_STEP) for k in range(lo, hi + 1))

    def voice_choices(self, base: str | None) -> tuple[str | None, ...]:
        """Every voice :meth:`caller` can draw (``(base,)`` without ``voices``)."""
        return tuple(self.voices) if self.voices else (base,)

    def caller(self, index: int, *, voice: str | None, speed: float) -> tuple[str | None, float]:
        """The ``(voice, speed)`` of caller ``index``, given the line's own."""
        rng = np.random.default_rng([self.seed, index, 0])
        speeds = self.speeds(speed)
        voices = self.voice_choices(voice)
        return voices[int(rng.integers(len(voices)))], speeds[int(rng.integers(len(speeds)))]

    def load_noise(self) -> np.ndarray | None:
        """The noise WAV file (24 kHz int16) when ``noise`` names one, else None. Raises
        ``AudioFileError`` naming the file."""
        if self.noise is None or self.noise in NOISE_KINDS:
            return None
        return read_wav(self.noise)

    def render(
        self,
        clip: np.ndarray,
        *,
        index: int,
        turn: int = 0,
        lead_ms: float = 0.0,
        tail_ms: float = 0.0,
        noise_file: np.ndarray | None = None,
        bounds: Sequence[int] | None = None,
    ) -> Rendered:
        """Caller ``index``'s rendition of ``clip`` (clean 24 kHz int16) in turn ``turn``:
        its speech between silences, noise and telephone band as configured. ``noise_file``: the samples of
        :meth:`load_noise` (needed when ``noise`` is a file); ``bounds``: the clip's
        :func:`speech_bounds` when already known."""
        rng = np.random.default_rng([self.seed, index, turn + 1])
        lead = samples_for_ms(lead_ms + rng.uniform(0.0, self.jitter_ms))
        tail = samples_for_ms(tail_ms + rng.uniform(0.0, self.jitter_ms))
        start, end = bounds if bounds is not None else speech_bounds(clip)
        speech = clip[start:end]
        out = np.zeros(lead + speech.size + tail, np.int16)
        out[lead : lead + speech.size] = speech
        if self.noise is not None:
            speech = speech.astype(np.float64)
            level = math.sqrt(float(np.mean(speech * speech))) if speech.size else 0.0
            if self.noise in NOISE_KINDS:
                bed = noise(self.noise, out.size, rng)
            else:
                if noise_file is None:
                    raise ValueError(f"noise file {self.noise}: pass its samples (load_noise())")
                bed = _looped(noise_file, out.size, rng)
            out = float_to_pcm16(out + bed * level * 10.0 ** (-self.snr_db / 20.0))
        if self.telephone:
            out = telephone_band(out)
        out.flags.writeable = False
        return Rendered(out, lead, lead + end - start)
