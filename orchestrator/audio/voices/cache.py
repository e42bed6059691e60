"""The caller-voice clip cache: each line synthesized once, on disk and in memory.

A :class:`Line` is what a caller says: text, engine, voice and speed. :meth:`VoiceCache.
clip` returns the clean clip of a line as a read-only 24 kHz mono int16 array:

1. from the in-process memo (every session saying the line gets the same array);
2. else from the cache directory (the :mod:`.layout` files ``<key>.wav`` and
   ``<key>.json``, the key covering engine, engine version, voice, speed and text);
3. else by calling the engine (counted in :attr:`VoiceCache.engine_calls`), converting its
   output to int16 (float samples are scaled by 32767 and rounded) and resampling it to
   24 kHz, then writing the WAV and, last, the JSON, each through a temporary file renamed
   into place. Processes filling one directory at once are safe: a reader only trusts a
   clip whose JSON exists, and two writers of one key write identical files.

Everything here is synchronous, and a miss takes as long as the engine (tens of ms to
seconds): fill the cache before a run's clock starts, never on the trio event loop.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import attrs
import numpy as np

from orchestrator.audio.pcm import SAMPLE_RATE, float_to_pcm16
from orchestrator.audio.resample import resample
from orchestrator.audio.wav import AudioFileError, read_wav, wav_bytes

from .engines import VoiceError, get_engine
from .layout import ClipInfo, clip_key, default_cache_dir, read_info, write_atomic

__all__ = ["Line", "VoiceCache", "to_clip"]

#: :func:`~.layout.write_atomic` names its temporary file by process id: writers in one
#: process (several caches, threads) take turns, writers in other processes cannot clash.
_WRITE_LOCK = threading.Lock()


@attrs.frozen
class Line:
    """What a caller says: ``text`` spoken by ``engine`` (``hibari``, ``espeak`` or
    ``module:function``) in ``voice`` (None: the engine's default voice) at ``speed``."""

    text: str
    engine: str = "hibari"
    voice: str | None = None
    speed: float = 1.0


def to_clip(samples: np.ndarray, rate: int) -> np.ndarray:
    """An engine's output (float in [-1, 1] or int16, at ``rate``) as 24 kHz int16."""
    arr = np.asarray(samples)
    if arr.dtype.kind == "f":
        scaled = arr.astype(np.float64) * 32767.0
        return float_to_pcm16(resample(scaled, rate, SAMPLE_RATE))
    return resample(arr.astype(np.int16, copy=False), rate, SAMPLE_RATE)


class VoiceCache:
    """Clips of caller lines, cached in ``directory`` (default
    :func:`~.layout.default_cache_dir`, created on the first write) and in memory.

    Thread-safe; :attr:`engine_calls` counts syntheses done by this instance.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.engine_calls = 0
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def info(self, line: Line) -> ClipInfo:
        """The identity of ``line``'s clip (its ``wav`` path may not exist yet). Raises
        :class:`VoiceError` for an unknown or missing engine."""
        engine = get_engine(line.engine)
        voice = line.voice or engine.default_voice
        speed = round(float(line.speed), 4)
        key = clip_key(engine.name, engine.version, voice, speed, line.text)
        return ClipInfo(
            text=line.text,
            engine=engine.name,
            engine_version=engine.version,
            voice=voice,
            speed=speed,
            samples=0,
            wav=self.directory / f"{key}.wav",
        )

    def clip(self, line: Line) -> np.ndarray:
        """The clean clip of ``line``: read-only 24 kHz mono int16, the same array for
        every call with an equal line. Synthesizes on a miss (slow: not on the event loop).

        Raises :class:`VoiceError` when the engine fails or the clip cannot be stored
        (the message names the directory).
        """
        want = self.info(line)
        with self._lock:
            found = self._memo.get(want.key)
            if found is None:
                found = self._load(want)
                if found is None:
                    found = self._synthesize(want)
                found.flags.writeable = False
                self._memo[want.key] = found
            return found

    def _load(self, want: ClipInfo) -> np.ndarray | None:
        """The clip on disk, or None when absent, incomplete or unreadable."""
        info = read_info(want.wav.with_suffix(".json"))
        if info is None:
            return None
        try:
            samples = read_wav(info.wav)
        except AudioFileError:
            return None
        return samples if samples.size == info.samples else None

    def _synthesize(self, want: ClipInfo) -> np.ndarray:
        engine = get_engine(want.engine)
        self.engine_calls += 1
        raw, rate = engine.synthesize(want.text, want.voice, want.speed)
        clip = to_clip(raw, rate)
        if clip.size == 0:
            raise VoiceError(f"{want.engine}: produced no audio for {want.text!r}")
        info = attrs.evolve(want, samples=int(clip.size))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with _WRITE_LOCK:
                write_atomic(info.wav, wav_bytes(clip))
                write_atomic(info.wav.with_suffix(".json"), info.to_json())
        except OSError as exc:
            raise VoiceError(
                f"voice cache {self.directory}: cannot write ({exc.strerror or exc}); choose "
                "another directory with --voice-cache DIR or ORCHESTRATOR_VOICE_CACHE"
            ) from None
        return clip
