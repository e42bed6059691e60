"""User audio sources: a WAV file, a numpy array or a synthetic utterance, with the
sample range that is speech.

The planned anchors of a turn come from here: the last speech sample decides
``voice_to_voice_ms`` and ``vad_delay_ms``. Unless given explicitly, speech is found with
the same energy VAD the embedded server uses (``orchestrator.audio.EnergyVad``, 10 ms
windows), so "end of speech" means what a server VAD would call it.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import numpy as np

from orchestrator.audio import (
    SAMPLE_RATE,
    EnergyVad,
    read_wav,
    resample,
    silence,
    speech_like,
)

__all__ = ["AudioSource", "as_source", "find_speech"]


def find_speech(samples: np.ndarray, *, threshold: float = 0.5) -> tuple[int, int] | None:
    """``(first, end)`` sample indices of the speech in ``samples`` (``end`` exclusive,
    on the VAD's 10 ms window grid), or None when there is none."""
    vad = EnergyVad(threshold=threshold, prefix_padding_ms=0, silence_duration_ms=0)
    events = vad.feed(samples) + vad.feed(silence(50))
    starts = [e.audio_ms for e in events if e.kind == "speech_started"]
    stops = [e.audio_ms for e in events if e.kind == "speech_stopped"]
    if not starts:
        return None
    end_ms = stops[-1] if stops else len(samples) * 1000 // SAMPLE_RATE
    end = min(len(samples), end_ms * SAMPLE_RATE // 1000)
    return starts[0] * SAMPLE_RATE // 1000, end


@attrs.frozen(eq=False)
class AudioSource:
    """24 kHz mono PCM16 ``samples`` and where the speech is: ``speech_start`` and
    ``speech_end`` (sample indices, end exclusive; None when there is no speech).
    ``name`` labels it in errors."""

    samples: np.ndarray
    speech_start: int | None = None
    speech_end: int | None = None
    name: str = "<audio>"

    @property
    def duration_ms(self) -> float:
        return len(self.samples) * 1000.0 / SAMPLE_RATE

    @classmethod
    def from_array(
        cls,
        samples: np.ndarray,
        *,
        rate: int = SAMPLE_RATE,
        speech_ms: tuple[float, float] | None = None,
        threshold: float = 0.5,
        name: str = "<array>",
    ) -> AudioSource:
        """From PCM16 (or float in [-1, 1]) samples at ``rate``; ``speech_ms`` overrides
        the detected ``(start, end)`` of speech in milliseconds."""
        arr = np.asarray(samples)
        if arr.ndim != 1:
            raise ValueError(
                f"audio source {name}: expected mono 1-D samples, got shape {arr.shape}"
            )
        if arr.dtype.kind == "f":
            arr = np.clip(np.round(arr * 32767.0), -32768, 32767).astype(np.int16)
        elif arr.dtype != np.int16:
            arr = arr.astype(np.int16)
        if rate != SAMPLE_RATE:
            arr = resample(arr, rate, SAMPLE_RATE)
        if speech_ms is not None:
            start = int(round(speech_ms[0] * SAMPLE_RATE / 1000))
            end = int(round(speech_ms[1] * SAMPLE_RATE / 1000))
            return cls(arr, start, end, name)
        found = find_speech(arr, threshold=threshold)
        if found is None:
            return cls(arr, None, None, name)
        return cls(arr, found[0], found[1], name)

    @classmethod
    def from_wav(
        cls, path: str | os.PathLike[str], *, speech_ms: tuple[float, float] | None = None
    ) -> AudioSource:
        """From a WAV file (``read_wav`` raises ``AudioFileError`` naming the file)."""
        return cls.from_array(read_wav(path), speech_ms=speech_ms, name=os.fspath(path))

    @classmethod
    def synthetic(
        cls,
        speech_ms: float,
        *,
        lead_ms: float = 0.0,
        tail_ms: float = 0.0,
        seed: int = 0,
        dbfs: float = -20.0,
    ) -> AudioSource:
        """``lead_ms`` of silence, ``speech_ms`` of deterministic speech-like audio, then
        ``tail_ms`` of silence."""
        samples = np.concatenate(
            [silence(lead_ms), speech_like(speech_ms, seed=seed, dbfs=dbfs), silence(tail_ms)]
        )
        return cls.from_array(samples, name=f"<synthetic {speech_ms:g} ms seed {seed}>")


def as_source(value: Any) -> AudioSource:
    """An :class:`AudioSource` from a source, a WAV path or a numpy array."""
    if isinstance(value, AudioSource):
        return value
    if isinstance(value, str | os.PathLike):
        return AudioSource.from_wav(value)
    if isinstance(value, np.ndarray):
        return AudioSource.from_array(value)
    raise TypeError(
        f"audio source must be an AudioSource, a WAV path or a numpy array, not {type(value).__name__}"
    )
