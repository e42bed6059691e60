"""WAV file I/O (stdlib ``wave``): any PCM WAV in, 24 kHz mono PCM16 out.

Reading accepts integer PCM (format tag 1) at any sample rate with 8-bit unsigned,
16-, 24- or 32-bit signed samples and any number of channels. Channels are downmixed by
averaging, samples are scaled to the int16 range (8-bit: ``(u - 128) * 256``; 24/32-bit:
the top 16 bits' worth, kept in float until the final rounding), resampled to
``SAMPLE_RATE`` with :func:`orchestrator.audio.resample.resample`, then rounded and
clipped to int16. A 16-bit mono 24 kHz file round-trips bit-exactly.

Every failure (missing file, not a WAV, unsupported format such as IEEE float or
WAVE_FORMAT_EXTENSIBLE on Python < 3.12, truncated data, zero channels) raises
:class:`AudioFileError` whose message names the file and what is wrong.
"""

from __future__ import annotations

import os
import wave

import numpy as np

from .pcm import SAMPLE_RATE, _check_rate, as_pcm16, float_to_pcm16
from .resample import resample

__all__ = ["AudioFileError", "read_wav", "write_wav"]


class AudioFileError(Exception):
    """An audio file could not be read or written; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _decode_frames(raw: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved PCM bytes -> float64 (frames, channels) on the int16 scale."""
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) * 256.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / 256.0
    else:  # 4
        x = np.frombuffer(raw, "<i4").astype(np.float64) / 65536.0
    return x.reshape(-1, channels)


def read_wav(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PCM WAV file as 24 kHz mono int16 (see module docstring for conversions).

    Raises :class:`AudioFileError` naming the file for anything unreadable or unsupported.
    """
    try:
        with open(path, "rb") as f, wave.open(f, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            declared = w.getnframes()
            raw = w.readframes(declared)
    except FileNotFoundError:
        raise AudioFileError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioFileError(path, "is a directory, not a WAV file") from None
    except PermissionError:
        raise AudioFileError(path, "permission denied") from None
    except wave.Error as exc:
        msg = str(exc)
        if msg.startswith("unknown format"):
            tag = msg.split(":")[-1].strip()
            kind = {
                "3": "IEEE float",
                "65534": "WAVE_FORMAT_EXTENSIBLE",
                "6": "A-law",
                "7": "µ-law",
            }
            msg = f"unsupported WAV sample format {tag} ({kind.get(tag, 'not integer PCM')}); only integer PCM (format 1) is supported"
        raise AudioFileError(path, f"not a readable WAV file: {msg}") from None
    except EOFError:
        raise AudioFileError(path, "truncated or empty WAV header") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if channels < 1:
        raise AudioFileError(path, f"invalid channel count {channels}")
    if width not in (1, 2, 3, 4):
        raise AudioFileError(
            path, f"unsupported sample width {width * 8} bits (use 8, 16, 24 or 32)"
        )
    if rate <= 0:
        raise AudioFileError(path, f"invalid sample rate {rate}")
    frame_bytes = channels * width
    got = len(raw) // frame_bytes
    if got < declared:
        raise AudioFileError(
            path, f"truncated data: header declares {declared} frames, file holds {got}"
        )
    x = _decode_frames(raw[: got * frame_bytes], width, channels)
    mono = x[:, 0] if channels == 1 else x.mean(axis=1)
    try:
        out = resample(mono, rate, SAMPLE_RATE)
    except ValueError as exc:
        raise AudioFileError(path, f"unsupported sample rate {rate} Hz: {exc}") from None
    return float_to_pcm16(out)


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono int16 ``samples`` as a 16-bit PCM WAV at ``rate`` Hz.

    Raises :class:`AudioFileError` naming the file if it cannot be written.
    """
    rate = _check_rate(rate)
    data = as_pcm16(samples)
    try:
        with open(path, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(data.astype("<i2", copy=False).tobytes())
    except OSError as exc:
        raise AudioFileError(path, f"cannot write: {exc.strerror or exc}") from None
