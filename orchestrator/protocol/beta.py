"""Beta-dialect translation tables and payload transforms (pure functions on dicts).

The internal model is GA-shaped. For the beta dialect (``OpenAI-Beta: realtime=v1``):

- event names: ``response.output_audio.*`` <-> ``response.audio.*``,
  ``response.output_audio_transcript.*`` <-> ``response.audio_transcript.*``,
  ``response.output_text.*`` <-> ``response.text.*``, and ``conversation.item.added``
  <-> ``conversation.item.created`` (a beta ``conversation.item.created`` decodes to
  ``ConversationItemAdded``);
- session config: GA nested ``audio.input`` / ``audio.output`` <-> beta flat
  ``input_audio_format`` / ``input_audio_transcription`` / ``input_audio_noise_reduction``
  / ``turn_detection`` / ``output_audio_format`` / ``voice`` / ``speed``;
  ``output_modalities`` <-> ``modalities`` (GA ``["audio"]`` is beta ``["audio", "text"]``);
  ``max_output_tokens`` <-> ``max_response_output_tokens``; GA-only ``type``,
  ``truncation``, ``prompt``, ``reasoning``, ``parallel_tool_calls`` are dropped, and so
  are the transcription's GA-only ``delay`` / ``keywords`` / ``languages``;
- audio formats: ``{"type": "audio/pcm", "rate": 24000}`` / ``audio/pcmu`` / ``audio/pcma``
  <-> ``pcm16`` / ``g711_ulaw`` / ``g711_alaw``;
- responses: ``output_modalities`` / ``audio.output.{voice,format}`` <-> ``modalities`` /
  ``voice`` / ``output_audio_format``; response.create's ``max_output_tokens`` <->
  ``max_response_output_tokens`` (a beta *response object* already says
  ``max_output_tokens``);
- item content types: ``output_text`` / ``output_audio`` <-> ``text`` / ``audio``.

Transforms mutate and return the dict they are given (the codec owns it) and leave
anything of an unexpected shape alone for the converter to reject with a precise path.
:func:`event_to_beta` renders a whole GA-shaped server event dict (explicit nulls and
all) with the same tables, for the embedded server, which builds events as dicts.
The GA dialect needs a few transforms too (``GA_ENCODE_TRANSFORMS``): the GA server
requires ``session.type`` and rejects the beta-only ``temperature``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from .common import MAX_ARRAY_LENGTH

__all__ = [
    "BETA_DECODE_TRANSFORMS",
    "BETA_ENCODE_TRANSFORMS",
    "BETA_ONLY_TYPES",
    "FORMAT_FROM_BETA",
    "FORMAT_TO_BETA",
    "GA_DECODE_TRANSFORMS",
    "GA_ENCODE_TRANSFORMS",
    "GA_ONLY_TYPES",
    "GA_TO_BETA_TYPE",
    "event_to_beta",
    "format_from_beta",
    "format_to_beta",
    "modalities_from_beta",
    "modalities_to_beta",
    "session_from_beta",
    "session_to_beta",
]

Transform = Callable[[dict[str, Any]], dict[str, Any]]

GA_TO_BETA_TYPE: dict[str, str] = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
"""GA wire name -> beta wire name, for events that were renamed."""

GA_ONLY_TYPES: frozenset[str] = frozenset(
    {
        "conversation.item.done",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.dtmf_event_received",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    }
)
"""Events that have no beta wire form."""

BETA_ONLY_TYPES: frozenset[str] = frozenset(
    {"transcription_session.update", "transcription_session.updated"}
)
"""Events that have no GA wire form (they still decode leniently in GA: the 2026 spec
shows a GA-labelled ``transcription_session.updated`` example)."""

FORMAT_TO_BETA: dict[str, str] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "g711_ulaw",
    "audio/pcma": "g711_alaw",
}
"""GA audio format ``type`` -> beta format name (the keys are all the GA format types)."""
FORMAT_FROM_BETA: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
"""Beta format name -> GA format object (the keys are all the beta format names); copy
before changing one (:func:`format_from_beta` does)."""
_PART_TO_BETA = {"output_text": "text", "output_audio": "audio"}
_PART_FROM_BETA = {"text": "output_text", "audio": "output_audio"}
_GA_ONLY_SESSION_KEYS = ("type", "truncation", "prompt", "reasoning", "parallel_tool_calls")
_GA_ONLY_TRANSCRIPTION_KEYS = ("delay", "keywords", "languages")
_GA_ONLY_RESPONSE_KEYS = ("prompt", "reasoning", "parallel_tool_calls")


def _transcription_to_beta(t: Any) -> Any:
    if isinstance(t, dict) and any(k in t for k in _GA_ONLY_TRANSCRIPTION_KEYS):
        return {k: v for k, v in t.items() if k not in _GA_ONLY_TRANSCRIPTION_KEYS}
    return t


def format_to_beta(fmt: Any) -> Any:
    """``{"type": "audio/pcm", "rate": 24000}`` -> ``"pcm16"`` (unknown types pass as is)."""
    if isinstance(fmt, dict):
        t = fmt.get("type")
        return FORMAT_TO_BETA.get(t, t) if isinstance(t, str) else fmt
    return fmt


def format_from_beta(fmt: Any) -> Any:
    """``"pcm16"`` -> ``{"type": "audio/pcm", "rate": 24000}``; other strings -> ``{"type": s}``."""
    if isinstance(fmt, str):
        known = FORMAT_FROM_BETA.get(fmt)
        return dict(known) if known is not None else {"type": fmt}
    return fmt


def modalities_to_beta(m: Any) -> Any:
    """GA ``output_modalities`` -> beta ``modalities`` (``["audio"]`` -> ``["audio", "text"]``)."""
    if isinstance(m, list) and "audio" in m:
        return ["audio", "text"]
    return m


def modalities_from_beta(m: Any) -> Any:
    """Beta ``modalities`` -> GA ``output_modalities`` (any list with audio -> ``["audio"]``)."""
    if _short_list(m) and "audio" in m:
        return ["audio"]
    return m


# --- session config ------------------------------------------------------------------


def _turn_detection_to_beta(td: Any) -> Any:
    # Beta has no idle timeout: the GA service's explicit "idle_timeout_ms": null goes.
    if isinstance(td, dict) and "idle_timeout_ms" in td and td["idle_timeout_ms"] is None:
        return {k: v for k, v in td.items() if k != "idle_timeout_ms"}
    return td


def session_to_beta(s: Any) -> Any:
    """GA-shaped session dict -> beta flat session dict."""
    if not isinstance(s, dict):
        return s
    out: dict[str, Any] = {}
    for k, v in s.items():
        if k in _GA_ONLY_SESSION_KEYS:
            continue
        if k == "output_modalities":
            out["modalities"] = modalities_to_beta(v)
        elif k == "max_output_tokens":
            out["max_response_output_tokens"] = v
        elif k == "audio" and isinstance(v, dict):
            inp = v.get("input")
            if isinstance(inp, dict):
                for gk, bk, fn in (
                    ("format", "input_audio_format", format_to_beta),
                    ("transcription", "input_audio_transcription", _transcription_to_beta),
                    ("noise_reduction", "input_audio_noise_reduction", None),
                    ("turn_detection", "turn_detection", _turn_detection_to_beta),
                ):
                    if gk in inp:
                        out[bk] = inp[gk] if fn is None else fn(inp[gk])
            outp = v.get("output")
            if isinstance(outp, dict):
                for gk, bk in (
                    ("format", "output_audio_format"),
                    ("voice", "voice"),
                    ("speed", "speed"),
                ):
                    if gk in outp:
                        out[bk] = format_to_beta(outp[gk]) if gk == "format" else outp[gk]
        else:
            out[k] = v
    return out


_SESSION_INPUT_FROM_BETA = {
    "input_audio_format": "format",
    "input_audio_transcription": "transcription",
    "input_audio_noise_reduction": "noise_reduction",
    "turn_detection": "turn_detection",
}
_SESSION_OUTPUT_FROM_BETA = {"output_audio_format": "format", "voice": "voice", "speed": "speed"}


def session_from_beta(s: Any) -> Any:
    """Beta flat session dict -> GA-shaped session dict (``client_secret`` is dropped)."""
    if not isinstance(s, dict):
        return s
    out: dict[str, Any] = {}
    inp: dict[str, Any] = {}
    outp: dict[str, Any] = {}
    for k, v in s.items():
        if v is None and (k in _SESSION_INPUT_FROM_BETA or k in _SESSION_OUTPUT_FROM_BETA):
            continue  # null = unset in the model; keeps beta -> GA -> beta stable
        if k in _SESSION_INPUT_FROM_BETA:
            gk = _SESSION_INPUT_FROM_BETA[k]
            inp[gk] = format_from_beta(v) if gk == "format" else v
        elif k in _SESSION_OUTPUT_FROM_BETA:
            gk = _SESSION_OUTPUT_FROM_BETA[k]
            outp[gk] = format_from_beta(v) if gk == "format" else v
        elif k == "modalities":
            out["output_modalities"] = modalities_from_beta(v)
        elif k == "max_response_output_tokens":
            out["max_output_tokens"] = v
        elif k != "client_secret":
            out[k] = v
    if inp or outp:
        audio: dict[str, Any] = {}
        if inp:
            audio["input"] = inp
        if outp:
            audio["output"] = outp
        out["audio"] = audio
    return out


# --- items and responses -----------------------------------------------------------


def _item_parts(item: Any, table: dict[str, str]) -> Any:
    if isinstance(item, dict):
        content = item.get("content")
        if _short_list(content) and any(
            isinstance(p, dict) and p.get("type") in table for p in content
        ):
            new_content = []
            for p in content:
                if isinstance(p, dict) and p.get("type") in table:
                    p = {**p, "type": table[p["type"]]}
                new_content.append(p)
            item = {**item, "content": new_content}
    return item


def _short_list(value: Any) -> TypeGuard[list[Any]]:
    """A list short enough to be decoded (a longer one is left as it is: the converter
    rejects it without looking at the elements, so junk costs no pass over it here)."""
    return isinstance(value, list) and len(value) <= MAX_ARRAY_LENGTH


def _items(items: Any, table: dict[str, str]) -> Any:
    if _short_list(items):
        return [_item_parts(i, table) for i in items]
    return items


def _response_to_beta(r: Any, *, params: bool) -> Any:
    if not isinstance(r, dict):
        return r
    out: dict[str, Any] = {}
    for k, v in r.items():
        if k == "output_modalities":
            out["modalities"] = modalities_to_beta(v)
        elif k == "max_output_tokens":
            out["max_response_output_tokens" if params else "max_output_tokens"] = v
        elif k == "audio" and isinstance(v, dict):
            o = v.get("output")
            if isinstance(o, dict):
                if "voice" in o:
                    out["voice"] = o["voice"]
                if "format" in o:
                    out["output_audio_format"] = format_to_beta(o["format"])
        elif k in ("output", "input"):
            out[k] = _items(v, _PART_TO_BETA)
        elif k not in _GA_ONLY_RESPONSE_KEYS:
            out[k] = v
    return out


def _response_from_beta(r: Any) -> Any:
    if not isinstance(r, dict):
        return r
    out: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    for k, v in r.items():
        if k == "modalities":
            out["output_modalities"] = modalities_from_beta(v)
        elif k == "max_response_output_tokens":
            out["max_output_tokens"] = v
        elif k in ("voice", "output_audio_format") and v is None:
            continue  # null = not given (PROTOCOL_NOTES §8)
        elif k == "voice":
            audio_out["voice"] = v
        elif k == "output_audio_format":
            audio_out["format"] = format_from_beta(v)
        elif k in ("output", "input"):
            out[k] = _items(v, _PART_FROM_BETA)
        else:
            out[k] = v
    if audio_out:
        out["audio"] = {"output": audio_out}
    return out


def _on(key: str, fn: Callable[[Any], Any]) -> Transform:
    def transform(d: dict[str, Any]) -> dict[str, Any]:
        if key in d:
            d[key] = fn(d[key])
        return d

    return transform


def _item_from_beta(item: Any) -> Any:
    return _item_parts(item, _PART_FROM_BETA)


def _item_to_beta(item: Any) -> Any:
    return _item_parts(item, _PART_TO_BETA)


def _tag_item(item: Any) -> Any:
    # The beta service marks every item it sends; the codec leaves ``object`` as the
    # model has it (so decoding what it encoded gives the same event back).
    if not isinstance(item, dict):
        return item
    out: dict[str, Any] = {"id": item.get("id"), "object": "realtime.item"}
    out.update((k, v) for k, v in item.items() if k not in out)
    return out


_ITEM_EVENTS = (
    "conversation.item.create",
    "conversation.item.created",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "response.output_item.added",
    "response.output_item.done",
)
_SESSION_EVENTS = (
    "session.update",
    "session.created",
    "session.updated",
    "transcription_session.update",
    "transcription_session.updated",
)

BETA_DECODE_TRANSFORMS: dict[str, Transform] = {
    **{t: _on("item", _item_from_beta) for t in _ITEM_EVENTS},
    **{t: _on("session", session_from_beta) for t in _SESSION_EVENTS},
    "response.created": _on("response", _response_from_beta),
    "response.done": _on("response", _response_from_beta),
    "response.create": _on("response", _response_from_beta),
}
"""GA wire type -> transform of a beta payload into GA shape (applied after renaming)."""

BETA_ENCODE_TRANSFORMS: dict[str, Transform] = {
    **{t: _on("item", _item_to_beta) for t in _ITEM_EVENTS},
    **{t: _on("session", session_to_beta) for t in _SESSION_EVENTS},
    "response.created": _on("response", lambda r: _response_to_beta(r, params=False)),
    "response.done": _on("response", lambda r: _response_to_beta(r, params=False)),
    "response.create": _on("response", lambda r: _response_to_beta(r, params=True)),
}
"""GA type -> transform of a GA-shaped payload into beta shape."""


def _ga_session(s: Any) -> Any:
    if isinstance(s, dict):
        s.pop("temperature", None)
        if "type" not in s:
            s = {"type": "realtime", **s}
    return s


def _drop_temperature(r: Any) -> Any:
    if isinstance(r, dict):
        r.pop("temperature", None)
    return r


GA_DECODE_TRANSFORMS: dict[str, Transform] = {
    "transcription_session.update": _on("session", session_from_beta),
    "transcription_session.updated": _on("session", session_from_beta),
}
"""Transcription-session events keep the flat shape even in GA-labelled documentation."""

GA_ENCODE_TRANSFORMS: dict[str, Transform] = {
    "session.update": _on("session", _ga_session),
    "session.created": _on("session", _ga_session),
    "session.updated": _on("session", _ga_session),
    "response.create": _on("response", _drop_temperature),
    "response.created": _on("response", _drop_temperature),
    "response.done": _on("response", _drop_temperature),
}
"""GA requires ``session.type`` (``"realtime"`` when unset) and has no ``temperature``."""


def event_to_beta(event: dict[str, Any]) -> dict[str, Any] | None:
    """A GA-shaped server event dict in its beta wire form, as the beta service sends it.

    For code that builds events as plain dicts (the embedded server) rather than model
    objects. Returns ``None`` for events beta does not have (:data:`GA_ONLY_TYPES`).
    Applies :data:`GA_TO_BETA_TYPE` and :data:`BETA_ENCODE_TRANSFORMS`, plus what only
    such dicts need: explicit ``null`` values are kept (a null ``idle_timeout_ms`` is
    dropped: beta has no idle timeout), ``obfuscation`` is dropped (no beta event has
    it), and items, also those in a response's ``output``, get
    ``"object": "realtime.item"``. Copies what it changes: ``event`` and everything
    nested in it stay as they are.
    """
    etype = event["type"]
    if etype in GA_ONLY_TYPES:
        return None
    out = {k: v for k, v in event.items() if k != "obfuscation"}
    out["type"] = GA_TO_BETA_TYPE.get(etype, etype)
    transform = BETA_ENCODE_TRANSFORMS.get(etype)
    if transform is not None:
        out = transform(out)
    if "item" in out:
        out["item"] = _tag_item(out["item"])
    response = out.get("response")
    if isinstance(response, dict) and isinstance(response.get("output"), list):
        out["response"] = {**response, "output": [_tag_item(i) for i in response["output"]]}
    return out
