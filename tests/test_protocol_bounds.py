"""Bounded decoding (issue #8): junk in list fields is rejected with one ProtocolError
that names the event and the field, without one error object per junk element.

No timing assertions here: ``benchmarks/bench_codec.py`` prints the rejection times.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.protocol import (
    ContentPart,
    Dialect,
    MessageItem,
    ProtocolError,
    RateLimit,
    RateLimitsUpdated,
    ResponseDone,
    decode_client_event,
    decode_server_event,
)
from orchestrator.protocol.common import MAX_ARRAY_LENGTH


def _junk_response_done(n: int) -> str:
    head = (
        '{"type":"response.done","event_id":"event_1","response":{"object":'
        '"realtime.response","id":"resp_1","status":"completed","output":['
    )
    return head + ",".join(["0"] * n) + "]}}"


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaf_errors(e)]
    return [exc]


@pytest.mark.parametrize("dialect", list(Dialect))
def test_two_megabyte_junk_response_done_is_one_protocol_error(dialect: Dialect) -> None:
    frame = _junk_response_done(1_000_000)
    assert len(frame) > 2_000_000
    with pytest.raises(ProtocolError) as info:
        decode_server_event(frame, dialect)
    err = info.value
    assert err.event_type == "response.done"
    assert err.path == "$.response.output"
    assert err.reason == (f"expected an array of at most {MAX_ARRAY_LENGTH} elements, got 1000000")
    assert "response.done" in str(err) and "$.response.output" in str(err)
    assert len(err.excerpt) <= 203


@pytest.mark.parametrize("dialect", list(Dialect))
def test_junk_under_the_length_cap_stops_at_the_first_bad_element(dialect: Dialect) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server_event(_junk_response_done(MAX_ARRAY_LENGTH), dialect)
    err = info.value
    assert (err.event_type, err.path) == ("response.done", "$.response.output[0]")
    assert err.reason == "expected an object, got a number"  # not "(and 9999 more: ...)"
    assert err.__cause__ is not None
    assert len(_leaf_errors(err.__cause__)) == 1


def test_bad_element_after_good_ones_has_its_index() -> None:
    good = {"type": "message", "role": "assistant", "content": []}
    frame = json.dumps(
        {"type": "response.done", "response": {"id": "r", "output": [good, good, "x", 5]}}
    )
    with pytest.raises(ProtocolError) as info:
        decode_server_event(frame, Dialect.GA)
    assert info.value.path == "$.response.output[2]"
    assert info.value.reason == "expected an object, got a string"


def _raises_at(decode: Any, event: dict[str, Any], dialect: Dialect) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(json.dumps(event), dialect)
    return info.value


@pytest.mark.parametrize(
    ("decode", "event", "path"),
    [
        (
            decode_server_event,
            {"type": "session.updated", "session": {"tools": [1] * 50}},
            "$.session.tools[0]",
        ),
        (
            decode_server_event,
            {"type": "rate_limits.updated", "rate_limits": [None] * 50},
            "$.rate_limits[0]",
        ),
        (
            decode_server_event,
            {
                "type": "conversation.item.created",
                "item": {"type": "message", "role": "user", "content": [7] * 50},
            },
            "$.item.content[0]",
        ),
        (
            decode_client_event,
            {"type": "session.update", "session": {"tools": ["x"] * 50}},
            "$.session.tools[0]",
        ),
        (
            decode_client_event,
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [[]] * 50},
            },
            "$.item.content[0]",
        ),
        (
            decode_client_event,
            {"type": "session.update", "session": {"tools": [{}] * (MAX_ARRAY_LENGTH + 1)}},
            "$.session.tools",
        ),
    ],
)
@pytest.mark.parametrize("dialect", list(Dialect))
def test_every_list_field_fails_early(
    decode: Any, event: dict[str, Any], path: str, dialect: Dialect
) -> None:
    err = _raises_at(decode, event, dialect)
    assert err.event_type == event["type"]
    assert err.path == path
    assert "more:" not in err.reason  # one error, not one per element
    assert err.__cause__ is not None and len(_leaf_errors(err.__cause__)) == 1


def test_lists_up_to_the_cap_still_decode() -> None:
    limits = [{"name": "tokens", "limit": 1, "remaining": 1, "reset_seconds": 1.0}]
    ev = decode_server_event(
        json.dumps({"type": "rate_limits.updated", "rate_limits": limits * MAX_ARRAY_LENGTH}),
        Dialect.GA,
    )
    assert isinstance(ev, RateLimitsUpdated) and len(ev.rate_limits) == MAX_ARRAY_LENGTH
    assert ev.rate_limits[-1] == RateLimit(name="tokens", limit=1, remaining=1, reset_seconds=1.0)


@pytest.mark.parametrize("dialect", list(Dialect))
def test_valid_response_done_is_unchanged(dialect: Dialect) -> None:
    part = "output_audio" if dialect is Dialect.GA else "audio"
    frame = json.dumps(
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "status": "completed",
                "output": [
                    {
                        "id": "item_1",
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": part, "transcript": "hi"}],
                    }
                ],
            },
        }
    )
    ev = decode_server_event(frame, dialect)
    assert isinstance(ev, ResponseDone) and ev.response.output is not None
    assert ev.response.output == [
        MessageItem(
            id="item_1",
            role="assistant",
            content=[ContentPart(type="output_audio", transcript="hi")],
        )
    ]
