"""G.711 µ-law / A-law: bit-exact against audioop (when present) and fixed vectors."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

from orchestrator.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13
        audioop = None

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)
needs_audioop = pytest.mark.skipif(audioop is None, reason="audioop removed in this Python")


@needs_audioop
def test_ulaw_matches_audioop_for_every_input() -> None:
    raw = ALL_INT16.astype("<i2").tobytes()
    ref_enc = np.frombuffer(audioop.lin2ulaw(raw, 2), np.uint8)
    np.testing.assert_array_equal(ulaw_encode(ALL_INT16), ref_enc)
    ref_dec = np.frombuffer(audioop.ulaw2lin(bytes(range(256)), 2), "<i2")
    np.testing.assert_array_equal(ulaw_decode(ALL_CODES), ref_dec)


@needs_audioop
def test_alaw_matches_audioop_for_every_input() -> None:
    raw = ALL_INT16.astype("<i2").tobytes()
    ref_enc = np.frombuffer(audioop.lin2alaw(raw, 2), np.uint8)
    np.testing.assert_array_equal(alaw_encode(ALL_INT16), ref_enc)
    ref_dec = np.frombuffer(audioop.alaw2lin(bytes(range(256)), 2), "<i2")
    np.testing.assert_array_equal(alaw_decode(ALL_CODES), ref_dec)


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(arr.tobytes()).hexdigest()


# SHA-256 of the full tables, taken from audioop (CPython 3.11) output.
def test_full_tables_match_reference_checksums() -> None:
    assert _sha(ulaw_encode(ALL_INT16)) == (
        "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a"
    )
    assert _sha(alaw_encode(ALL_INT16)) == (
        "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b"
    )
    assert _sha(ulaw_decode(ALL_CODES).astype("<i2")) == (
        "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827"
    )
    assert _sha(alaw_decode(ALL_CODES).astype("<i2")) == (
        "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174"
    )


def test_known_code_points() -> None:
    # Worked by hand from G.711: µ-law 1000 -> 14-bit 250, +33 = 283, segment 3,
    # mantissa 1 -> 0x31, inverted 0xCE. A-law 1000 -> 13-bit 125, segment 2,
    # mantissa 15 -> 0x2F, xor 0xD5 = 0xFA.
    xs = np.array([0, 1000, -1000, 100, -100, 32767, -32768], np.int16)
    assert ulaw_encode(xs).tolist() == [0xFF, 0xCE, 0x4E, 0xF2, 0x72, 0x80, 0x00]
    assert alaw_encode(xs).tolist() == [0xD5, 0xFA, 0x7A, 0xD3, 0x53, 0xAA, 0x2A]
    assert ulaw_decode(bytes([0x00, 0x7F, 0x80, 0xFF, 0xCE, 0x70])).tolist() == [
        -32124,
        0,
        32124,
        0,
        988,
        -120,
    ]
    assert alaw_decode(bytes([0xD5, 0x55, 0x2A, 0xAA, 0xFA, 0x80])).tolist() == [
        8,
        -8,
        -32256,
        32256,
        1008,
        5504,
    ]


def test_decode_tables_are_odd_symmetric() -> None:
    u = ulaw_decode(ALL_CODES).astype(np.int32)
    np.testing.assert_array_equal(u[:128], -u[128:])
    a = alaw_decode(ALL_CODES).astype(np.int32)
    np.testing.assert_array_equal(a[:128], -a[128:])
    assert len(set(a.tolist())) == 256  # A-law has no negative zero


def test_decode_then_encode_is_identity_on_codes() -> None:
    # every code except µ-law's negative zero (0x7F decodes to 0, re-encodes as 0xFF)
    u = ulaw_encode(ulaw_decode(ALL_CODES))
    assert (u == ALL_CODES).sum() == 255 and u[0x7F] == 0xFF
    np.testing.assert_array_equal(alaw_encode(alaw_decode(ALL_CODES)), ALL_CODES)


def test_round_trip_error_is_within_quantisation_step() -> None:
    x = np.random.default_rng(0).integers(-30000, 30000, 10000).astype(np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = dec(enc(x)).astype(np.int32)
        err = np.abs(y - x)
        # log companding: step is ~1/16 of the segment, i.e. <= ~6.5 % of |x| + small offset
        assert np.all(err <= 0.07 * np.abs(x.astype(np.int32)) + 16)


def test_input_types() -> None:
    codes = ulaw_encode(np.array([5, -5], np.int16))
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(ulaw_decode(codes.tobytes()), ulaw_decode(codes))
    np.testing.assert_array_equal(alaw_decode(bytearray(b"\xd5")), [8])
    with pytest.raises(ValueError, match="uint8"):
        ulaw_decode(np.array([300]))
    with pytest.raises(TypeError):
        alaw_encode(np.array([0.5]))
