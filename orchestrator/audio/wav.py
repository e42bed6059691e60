"""WAV file I/O: any PCM or G.711 WAV in, 24 kHz mono PCM16 out.

Reading accepts integer PCM (format tag 1, read with stdlib ``wave``) at any sample rate
with 8-bit unsigned, 16-, 24- or 32-bit signed samples, and G.711 A-law (tag 6) and
µ-law (tag 7) with 8-bit codes (``wave`` refuses those: their RIFF chunks are parsed
here and the codes expanded with :mod:`.g711`, bit-exact with ``audioop``), in both
cases with any number of channels. Channels are downmixed by
averaging, samples are scaled to the int16 range (8-bit: ``(u - 128) * 256``; 24/32-bit:
the top 16 bits' worth, kept in float until the final rounding), resampled to
``SAMPLE_RATE`` with :func:`orchestrator.audio.resample.resample`, then rounded and
clipped to int16. A 16-bit mono 24 kHz file round-trips bit-exactly.

Every failure (missing file, not a WAV, unsupported format such as IEEE float or
WAVE_FORMAT_EXTENSIBLE on Python < 3.12, truncated data, zero channels) raises
:class:`AudioFileError` whose message names the file and what is wrong.
"""

from __future__ import annotations

import io
import os
import wave

import attrs
import numpy as np

from .g711 import alaw_decode, ulaw_decode
from .pcm import SAMPLE_RATE, _check_rate, as_pcm16, float_to_pcm16
from .resample import resample

__all__ = ["AudioFileError", "RiffWave", "parse_riff", "read_wav", "wav_bytes", "write_wav"]


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


#: G.711 format tags and how their 8-bit codes expand to int16.
_G711 = {6: ("A-law", alaw_decode), 7: ("µ-law", ulaw_decode)}


@attrs.frozen(eq=False)
class RiffWave:
    """The ``fmt `` fields and the ``data`` chunk of a RIFF/WAVE file, as stored.

    ``data`` may be shorter than ``declared`` (its size in the header): a cut file, or a
    stream such as ``espeak-ng --stdout`` whose header declares a huge placeholder size.
    """

    tag: int
    channels: int
    rate: int
    bits: int
    data: bytes
    declared: int


def parse_riff(path: str | os.PathLike[str], raw: bytes) -> RiffWave:
    """Parse the first ``fmt `` and ``data`` chunks of RIFF/WAVE bytes (``path`` names
    them in errors). Raises :class:`AudioFileError` when either chunk is missing."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AudioFileError(path, "not a readable WAV file: no RIFF/WAVE header")
    fmt: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        body = raw[pos + 8 : pos + 8 + size]
        if cid == b"fmt " and fmt is None:
            if len(body) < 16:
                raise AudioFileError(path, f"fmt chunk of {len(body)} bytes is too short")
            fmt = body
        elif cid == b"data" and fmt is not None:
            return RiffWave(
                tag=int.from_bytes(fmt[0:2], "little"),
                channels=int.from_bytes(fmt[2:4], "little"),
                rate=int.from_bytes(fmt[4:8], "little"),
                bits=int.from_bytes(fmt[14:16], "little"),
                data=body,
                declared=size,
            )
        pos += 8 + size + (size & 1)
    missing = "fmt" if fmt is None else "data"
    raise AudioFileError(path, f"not a readable WAV file: no {missing} chunk")


def _read_g711(path: str | os.PathLike[str], tag: int) -> tuple[np.ndarray, int]:
    """An A-law or µ-law WAV file as float64 (frames, channels) on the int16 scale, and
    its sample rate."""
    kind, decode = _G711[tag]
    try:
        with open(path, "rb") as f:
            riff = parse_riff(path, f.read())
    except OSError as exc:
        raise AudioFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if riff.channels < 1:
        raise AudioFileError(path, f"invalid channel count {riff.channels}")
    if riff.bits != 8:
        raise AudioFileError(
            path, f"{kind} WAV with {riff.bits}-bit samples; G.711 codes are 8-bit"
        )
    if riff.rate <= 0:
        raise AudioFileError(path, f"invalid sample rate {riff.rate}")
    declared = riff.declared // riff.channels
    got = len(riff.data) // riff.channels
    if got < declared:
        raise AudioFileError(
            path, f"truncated data: header declares {declared} frames, file holds {got}"
        )
    pcm = decode(riff.data[: got * riff.channels]).astype(np.float64)
    return pcm.reshape(-1, riff.channels), riff.rate


def _wav_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """The file's samples as float64 (frames, channels) on the int16 scale, and its rate."""
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
            if tag in ("6", "7"):
                return _read_g711(path, int(tag))
            kind = {"3": "IEEE float", "65534": "WAVE_FORMAT_EXTENSIBLE"}
            msg = (
                f"unsupported WAV sample format {tag} ({kind.get(tag, 'not integer PCM')}); "
                "supported: integer PCM (1), A-law (6), µ-law (7)"
            )
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
    return _decode_frames(raw[: got * frame_bytes], width, channels), rate


def read_wav(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PCM, A-law or µ-law WAV file as 24 kHz mono int16 (see module docstring for
    conversions).

    Raises :class:`AudioFileError` naming the file for anything unreadable or unsupported.
    """
    x, rate = _wav_frames(path)
    mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)
    try:
        out = resample(mono, rate, SAMPLE_RATE)
    except ValueError as exc:
        raise AudioFileError(path, f"unsupported sample rate {rate} Hz: {exc}") from None
    return float_to_pcm16(out)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """Mono int16 ``samples`` as the bytes of a 16-bit PCM WAV file at ``rate`` Hz."""
    rate = _check_rate(rate)
    data = as_pcm16(samples)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono int16 ``samples`` as a 16-bit PCM WAV at ``rate`` Hz.

    Raises :class:`AudioFileError` naming the file if it cannot be written.
    """
    data = wav_bytes(samples, rate)
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise AudioFileError(path, f"cannot write: {exc.strerror or exc}") from None
