"""Codec behaviour: decoding, encoding, dialect translation, errors, ids."""

from __future__ import annotations

import json
import re

import orjson
import pytest
from protocol_helpers import AUDIO_B64, sample_client_events, sample_server_events

from orchestrator.protocol import (
    NULL,
    AudioConfig,
    AudioInput,
    ConversationItemAdded,
    ConversationItemCreate,
    ConversationItemCreated,
    ConversationItemDone,
    Dialect,
    ErrorDetail,
    ErrorEvent,
    FunctionCallItem,
    InputAudioBufferAppend,
    InputAudioBufferSpeechStarted,
    MessageItem,
    ProtocolError,
    RateLimit,
    RateLimitsUpdated,
    ResponseCreate,
    ResponseOutputAudioDelta,
    ResponseParams,
    SessionConfig,
    SessionUpdate,
    UnknownClientEvent,
    UnknownItem,
    UnknownServerEvent,
    converter,
    decode_client_event,
    decode_server_event,
    dialect_supports,
    encode_client_event,
    encode_server_event,
    new_id,
    wire_type,
)
from orchestrator.protocol.server_events import ServerEvent

BOTH = pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)


def test_audio_delta_decodes_in_both_dialects() -> None:
    base = {
        "event_id": "event_1",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": AUDIO_B64,
        "obfuscation": "xyz",  # real servers add fields: ignored
    }
    ga = decode_server_event(
        json.dumps({"type": "response.output_audio.delta", **base}), Dialect.GA
    )
    beta = decode_server_event(
        json.dumps({"type": "response.audio.delta", **base}).encode(), Dialect.BETA
    )
    expected = ResponseOutputAudioDelta(
        event_id="event_1",
        response_id="resp_1",
        item_id="item_1",
        output_index=0,
        content_index=0,
        delta=AUDIO_B64,
    )
    assert ga == beta == expected
    assert isinstance(ga.delta, str)
    assert "base64 chars" in repr(ga) and AUDIO_B64 not in repr(ga)


@BOTH
def test_append_encodes_minimal_json(dialect: Dialect) -> None:
    text = encode_client_event(InputAudioBufferAppend(audio=AUDIO_B64), dialect)
    assert json.loads(text) == {"type": "input_audio_buffer.append", "audio": AUDIO_B64}
    assert isinstance(text, str)


def test_unset_fields_are_omitted_and_null_is_explicit() -> None:
    ev = SessionUpdate(
        session=SessionConfig(
            instructions="x", audio=AudioConfig(input=AudioInput(turn_detection=NULL))
        )
    )
    ga = json.loads(encode_client_event(ev, Dialect.GA))
    assert ga == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "x",
            "audio": {"input": {"turn_detection": None}},
        },
    }
    beta = json.loads(encode_client_event(ev, Dialect.BETA))
    assert beta == {
        "type": "session.update",
        "session": {"instructions": "x", "turn_detection": None},
    }
    # A null from the wire is "unset" (None), never NULL.
    back = decode_client_event(encode_client_event(ev, Dialect.BETA), Dialect.BETA)
    assert isinstance(back, SessionUpdate)
    assert back.session.audio is None
    back = decode_client_event(encode_client_event(ev, Dialect.GA), Dialect.GA)
    assert isinstance(back, SessionUpdate)
    assert back.session.audio == AudioConfig(input=AudioInput())


def test_explicit_session_type_is_kept_in_ga() -> None:
    ev = SessionUpdate(session=SessionConfig(type="transcription"))
    assert json.loads(encode_client_event(ev, Dialect.GA))["session"]["type"] == "transcription"
    assert "type" not in json.loads(encode_client_event(ev, Dialect.BETA))["session"]


def test_response_create_translation() -> None:
    ev = ResponseCreate(
        response=ResponseParams(
            output_modalities=["text"], max_output_tokens=50, temperature=0.7, metadata={"k": 1}
        )
    )
    beta = json.loads(encode_client_event(ev, Dialect.BETA))["response"]
    assert beta == {
        "modalities": ["text"],
        "max_response_output_tokens": 50,
        "temperature": 0.7,
        "metadata": {"k": 1},
    }
    ga = json.loads(encode_client_event(ev, Dialect.GA))["response"]
    assert ga == {"output_modalities": ["text"], "max_output_tokens": 50, "metadata": {"k": 1}}
    assert (
        decode_client_event(json.dumps({"type": "response.create", "response": beta}), Dialect.BETA)
        == ev
    )


def test_item_created_and_added_across_dialects() -> None:
    item = MessageItem(id="item_1", role="user", content=[])
    beta_frame = {
        "type": "conversation.item.created",
        "previous_item_id": None,
        "item": {"id": "item_1", "type": "message", "role": "user", "content": []},
    }
    assert decode_server_event(json.dumps(beta_frame), Dialect.BETA) == ConversationItemAdded(
        item=item
    )
    assert decode_server_event(json.dumps(beta_frame), Dialect.GA) == ConversationItemCreated(
        item=item
    )
    assert wire_type(ConversationItemAdded, Dialect.BETA) == "conversation.item.created"
    assert wire_type(ConversationItemCreated, Dialect.BETA) == "conversation.item.created"
    assert wire_type(ConversationItemDone, Dialect.BETA) is None
    assert not dialect_supports(ConversationItemDone(item=item), Dialect.BETA)
    with pytest.raises(ProtocolError) as info:
        encode_server_event(ConversationItemDone(item=item), Dialect.BETA)
    assert info.value.event_type == "conversation.item.done"


def test_unknown_items_and_events_are_kept_raw() -> None:
    frame = {"type": "conversation.item.added", "item": {"type": "future_item", "x": [1, 2]}}
    ev = decode_server_event(json.dumps(frame), Dialect.GA)
    assert isinstance(ev, ConversationItemAdded)
    assert ev.item == UnknownItem(type="future_item", raw={"type": "future_item", "x": [1, 2]})
    assert json.loads(encode_server_event(ev, Dialect.GA)) == frame
    unknown = decode_server_event('{"type":"session.future","a":1}', Dialect.GA)
    assert unknown == UnknownServerEvent(
        type="session.future", raw={"type": "session.future", "a": 1}
    )
    assert json.loads(encode_server_event(unknown, Dialect.BETA)) == unknown.raw
    uc = decode_client_event('{"type":"session.close"}', Dialect.GA)
    assert uc == UnknownClientEvent(type="session.close", raw={"type": "session.close"})
    assert encode_client_event(uc, Dialect.GA) == '{"type":"session.close"}'
    assert dialect_supports(uc, Dialect.BETA)


@pytest.mark.parametrize(
    ("data", "event_type", "path"),
    [
        ("{not json", None, "$"),
        (b"\xff\xfe", None, "$"),
        ("[1, 2]", None, "$"),
        ('{"event_id": "e"}', None, "$.type"),
        ('{"type": 5}', None, "$.type"),
        (
            '{"type":"input_audio_buffer.speech_started","audio_start_ms":"10","item_id":"i"}',
            "input_audio_buffer.speech_started",
            "$.audio_start_ms",
        ),
        (
            '{"type":"input_audio_buffer.speech_started","item_id":"i"}',
            "input_audio_buffer.speech_started",
            "$.audio_start_ms",
        ),
        (
            '{"type":"response.done","response":{"output":[{"type":"message","content":[{"type":"text","text":7}]}]}}',
            "response.done",
            "$.response.output[0].content[0].text",
        ),
        (
            '{"type":"rate_limits.updated","rate_limits":{"name":"tokens"}}',
            "rate_limits.updated",
            "$.rate_limits",
        ),
        ('{"type":"response.created","response":"nope"}', "response.created", "$.response"),
    ],
)
def test_bad_frames_raise_one_protocol_error(
    data: str | bytes, event_type: str | None, path: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server_event(data, Dialect.GA)
    err = info.value
    assert err.event_type == event_type
    assert err.path == path
    assert len(err.excerpt) <= 203
    assert (event_type or "") in str(err) and path in str(err)
    assert isinstance(err, ValueError) and not isinstance(err, BaseExceptionGroup)


def test_error_excerpt_is_truncated_and_masks_secrets() -> None:
    frame = json.dumps(
        {
            "type": "session.created",
            "session": {"client_secret": {"value": "ek_SECRET123"}, "tools": "x" * 500},
        }
    )
    with pytest.raises(ProtocolError) as info:
        decode_server_event(frame, Dialect.BETA)
    assert "ek_SECRET123" not in str(info.value)
    assert info.value.path == "$.session.tools"
    assert info.value.excerpt.endswith("...")


def test_strict_types_and_int_for_float() -> None:
    ok = decode_server_event(
        '{"type":"rate_limits.updated","rate_limits":[{"name":"tokens","limit":5,"reset_seconds":1}]}',
        Dialect.GA,
    )
    assert ok == RateLimitsUpdated(
        rate_limits=[RateLimit(name="tokens", limit=5, reset_seconds=1.0)]
    )
    for bad in ('"limit":true', '"limit":1.5', '"name":3'):
        with pytest.raises(ProtocolError):
            decode_server_event(
                '{"type":"rate_limits.updated","rate_limits":[{' + bad + "}]}", Dialect.GA
            )


def test_error_event_shape() -> None:
    frame = '{"type":"error","event_id":"event_9","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid value","param":"type","event_id":null}}'
    ev = decode_server_event(frame, Dialect.GA)
    assert ev == ErrorEvent(
        event_id="event_9",
        error=ErrorDetail(
            type="invalid_request_error",
            code="invalid_value",
            message="Invalid value",
            param="type",
        ),
    )


def _supported(events: list[object]) -> list[tuple[object, Dialect]]:
    return [(e, d) for d in Dialect for e in events if dialect_supports(e, d)]


def _pair_id(pair: object) -> str:
    return f"{type(pair).__name__}" if not isinstance(pair, Dialect) else pair.value


@pytest.mark.parametrize(("event", "dialect"), _supported(sample_client_events()), ids=_pair_id)
def test_client_event_roundtrip(event: object, dialect: Dialect) -> None:
    once = decode_client_event(encode_client_event(event, dialect), dialect)
    twice = decode_client_event(encode_client_event(once, dialect), dialect)
    assert once == twice
    assert type(once) is type(event)


@pytest.mark.parametrize(("event", "dialect"), _supported(sample_server_events()), ids=_pair_id)
def test_server_event_roundtrip(event: object, dialect: Dialect) -> None:
    once = decode_server_event(encode_server_event(event, dialect), dialect)
    assert decode_server_event(encode_server_event(once, dialect), dialect) == once
    if dialect is Dialect.GA:
        # GA is the model's own shape: lossless except the filled-in session.type.
        if hasattr(event, "session"):
            assert once.session.audio == event.session.audio  # type: ignore[attr-defined]
        else:
            assert once == event


def test_unsupported_pairs_are_the_documented_ones() -> None:
    missing = {
        (type(e).__name__, d.value)
        for d in Dialect
        for e in (*sample_client_events(), *sample_server_events())
        if not dialect_supports(e, d)
    }
    assert ("TranscriptionSessionUpdate", "ga") in missing
    assert ("ConversationItemDone", "beta") in missing
    assert all(d == "beta" for n, d in missing if not n.startswith("Transcription"))


def test_converter_gives_ga_wire_dicts() -> None:
    ev = InputAudioBufferSpeechStarted(audio_start_ms=5, item_id="i")
    d = converter.unstructure(ev)
    assert d == {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "i"}
    assert converter.structure(d, ServerEvent) == ev
    create = ConversationItemCreate(item=FunctionCallItem(call_id="c", name="f", arguments="{}"))
    assert orjson.loads(encode_client_event(create, Dialect.GA))["item"]["type"] == "function_call"


def test_encode_rejects_non_events() -> None:
    with pytest.raises(TypeError):
        encode_client_event(ResponseParams(), Dialect.GA)  # type: ignore[arg-type]


def test_new_id() -> None:
    ids = {new_id("item_") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"item_[0-9A-Za-z]{21}", i) for i in ids)
    assert re.fullmatch(r"event_[0-9A-Za-z]{21}", new_id("event_"))


def test_protocol_error_pickles() -> None:
    import pickle

    err = ProtocolError("bad", event_type="error", path="$.error", excerpt="{...}")
    back = pickle.loads(pickle.dumps(err))
    assert (back.reason, back.event_type, back.path, back.excerpt) == (
        "bad",
        "error",
        "$.error",
        "{...}",
    )
    assert str(back) == str(err)


def test_contract_nested_field_names() -> None:
    import attrs

    from orchestrator.protocol import (
        InputTokenDetails,
        OutputTokenDetails,
        StatusDetails,
        TurnDetection,
        Usage,
    )

    def names(cls: type) -> set[str]:
        return {a.name for a in attrs.fields(cls)}

    assert names(ErrorDetail) == {"type", "code", "message", "param", "event_id"}
    assert names(RateLimit) == {"name", "limit", "remaining", "reset_seconds"}
    assert names(StatusDetails) == {"type", "reason", "error"}
    assert names(Usage) == {
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "input_token_details",
        "output_token_details",
    }
    assert {"cached_tokens", "cached_tokens_details", "image_tokens"} <= names(InputTokenDetails)
    assert "reasoning_tokens" in names(OutputTokenDetails)
    assert {"idle_timeout_ms", "eagerness", "create_response", "interrupt_response"} <= names(
        TurnDetection
    )
    assert repr(NULL) == "NULL"
