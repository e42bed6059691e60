"""Client events: validation and the dispatch table (event type -> handler).

:func:`check_event` refuses what the real service refuses before any handler runs
(missing / non-string / unknown ``type``, unknown top-level fields; explicit nulls of
optional fields are dropped first, see :mod:`.nulls`). :data:`DISPATCH` maps every
client event type to its allowed fields and its handler; a handler raises
:class:`~.errors.ClientError` to refuse the event (the control task turns it into an
``error`` event). Handlers run in the control task, one event at a time, in arrival
order; they may wait on the outbox (back-pressure) but never sleep on the clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from orchestrator.protocol import new_id

from .errors import ClientError, invalid_type, invalid_value, missing_parameter, unknown_parameter
from .mcp_listing import list_mcp_tools
from .nulls import drop_unset_nulls
from .port import ConnectionPort
from .runs import response_create, start_response
from .transcription import (
    beta_transcription_update,
    ga_transcription_update,
    is_transcription_update,
)
from .turns import commit_user_audio, speech_started, speech_stopped

Handler = Callable[[ConnectionPort, dict[str, Any], float], Awaitable[None]]


@attrs.frozen
class Entry:
    """One client event type: its allowed top-level fields (besides ``type`` /
    ``event_id``) and its handler ``(actor, event, receive time)``."""

    fields: tuple[str, ...]
    handler: Handler


def _require(data: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key not in data:
            raise missing_parameter(key)


async def _session_update(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    _require(data, "session")
    if is_transcription_update(data["session"]):
        await ga_transcription_update(actor, data["session"])
        return
    await actor.emit(actor.conv.update_session(data["session"]))
    await list_mcp_tools(actor)
    actor.input.configure(actor.conv.session["audio"]["input"])
    actor.rearm_idle()
    greeting = actor.config.greeting
    if greeting is not None and not actor.greeted and actor.active is None:
        # the agent speaks first once the caller's session is set up
        actor.greeted = True
        await start_response(actor, None, trio.current_time(), "session.updated", None, greeting)


async def _transcription_update(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    await beta_transcription_update(actor, data)


async def _append(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    _require(data, "audio")
    samples = actor.input.decode(data["audio"])
    for vad_event in actor.input.append(samples):
        if vad_event.kind == "speech_started":
            await speech_started(actor, vad_event.audio_ms)
        else:
            await speech_stopped(actor, vad_event.audio_ms)


async def _commit(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    ms = actor.input.commit()
    await commit_user_audio(actor, ms, actor.speech_item or new_id("item_"))


async def _clear(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    actor.input.clear()
    actor.speech_item = None
    await actor.emit({"type": "input_audio_buffer.cleared"})


async def _item_create(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    _require(data, "item")
    for event in actor.conv.create_item(data["item"], data.get("previous_item_id")):
        await actor.emit(event)


async def _item_retrieve(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    await actor.emit(actor.conv.retrieve_item(data.get("item_id")))


async def _item_delete(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    await actor.emit(actor.conv.delete_item(data.get("item_id")))


async def _item_truncate(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    _require(data, "item_id", "content_index", "audio_end_ms")
    event = actor.conv.truncate_item(data["item_id"], data["content_index"], data["audio_end_ms"])
    for run in actor.runs.values():  # an item of a response still streaming
        if run.stream.truncate(event["item_id"], event["audio_end_ms"]):
            break
    await actor.emit(event)


async def _response_create(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    await response_create(actor, data.get("response"), t)


async def _response_cancel(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    rid = data.get("response_id")
    if rid is not None and not isinstance(rid, str):
        raise invalid_type("response_id", "a string", rid)
    run = actor.runs.get(rid) if rid else actor.active
    if run is None or run.cancel_reason is not None:
        raise ClientError(
            "response_cancel_not_active", "Cancellation failed: no active response found", None
        )
    run.cancel("client_cancelled")


async def _output_audio_clear(actor: ConnectionPort, data: dict[str, Any], t: float) -> None:
    """WebRTC/SIP only; a no-op on a websocket."""


DISPATCH: dict[str, Entry] = {
    "session.update": Entry(("session",), _session_update),
    "transcription_session.update": Entry(("session",), _transcription_update),
    "input_audio_buffer.append": Entry(("audio",), _append),
    "input_audio_buffer.commit": Entry((), _commit),
    "input_audio_buffer.clear": Entry((), _clear),
    "conversation.item.create": Entry(("item", "previous_item_id"), _item_create),
    "conversation.item.retrieve": Entry(("item_id",), _item_retrieve),
    "conversation.item.truncate": Entry(
        ("item_id", "content_index", "audio_end_ms"), _item_truncate
    ),
    "conversation.item.delete": Entry(("item_id",), _item_delete),
    "response.create": Entry(("response",), _response_create),
    "response.cancel": Entry(("response_id",), _response_cancel),
    "output_audio_buffer.clear": Entry(("response_id",), _output_audio_clear),
}

#: client event type -> allowed top-level fields besides ``type`` / ``event_id``
CLIENT_EVENTS: dict[str, tuple[str, ...]] = {k: e.fields for k, e in DISPATCH.items()}


def check_event(data: dict[str, Any]) -> tuple[str, dict[str, Any], Entry]:
    """Validate a client event's envelope: ``(type, event without unset nulls, entry)``.

    Raises :class:`ClientError` (with the real service's text) for a missing or
    non-string ``type``, an unknown type, or an unknown top-level field.
    """
    etype = data.get("type")
    if etype is None:
        raise missing_parameter("type")
    if not isinstance(etype, str):
        raise invalid_type("type", "a string", etype)
    entry = DISPATCH.get(etype)
    if entry is None:
        raise invalid_value("type", etype, tuple(DISPATCH))
    data = drop_unset_nulls(etype, data)
    for key in data:
        if key not in entry.fields and key not in ("type", "event_id"):
            raise unknown_parameter(key)
    return etype, data, entry
