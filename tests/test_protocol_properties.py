"""Property tests: whatever arrives, decoding yields an event or one ProtocolError.

Examples are kept modest (the whole suite shares 2 cores).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_helpers import sample_client_events, sample_server_events

from orchestrator.protocol import (
    CLIENT_EVENT_CLASSES,
    SERVER_EVENT_CLASSES,
    Dialect,
    ProtocolError,
    UnknownClientEvent,
    UnknownServerEvent,
    decode_client_event,
    decode_server_event,
    dialect_supports,
    encode_client_event,
    encode_server_event,
    wire_type,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIALECTS = st.sampled_from(list(Dialect))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=12,
)

KNOWN_TYPES = sorted(
    {
        t
        for c in (*SERVER_EVENT_CLASSES, *CLIENT_EVENT_CLASSES)
        for d in Dialect
        if (t := wire_type(c, d))
    }
)


def _decode_all(data: str | bytes) -> None:
    for d in Dialect:
        for decode in (decode_server_event, decode_client_event):
            try:
                decode(data, d)
            except ProtocolError as exc:
                assert exc.path.startswith("$")
                assert len(exc.excerpt) <= 203


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_all(data)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(data: str) -> None:
    _decode_all(data)


def _frames() -> list[tuple[Dialect, str, str]]:
    """(dialect, side, frame) for every sample event, encoded where it exists."""
    out = []
    for d in Dialect:
        out += [
            ("server", encode_server_event(e, d), d)
            for e in sample_server_events()
            if dialect_supports(e, d)
        ]
        out += [
            ("client", encode_client_event(e, d), d)
            for e in sample_client_events()
            if dialect_supports(e, d)
        ]
    return [(d, side, f) for side, f, d in out]


FRAMES = _frames()


def _decoder(side: str) -> Any:
    return decode_server_event if side == "server" else decode_client_event


@SETTINGS
@given(st.sampled_from(FRAMES), st.data())
def test_truncated_frames_raise_protocol_error(
    frame: tuple[Dialect, str, str], data: st.DataObject
) -> None:
    dialect, side, text = frame
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(ProtocolError) as info:
        _decoder(side)(text[:cut], dialect)
    assert info.value.event_type is None  # it is not even JSON


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if prefix == () and k == "type":
                continue
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {**obj, head: _replace(obj[head], rest, value)}
    copy = list(obj)
    copy[head] = _replace(obj[head], rest, value)
    return copy


@SETTINGS
@given(st.sampled_from(FRAMES), st.data(), json_values)
def test_wrong_field_values_decode_or_raise_protocol_error(
    frame: tuple[Dialect, str, str], data: st.DataObject, value: Any
) -> None:
    dialect, side, text = frame
    obj = json.loads(text)
    paths = _paths(obj)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    mutated = json.dumps(_replace(obj, path, value))
    try:
        ev = _decoder(side)(mutated, dialect)
    except ProtocolError as exc:
        assert exc.event_type == obj["type"]
    else:  # whatever decoded must re-encode
        encode = encode_server_event if side == "server" else encode_client_event
        if dialect_supports(ev, dialect):
            encode(ev, dialect)


@SETTINGS
@given(
    st.sampled_from(KNOWN_TYPES),
    st.dictionaries(st.text(max_size=12), json_values, max_size=6),
    DIALECTS,
)
def test_known_type_with_random_body(type_: str, body: dict[str, Any], dialect: Dialect) -> None:
    frame = json.dumps({**body, "type": type_})
    for decode in (decode_server_event, decode_client_event):
        try:
            decode(frame, dialect)
        except ProtocolError as exc:
            assert exc.event_type == type_


@SETTINGS
@given(
    st.text(min_size=1, max_size=40),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    DIALECTS,
)
def test_unknown_types_are_kept_raw(type_: str, body: dict[str, Any], dialect: Dialect) -> None:
    if type_ in KNOWN_TYPES:
        return
    raw = {**body, "type": type_}
    ev = decode_server_event(json.dumps(raw), dialect)
    assert ev == UnknownServerEvent(type=type_, raw=raw)
    assert json.loads(encode_server_event(ev, dialect)) == raw
    cev = decode_client_event(json.dumps(raw), dialect)
    assert cev == UnknownClientEvent(type=type_, raw=raw)
