"""Dialect rendering and encoding of server events.

The server builds every event as a GA-shaped ``dict`` (cheap, exact, and able to
carry the explicit ``null`` fields the real service sends). :func:`render` turns it
into the wire form of a dialect: GA is passed through; beta renames event types
(``response.output_audio.delta`` -> ``response.audio.delta``,
``conversation.item.added`` -> ``conversation.item.created``), drops events beta does
not have (``conversation.item.done``), flattens the session object, and adds
``object: "realtime.item"`` / beta content types to items.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from orchestrator.protocol import Dialect

from .defaults import GA_FORMATS

_BETA_TYPES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
_BETA_DROPPED = frozenset({"conversation.item.done", "input_audio_buffer.timeout_triggered"})
_BETA_CONTENT = {"output_audio": "audio", "output_text": "text"}
#: Beta server events that carry no ``obfuscation`` field.
_DELTA_TYPES = frozenset(
    {
        "response.audio_transcript.delta",
        "response.text.delta",
        "response.function_call_arguments.delta",
        "conversation.item.input_audio_transcription.delta",
    }
)


def encode(event: dict[str, Any]) -> str:
    """Serialize a rendered event to the JSON text of one frame."""
    return orjson.dumps(event).decode()


def render(event: dict[str, Any], dialect: Dialect) -> dict[str, Any] | None:
    """The wire form of a GA-shaped ``event`` in ``dialect``; ``None`` if it has none.

    GA events are returned as they are. Beta rendering copies what it changes and never
    mutates nested objects of ``event`` (items are shared with the conversation state).
    """
    if dialect is Dialect.GA:
        if "session" in event:
            return {**event, "session": ga_session(event["session"])}
        if "response" in event:
            return {**event, "response": _public(event["response"])}
        return event
    etype = event["type"]
    if etype in _BETA_DROPPED:
        return None
    out = dict(event)
    out["type"] = new_type = _BETA_TYPES.get(etype, etype)
    if new_type in _DELTA_TYPES:
        out.pop("obfuscation", None)
    if "session" in out:
        out["session"] = beta_session(out["session"])
    if "item" in out:
        out["item"] = beta_item(out["item"])
    if "response" in out:
        out["response"] = beta_response(out["response"])
    if "part" in out:
        part = dict(out["part"])
        part["type"] = _BETA_CONTENT.get(part["type"], part["type"])
        out["part"] = part
    return out


def beta_item(item: dict[str, Any]) -> dict[str, Any]:
    """A GA item as the beta protocol shows it."""
    out: dict[str, Any] = {"id": item.get("id"), "object": "realtime.item"}
    for key, value in item.items():
        if key == "id":
            continue
        if key == "content":
            value = [
                {**part, "type": _BETA_CONTENT.get(part.get("type"), part.get("type"))}
                for part in value
            ]
        out[key] = value
    return out


def beta_response(resp: dict[str, Any]) -> dict[str, Any]:
    """A GA response object as the beta protocol shows it."""
    audio = (resp.get("audio") or {}).get("output") or {}
    fmt = audio.get("format") or {"type": "audio/pcm"}
    return {
        "object": "realtime.response",
        "id": resp["id"],
        "status": resp["status"],
        "status_details": resp["status_details"],
        "output": [beta_item(i) for i in resp["output"]],
        "conversation_id": resp["conversation_id"],
        "modalities": ["text"] if resp["output_modalities"] == ["text"] else ["audio", "text"],
        "voice": audio.get("voice", "alloy"),
        "output_audio_format": GA_FORMATS.get(fmt.get("type"), "pcm16"),
        "temperature": resp.get("_temperature", 0.8),
        "max_output_tokens": resp["max_output_tokens"],
        "usage": resp["usage"],
        "metadata": resp["metadata"],
    }


def beta_turn_detection(td: dict[str, Any] | None) -> dict[str, Any] | None:
    if td is None:
        return None
    out = dict(td)
    if out.get("type") == "server_vad" and out.get("idle_timeout_ms") is None:
        out.pop("idle_timeout_ms", None)
    return out


def beta_session(session: dict[str, Any]) -> dict[str, Any]:
    """The internal (GA-shaped) session as the flat beta session object."""
    ain = session["audio"]["input"]
    aout = session["audio"]["output"]
    beta = session.get("_beta", {})
    return {
        "id": session["id"],
        "object": "realtime.session",
        "expires_at": session["expires_at"],
        "input_audio_noise_reduction": ain["noise_reduction"],
        "turn_detection": beta_turn_detection(ain["turn_detection"]),
        "input_audio_format": GA_FORMATS[ain["format"]["type"]],
        "input_audio_transcription": ain["transcription"],
        "client_secret": beta.get("client_secret"),
        "include": session["include"],
        "model": session["model"],
        "modalities": ["text"] if session["output_modalities"] == ["text"] else ["audio", "text"],
        "instructions": session["instructions"],
        "voice": aout["voice"],
        "output_audio_format": GA_FORMATS[aout["format"]["type"]],
        "tool_choice": session["tool_choice"],
        "temperature": beta.get("temperature", 0.8),
        "max_response_output_tokens": session["max_output_tokens"],
        "speed": aout["speed"],
        "tracing": session["tracing"],
        "tools": copy.deepcopy(session["tools"]),
    }


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def ga_session(session: dict[str, Any]) -> dict[str, Any]:
    """The internal session as the GA session object (private keys removed)."""
    return {k: v for k, v in session.items() if not k.startswith("_")}
