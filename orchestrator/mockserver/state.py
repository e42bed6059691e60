"""Pure conversation state of one connection: session, items, validation. No I/O.

Methods return GA-shaped server events (without ``event_id``) or raise
:class:`~orchestrator.mockserver.errors.ClientError`; a failing call changes nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import attrs

from orchestrator.audio import ms_for_samples
from orchestrator.protocol import Dialect, new_id

from .errors import ClientError, invalid_type, invalid_value, missing_parameter, unknown_parameter
from .mcp import approval_response_item
from .session_update import apply_beta_update, apply_ga_update
from .spec import new_call_id

Event = dict[str, Any]

#: client item types (an ``mcp_approval_response`` is checked by :mod:`.mcp`)
_ITEM_TYPES = ("message", "function_call", "function_call_output", "mcp_approval_response")
_USER_PARTS = ("input_text", "input_audio", "input_image")
_ASSISTANT_PARTS = {
    "output_text": "output_text",
    "output_audio": "output_audio",
    "text": "output_text",
    "audio": "output_audio",
}


@attrs.define(eq=False)
class Conversation:
    """The session object and the ordered conversation items of one connection."""

    session: dict[str, Any]
    dialect: Dialect
    conversation_id: str = attrs.field(factory=lambda: new_id("conv_"))
    items: list[dict[str, Any]] = attrs.field(factory=list)
    #: milliseconds of audio per item id (assistant output audio, user input audio)
    audio_ms: dict[str, int] = attrs.field(factory=dict)
    has_assistant_audio: bool = False
    #: a transcription session (:mod:`.transcription`): turns are transcribed, never answered
    transcription: bool = False

    # -- session ------------------------------------------------------------------------
    def update_session(self, patch: object) -> Event:
        """Validate and merge a ``session.update``; the ``session.updated`` event."""
        apply = apply_beta_update if self.dialect is Dialect.BETA else apply_ga_update
        self.session = apply(self.session, patch, has_assistant_audio=self.has_assistant_audio)
        return {"type": "session.updated", "session": self.session}

    # -- items --------------------------------------------------------------------------
    def find(self, item_id: str) -> int | None:
        """Index of the last item with ``item_id`` (ids may repeat), or None."""
        for i in range(len(self.items) - 1, -1, -1):
            if self.items[i]["id"] == item_id:
                return i
        return None

    def _index_of(self, item_id: str, code: str, doing: str, param: str | None) -> int:
        """Index of the last item with ``item_id``, or raise ``code`` ("Error <doing>
        item: ... does not exist.") naming ``param``."""
        idx = self.find(item_id)
        if idx is None:
            raise ClientError(
                code, f"Error {doing} item: the item with id '{item_id}' does not exist.", param
            )
        return idx

    def last_item_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def insert(self, item: dict[str, Any], previous_item_id: str | None = None) -> str | None:
        """Place ``item`` after ``previous_item_id`` ("root" = first, None = last).

        Returns the ``previous_item_id`` the events show (None when first).
        """
        if previous_item_id is None:
            prev = self.last_item_id()
            self.items.append(item)
            return prev
        if previous_item_id == "root":
            self.items.insert(0, item)
            return None
        idx = self.find(previous_item_id)
        if idx is None:
            raise ClientError(
                "item_create_invalid_previous_item_id",
                f"Error adding item: the previous item with id '{previous_item_id}' does not exist.",
                "previous_item_id",
            )
        self.items.insert(idx + 1, item)
        return previous_item_id

    def create_item(self, raw_item: object, previous_item_id: object) -> list[Event]:
        """Handle ``conversation.item.create``: ``conversation.item.added`` + ``.done``."""
        if previous_item_id is not None and not isinstance(previous_item_id, str):
            raise invalid_type("previous_item_id", "a string", previous_item_id)
        if isinstance(raw_item, dict) and raw_item.get("type") == "mcp_approval_response":
            item, audio_ms = approval_response_item(raw_item, self.items), 0
        else:
            item, audio_ms = normalize_item(raw_item, self.dialect)
        prev = self.insert(item, previous_item_id)
        if audio_ms:
            self.audio_ms[item["id"]] = audio_ms
        return [
            {"type": "conversation.item.added", "previous_item_id": prev, "item": item},
            {"type": "conversation.item.done", "previous_item_id": prev, "item": item},
        ]

    def delete_item(self, item_id: object) -> Event:
        item_id = _req_str(item_id, "item_id")
        idx = self._index_of(item_id, "item_delete_invalid_item_id", "deleting", None)
        del self.items[idx]
        return {"type": "conversation.item.deleted", "item_id": item_id}

    def retrieve_item(self, item_id: object) -> Event:
        item_id = _req_str(item_id, "item_id")
        idx = self._index_of(item_id, "item_retrieve_invalid_item_id", "retrieving", None)
        return {"type": "conversation.item.retrieved", "item": self.items[idx]}

    def truncate_item(self, item_id: object, content_index: object, audio_end_ms: object) -> Event:
        item_id = _req_str(item_id, "item_id")
        if isinstance(content_index, bool) or not isinstance(content_index, int):
            raise invalid_type("content_index", "an integer", content_index)
        if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, int):
            raise invalid_type("audio_end_ms", "an integer", audio_end_ms)
        if audio_end_ms < 0:
            raise invalid_value("audio_end_ms", audio_end_ms)
        idx = self._index_of(item_id, "item_truncate_invalid_item_id", "truncating", "item_id")
        item = self.items[idx]
        content = item.get("content") or []
        if (
            item.get("type") != "message"
            or item.get("role") != "assistant"
            or not any(p.get("type") == "output_audio" for p in content)
        ):
            raise ClientError(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                None,
            )
        if (
            not 0 <= content_index < len(content)
            or content[content_index].get("type") != "output_audio"
        ):
            raise invalid_value("content_index", content_index)
        have = self.audio_ms.get(item_id, 0)
        if audio_end_ms > have:
            raise ClientError(
                "invalid_value",
                f"Audio content of {have}ms is already shorter than {audio_end_ms}ms",
                None,
            )
        new_content = list(content)
        new_content[content_index] = {**content[content_index], "transcript": ""}
        self.items[idx] = {**item, "content": new_content}
        self.audio_ms[item_id] = audio_end_ms
        return {
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
        }

    def open_part(self, item_id: str, part: dict[str, Any]) -> None:
        """A streaming assistant item's content part began (``content_part.added``):
        the stored item now has that (still empty) part, so it can be truncated."""
        idx = self.find(item_id)
        if idx is None:
            return
        if part.get("type") == "audio":
            content = {"type": "output_audio", "transcript": part.get("transcript") or ""}
        else:
            content = {"type": "output_text", "text": part.get("text") or ""}
        self.items[idx] = {**self.items[idx], "content": [content]}

    def replace(self, item: dict[str, Any]) -> None:
        """Replace the stored item with the same id (a response finishing its item)."""
        idx = self.find(item["id"])
        if idx is not None:
            self.items[idx] = item

    def input_tokens(self) -> int:
        """A plausible prompt size: instructions + text (chars/4) + audio (10 tokens/s)."""
        chars = len(self.session.get("instructions") or "")
        audio = 0
        for item in self.items:
            for part in item.get("content") or ():
                chars += len(part.get("text") or part.get("transcript") or "")
            chars += len(item.get("arguments") or "") + len(item.get("output") or "")
            audio += self.audio_ms.get(item["id"], 0) if item.get("role") == "user" else 0
        return chars // 4 + audio // 100


def _req_str(v: object, p: str) -> str:
    if v is None:
        raise missing_parameter(p)
    if not isinstance(v, str):
        raise invalid_type(p, "a string", v)
    return v


def _audio_ms(data: object, p: str) -> int:
    if not isinstance(data, str):
        raise invalid_type(p, "a string", data)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(
            "invalid_value", f"Invalid '{p}': expected base64-encoded audio.", p
        ) from None
    return int(ms_for_samples(len(raw) // 2))  # PCM16 at 24 kHz: 2 bytes a sample


def normalize_item(raw: object, dialect: Dialect) -> tuple[dict[str, Any], int]:
    """Validate a client item; return the stored GA-shaped item and its audio length (ms)."""
    if not isinstance(raw, dict):
        raise invalid_type("item", "an object", raw)
    if "type" not in raw:
        raise missing_parameter("item.type")
    kind = raw["type"]
    if kind not in _ITEM_TYPES[:3]:
        raise invalid_value("item.type", kind, _ITEM_TYPES)
    item_id = raw.get("id")
    if item_id is None:
        item_id = new_id("item_")
    elif not isinstance(item_id, str):
        raise invalid_type("item.id", "a string", item_id)
    common = ("id", "type", "status", "object")
    status = raw.get("status", "completed")
    if status not in ("completed", "incomplete", "in_progress"):
        raise invalid_value("item.status", status, ("completed", "incomplete", "in_progress"))
    if kind == "function_call_output":
        _check_keys(raw, (*common, "call_id", "output"))
        return {
            "id": item_id,
            "type": kind,
            "call_id": _req_str(raw.get("call_id"), "item.call_id"),
            "output": _req_str(raw.get("output"), "item.output"),
        }, 0
    if kind == "function_call":
        _check_keys(raw, (*common, "call_id", "name", "arguments"))
        return {
            "id": item_id,
            "type": kind,
            "status": status,
            "name": _req_str(raw.get("name"), "item.name"),
            "call_id": raw.get("call_id") or new_call_id(),
            "arguments": _req_str(raw.get("arguments", ""), "item.arguments"),
        }, 0
    _check_keys(raw, (*common, "role", "content"))
    role = raw.get("role")
    if role is None:
        raise missing_parameter("item.role")
    if role not in ("user", "assistant", "system"):
        raise invalid_value("item.role", role, ("user", "assistant", "system"))
    content = raw.get("content")
    if content is None:
        raise missing_parameter("item.content")
    if not isinstance(content, list):
        raise invalid_type("item.content", "an array", content)
    parts: list[dict[str, Any]] = []
    audio_ms = 0
    for i, part in enumerate(content):
        p = f"item.content[{i}]"
        if not isinstance(part, dict):
            raise invalid_type(p, "an object", part)
        ptype = part.get("type")
        if role == "assistant":
            allowed: tuple[str, ...] = tuple(_ASSISTANT_PARTS)
        elif role == "system":
            allowed = ("input_text",)
        else:
            allowed = _USER_PARTS
        if ptype is None:
            raise missing_parameter(f"{p}.type")
        if ptype not in allowed:
            raise invalid_value(f"{p}.type", ptype, allowed)
        ptype = _ASSISTANT_PARTS.get(ptype, ptype) if role == "assistant" else ptype
        if ptype in ("input_text", "output_text"):
            parts.append({"type": ptype, "text": _req_str(part.get("text"), f"{p}.text")})
        elif ptype in ("input_audio", "output_audio"):
            ms = _audio_ms(part["audio"], f"{p}.audio") if part.get("audio") is not None else 0
            audio_ms += ms
            transcript = part.get("transcript")
            if transcript is not None and not isinstance(transcript, str):
                raise invalid_type(f"{p}.transcript", "a string", transcript)
            parts.append({"type": ptype, "transcript": transcript})
        else:
            parts.append(dict(part))
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": role,
        "content": parts,
    }, audio_ms


def _check_keys(raw: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise unknown_parameter(f"item.{key}")


def item_text(item: dict[str, Any]) -> str:
    """The text a rule can match: message text / transcripts, or a function output."""
    if item.get("type") == "function_call_output":
        return item.get("output") or ""
    texts = []
    for part in item.get("content") or ():
        texts.append(part.get("text") or part.get("transcript") or "")
    return " ".join(t for t in texts if t)
