"""WAV I/O: format conversions to 24 kHz mono PCM16 and errors that name the file."""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.audio import (
    AudioFileError,
    alaw_decode,
    alaw_encode,
    float_to_pcm16,
    read_wav,
    resample,
    rms_dbfs,
    tone,
    ulaw_decode,
    ulaw_encode,
    write_wav,
)
from orchestrator.audio.wav import parse_riff


def _write(path: Path, data: bytes, *, rate: int, width: int, channels: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def _encode(x16: np.ndarray, width: int) -> bytes:
    """int16-scale samples -> little-endian PCM of ``width`` bytes (exactly representable)."""
    v = x16.astype(np.int64)
    if width == 1:
        return ((v >> 8) + 128).astype(np.uint8).tobytes()
    if width == 2:
        return v.astype("<i2").tobytes()
    if width == 3:
        u = (v << 8) & 0xFFFFFF
        return (
            np.stack([u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF], axis=1)
            .astype(np.uint8)
            .tobytes()
        )
    return (v << 16).astype("<i4").tobytes()


def test_pcm16_mono_24k_round_trip_is_exact(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(-32768, 32768, 12345).astype(np.int16)
    p = tmp_path / "a.wav"
    write_wav(p, x)
    y = read_wav(p)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(x, y)
    with wave.open(str(p)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)


@pytest.mark.parametrize("width", [2, 3, 4])
def test_wide_samples_at_24k_are_exact(tmp_path: Path, width: int) -> None:
    x = np.random.default_rng(width).integers(-32768, 32768, 5000).astype(np.int16)
    p = _write(tmp_path / f"w{width}.wav", _encode(x, width), rate=24000, width=width, channels=1)
    np.testing.assert_array_equal(read_wav(p), x)


def test_24bit_low_bits_are_rounded_not_truncated(tmp_path: Path) -> None:
    # 24-bit value 0x000180 = 1.5 LSB of 16-bit -> rounds to 2; -0x000180 -> -2
    data = bytes([0x80, 0x01, 0x00, 0x80, 0xFE, 0xFF])
    p = _write(tmp_path / "r.wav", data, rate=24000, width=3, channels=1)
    assert read_wav(p).tolist() == [2, -2]


def test_8bit_unsigned(tmp_path: Path) -> None:
    p = _write(tmp_path / "u8.wav", bytes([0, 128, 255, 64]), rate=24000, width=1, channels=1)
    assert read_wav(p).tolist() == [-32768, 0, 127 * 256, -64 * 256]


def test_stereo_is_downmixed_by_averaging(tmp_path: Path) -> None:
    left = np.array([1000, -2000, 30000, 3], np.int16)
    right = np.array([3000, 2000, 30000, 4], np.int16)
    inter = np.stack([left, right], axis=1).astype("<i2").tobytes()
    p = _write(tmp_path / "st.wav", inter, rate=24000, width=2, channels=2)
    assert read_wav(p).tolist() == [2000, 0, 30000, 4]  # 3.5 rounds half to even


@pytest.mark.parametrize(
    ("rate", "width", "channels"),
    [(8000, 1, 1), (16000, 2, 2), (22050, 3, 1), (44100, 2, 2), (48000, 4, 6), (44100, 3, 2)],
)
def test_any_format_becomes_24k_mono(tmp_path: Path, rate: int, width: int, channels: int) -> None:
    x = tone(440, 500, dbfs=-12, rate=rate)
    chans = np.repeat(x[:, None], channels, axis=1).reshape(-1)
    p = _write(tmp_path / "f.wav", _encode(chans, width), rate=rate, width=width, channels=channels)
    y = read_wav(p)
    assert y.dtype == np.int16 and y.ndim == 1
    assert y.size == -(-x.size * 24000 // rate)
    stored = (x.astype(np.int32) >> 8 << 8).astype(np.int16) if width == 1 else x
    np.testing.assert_array_equal(y, resample(stored, rate, 24000))
    assert abs(rms_dbfs(y[480:-480]) - (-12)) < 0.2


def test_write_wav_at_other_rate(tmp_path: Path) -> None:
    x = tone(300, 200, rate=8000)
    p = tmp_path / "8k.wav"
    write_wav(p, x, rate=8000)
    with wave.open(str(p)) as w:
        assert w.getframerate() == 8000
    assert read_wav(p).size == 3 * x.size


def _assert_error(path: Path, fragment: str) -> None:
    with pytest.raises(AudioFileError) as info:
        read_wav(path)
    msg = str(info.value)
    assert str(path) in msg and fragment in msg, msg
    assert info.value.path == str(path)


def test_missing_file(tmp_path: Path) -> None:
    _assert_error(tmp_path / "nope.wav", "file not found")


def test_directory(tmp_path: Path) -> None:
    _assert_error(tmp_path, "directory")


def test_not_a_wav(tmp_path: Path) -> None:
    p = tmp_path / "text.wav"
    p.write_text("hello, I am not audio")
    _assert_error(p, "RIFF")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    _assert_error(p, "truncated or empty")


def test_float_wav_is_rejected_with_format_name(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 3, 1, 24000, 24000 * 4, 4, 32)
    data = np.zeros(10, "<f4").tobytes()
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    p = tmp_path / "float.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    _assert_error(p, "IEEE float")


def test_truncated_data(tmp_path: Path) -> None:
    p = tmp_path / "cut.wav"
    write_wav(p, np.zeros(1000, np.int16))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) - 500])
    _assert_error(p, "truncated data: header declares 1000 frames, file holds 750")


def test_unsupported_rate(tmp_path: Path) -> None:
    p = _write(tmp_path / "odd.wav", b"\x00\x00" * 10, rate=24001, width=2, channels=1)
    _assert_error(p, "unsupported sample rate 24001")


def test_write_error_names_file(tmp_path: Path) -> None:
    p = tmp_path / "no_such_dir" / "out.wav"
    with pytest.raises(AudioFileError, match="no_such_dir"):
        write_wav(p, np.zeros(10, np.int16))


# --------------------------------------------------------------------------- G.711 WAV


def _g711_wav(path: Path, codes: bytes, *, tag: int, rate: int, channels: int) -> Path:
    """A G.711 WAV as telephony tools write it: 18-byte fmt (cbSize 0), a fact chunk."""
    fmt = struct.pack("<HHIIHHH", tag, channels, rate, rate * channels, channels, 8, 0)
    fact = struct.pack("<I", len(codes) // channels)
    pad = b"\x00" if len(codes) % 2 else b""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"fact" + struct.pack("<I", len(fact)) + fact
    body += b"data" + struct.pack("<I", len(codes)) + codes + pad
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize(
    ("tag", "encode", "decode"),
    [(7, ulaw_encode, ulaw_decode), (6, alaw_encode, alaw_decode)],
    ids=["mu-law", "A-law"],
)
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (8000, 2), (16000, 1), (11025, 2)])
def test_g711_wav_any_rate_and_channels(
    tmp_path: Path, tag: int, encode: Any, decode: Any, rate: int, channels: int
) -> None:
    x = tone(440, 300, dbfs=-12, rate=rate)
    per_channel = [encode(x if c == 0 else (x // 2).astype(np.int16)) for c in range(channels)]
    codes = np.stack(per_channel, axis=1).reshape(-1).tobytes()
    p = _g711_wav(tmp_path / "g.wav", codes, tag=tag, rate=rate, channels=channels)
    expected = np.mean([decode(c).astype(np.float64) for c in per_channel], axis=0)
    y = read_wav(p)
    assert y.dtype == np.int16 and y.size == -(-x.size * 24000 // rate)
    np.testing.assert_array_equal(y, float_to_pcm16(resample(expected, rate, 24000)))


def test_g711_wav_truncated_and_wrong_width_are_named(tmp_path: Path) -> None:
    codes = ulaw_encode(tone(300, 100, rate=8000)).tobytes()
    p = _g711_wav(tmp_path / "cut.wav", codes, tag=7, rate=8000, channels=1)
    p.write_bytes(p.read_bytes()[:-100])
    _assert_error(p, "truncated data: header declares 800 frames, file holds 700")
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 16000, 2, 16)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + b"\0" * 4
    )
    q = tmp_path / "a16.wav"
    q.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    _assert_error(q, "A-law WAV with 16-bit samples; G.711 codes are 8-bit")
    nodata = (
        b"WAVE" + b"fmt " + struct.pack("<I", 16) + struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    )
    r = tmp_path / "nodata.wav"
    r.write_bytes(b"RIFF" + struct.pack("<I", len(nodata)) + nodata)
    _assert_error(r, "no data chunk")


def test_parse_riff_takes_a_streamed_data_chunk(tmp_path: Path) -> None:
    """``espeak-ng --stdout`` declares a placeholder data size: the data is what follows."""
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    raw = b"RIFF\xff\xff\xff\x7fWAVEfmt " + struct.pack("<I", 16) + fmt
    raw += b"data\x00\xf0\xff\x7f" + b"\x01\x00\x02\x00"
    riff = parse_riff("<stdout>", raw)
    assert (riff.tag, riff.channels, riff.rate, riff.bits) == (1, 1, 22050, 16)
    assert riff.data == b"\x01\x00\x02\x00" and riff.declared == 0x7FFFF000
    with pytest.raises(AudioFileError, match="no RIFF/WAVE header"):
        parse_riff("<stdout>", b"garbage")
