"""Explicit ``null`` in client events: "not given" for optional fields (PROTOCOL_NOTES §8).

Widely used clients serialize unset optional fields as ``null`` (livekit-agents sends
``response.create`` with ``"instructions": null`` on every reply), and the real service
treats such a ``null`` as if the field were absent. :func:`drop_unset_nulls` applies that
rule to a parsed client event once, before validation, so the validators
(:mod:`.session_update`, :mod:`.state`) only ever see fields that were really given and
keep refusing wrong *types* with the real error text.

A ``null`` is kept (and so validated) where it is not "not given":

- where ``null`` has a meaning of its own: ``turn_detection: null`` turns VAD off,
  ``transcription: null`` / ``noise_reduction: null`` turn them off, ``tracing``,
  ``prompt`` and ``include`` are cleared by ``null`` (:data:`MEANINGFUL`);
- on a required field: a top-level field the event cannot do without
  (:data:`REQUIRED`) is refused here with the real text, ``Invalid type for 'item_id':
  expected a string, but got null instead.``; a nested ``type`` tag is kept, so the
  validators refuse it as the wrong type. (A null on a required field inside an item or
  a tool is dropped like any other and then refused as missing: ``Missing required
  parameter: 'item.call_id'.``)
- inside free-form objects (:data:`OPAQUE`: ``metadata``, a tool's JSON-schema
  ``parameters``, ``headers``, prompt ``variables``...): their content is the client's
  own data, never touched.
"""

from __future__ import annotations

from typing import Any

from .errors import invalid_type

__all__ = ["MEANINGFUL", "OPAQUE", "REQUIRED", "drop_unset_nulls"]

#: fields where ``null`` means something (off / cleared), at any depth
MEANINGFUL = frozenset(
    {
        "turn_detection",
        "transcription",
        "noise_reduction",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "tracing",
        "prompt",
        "include",
    }
)

#: objects whose content is the client's own data: not walked
OPAQUE = frozenset({"metadata", "parameters", "headers", "variables", "token_limits"})

_OBJECT, _STRING, _INTEGER = "an object", "a string", "an integer"
#: per event type, the top-level fields it cannot do without, and their JSON type
REQUIRED: dict[str, dict[str, str]] = {
    "session.update": {"session": _OBJECT},
    "transcription_session.update": {"session": _OBJECT},
    "input_audio_buffer.append": {"audio": _STRING},
    "conversation.item.create": {"item": _OBJECT},
    "conversation.item.retrieve": {"item_id": _STRING},
    "conversation.item.delete": {"item_id": _STRING},
    "conversation.item.truncate": {
        "item_id": _STRING,
        "content_index": _INTEGER,
        "audio_end_ms": _INTEGER,
    },
}


def drop_unset_nulls(etype: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the explicit nulls of its optional fields (see the module docs).

    Returns ``data`` itself when it holds no such null (the common case costs one pass
    over the top-level keys and the objects below them), else a copy; never mutates.
    Raises :class:`~.errors.ClientError` (``invalid_type``) for a null required field.
    """
    required = REQUIRED.get(etype, {})
    for key, expected in required.items():
        if key in data and data[key] is None:
            raise invalid_type(key, expected, None)
    return _walk(data, _NESTED_KEEP)


def _walk(obj: dict[str, Any], keep: frozenset[str]) -> Any:
    out: dict[str, Any] | None = None
    for key, value in obj.items():
        new = value
        if value is None:
            if key in keep or key in MEANINGFUL:
                continue
            new = _DROP
        elif key in OPAQUE:
            continue
        elif isinstance(value, dict):
            new = _walk(value, _NESTED_KEEP)
        elif isinstance(value, list):
            new = _walk_list(value)
        if new is not value:
            if out is None:
                out = dict(obj)
            if new is _DROP:
                del out[key]
            else:
                out[key] = new
    return obj if out is None else out


def _walk_list(values: list[Any]) -> list[Any]:
    out: list[Any] | None = None
    for i, v in enumerate(values):
        if isinstance(v, dict):
            new = _walk(v, _NESTED_KEEP)
            if new is not v:
                if out is None:
                    out = list(values)
                out[i] = new
    return values if out is None else out


_DROP: Any = object()
_NESTED_KEEP = frozenset({"type"})
