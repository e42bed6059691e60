"""``protocol.beta.event_to_beta``: whole GA-shaped server event dicts in beta form.

The embedded server renders its events with it, so it must cope with what dicts built
by hand carry and model objects do not: explicit ``null`` values, ``obfuscation``,
items without ``object``. Results validate against the official beta models.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.protocol.beta import (
    FORMAT_FROM_BETA,
    FORMAT_TO_BETA,
    GA_ONLY_TYPES,
    event_to_beta,
    format_from_beta,
    format_to_beta,
)

openai = pytest.importorskip("openai")
pydantic = pytest.importorskip("pydantic")

from openai.types.beta import realtime as beta_rt  # noqa: E402

BETA_SERVER = pydantic.TypeAdapter(beta_rt.RealtimeServerEvent)

ITEM: dict[str, Any] = {
    "id": "item_1",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_audio", "transcript": "hi"}],
}


def _ga_session() -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_1",
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "be brief",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": 1,
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
        "include": None,
    }


def _render(event: dict[str, Any]) -> dict[str, Any] | None:
    before = copy.deepcopy(event)
    out = event_to_beta(event)
    assert event == before  # nothing nested in the input is touched
    return out


def test_session_is_flattened_with_explicit_nulls_kept() -> None:
    out = _render({"type": "session.created", "event_id": "e", "session": _ga_session()})
    assert out is not None
    s = out["session"]
    assert (s["input_audio_format"], s["output_audio_format"]) == ("g711_ulaw", "pcm16")
    assert s["modalities"] == ["audio", "text"] and s["max_response_output_tokens"] == "inf"
    assert s["input_audio_transcription"] is None and "input_audio_transcription" in s
    assert "idle_timeout_ms" not in s["turn_detection"]  # beta has no idle timeout
    assert not {"type", "truncation", "prompt", "audio", "output_modalities"} & s.keys()
    BETA_SERVER.validate_python({**out, "session": {**s, "client_secret": None}})


def test_items_are_tagged_and_renamed_everywhere() -> None:
    added = _render({"type": "conversation.item.added", "previous_item_id": None, "item": ITEM})
    assert added is not None
    assert added["type"] == "conversation.item.created" and added["previous_item_id"] is None
    assert added["item"]["object"] == "realtime.item"
    assert added["item"]["content"][0]["type"] == "audio"
    BETA_SERVER.validate_python({**added, "event_id": "e"})
    response = {
        "object": "realtime.response",
        "id": "resp_1",
        "status": "completed",
        "status_details": None,
        "output": [ITEM],
        "conversation_id": "conv_1",
        "output_modalities": ["text"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcma"}, "voice": "sage"}},
        "usage": None,
        "metadata": None,
    }
    done = _render({"type": "response.done", "event_id": "e", "response": response})
    assert done is not None
    r = done["response"]
    assert (r["modalities"], r["voice"], r["output_audio_format"]) == (
        ["text"],
        "sage",
        "g711_alaw",
    )
    assert r["output"][0]["object"] == "realtime.item"
    assert r["output"][0]["content"][0]["type"] == "audio"
    BETA_SERVER.validate_python(done)


def test_renames_drops_and_obfuscation() -> None:
    delta = {
        "type": "response.output_text.delta",
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": "hi",
        "obfuscation": "xxxx",
    }
    out = _render(delta)
    assert out == {k: v for k, v in delta.items() if k != "obfuscation"} | {
        "type": "response.text.delta"
    }
    BETA_SERVER.validate_python(out)
    for ga_only in GA_ONLY_TYPES:
        assert event_to_beta({"type": ga_only}) is None
    cleared = {"type": "input_audio_buffer.cleared", "event_id": "e"}
    assert _render(cleared) == cleared


def test_format_tables_round_trip() -> None:
    for ga_type, name in FORMAT_TO_BETA.items():
        assert format_to_beta(FORMAT_FROM_BETA[name]) == name
        assert format_from_beta(name)["type"] == ga_type
    fresh = format_from_beta("pcm16")
    fresh["rate"] = 8000
    assert FORMAT_FROM_BETA["pcm16"]["rate"] == 24000  # callers get a copy
