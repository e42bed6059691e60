"""Encode and decode Realtime events in either dialect.

The fast path, per frame: ``orjson.loads`` -> look the class up by its wire ``type`` in a
per-dialect dict -> (beta only, for the few events whose payload shape differs: a dict
transform from ``beta.py``) -> the converter's generated per-class structure function.
No union dispatch, no intermediate objects. Encoding mirrors it: the per-class
unstructure function -> rename/transform for the dialect -> ``orjson.dumps``.

Error handling: anything wrong with an incoming frame becomes one
:class:`~orchestrator.protocol.errors.ProtocolError` (never a cattrs exception group);
an unknown ``type`` is not an error but an ``Unknown*Event`` carrying the raw dict.
Rejection is bounded: an array longer than
:data:`~orchestrator.protocol.common.MAX_ARRAY_LENGTH` is refused before its elements are
looked at, and a list stops at its first bad element (see ``converter.py``), so a
junk frame of a few MB costs about what ``orjson.loads`` of it costs, in both dialects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from cattrs.errors import BaseValidationError
from cattrs.v import format_exception, transform_error

from .beta import (
    BETA_DECODE_TRANSFORMS,
    BETA_ENCODE_TRANSFORMS,
    BETA_ONLY_TYPES,
    GA_DECODE_TRANSFORMS,
    GA_ENCODE_TRANSFORMS,
    GA_ONLY_TYPES,
    GA_TO_BETA_TYPE,
)
from .client_events import CLIENT_EVENT_CLASSES, ClientEvent, UnknownClientEvent
from .converter import converter
from .dialect import Dialect
from .errors import ProtocolError, excerpt_of
from .server_events import SERVER_EVENT_CLASSES, ServerEvent, UnknownServerEvent

__all__ = [
    "decode_client_event",
    "decode_server_event",
    "dialect_supports",
    "encode_client_event",
    "encode_server_event",
    "wire_type",
]

Transform = Callable[[dict[str, Any]], dict[str, Any]]
_DecodeEntry = tuple[type, Callable[[Any, Any], Any], Transform | None]
_EncodeEntry = tuple[str, Callable[[Any], dict[str, Any]], Transform | None]


def _wire_name(cls: type, dialect: Dialect) -> str | None:
    ga: str = cls.type  # type: ignore[attr-defined]
    if dialect is Dialect.GA:
        return None if ga in BETA_ONLY_TYPES else ga
    if ga in GA_ONLY_TYPES:
        return None
    return GA_TO_BETA_TYPE.get(ga, ga)


def _build(
    classes: tuple[type, ...],
) -> tuple[dict[Dialect, dict[str, _DecodeEntry]], dict[Dialect, dict[type, _EncodeEntry]]]:
    decode: dict[Dialect, dict[str, _DecodeEntry]] = {d: {} for d in Dialect}
    encode: dict[Dialect, dict[type, _EncodeEntry]] = {d: {} for d in Dialect}
    dec_tf = {Dialect.GA: GA_DECODE_TRANSFORMS, Dialect.BETA: BETA_DECODE_TRANSFORMS}
    enc_tf = {Dialect.GA: GA_ENCODE_TRANSFORMS, Dialect.BETA: BETA_ENCODE_TRANSFORMS}
    for cls in classes:
        ga: str = cls.type  # type: ignore[attr-defined]
        hook = converter.get_structure_hook(cls)
        structure = getattr(hook, "inner", hook)  # skip the is-a-dict check: done up front
        unstructure = converter.get_unstructure_hook(cls)
        for dialect in Dialect:
            name = _wire_name(cls, dialect)
            if name is not None:
                encode[dialect][cls] = (name, unstructure, enc_tf[dialect].get(ga))
            # Decoding is lenient about beta-only names in GA (see BETA_ONLY_TYPES).
            dec_name = name if name is not None or dialect is Dialect.BETA else ga
            if dec_name is not None and dec_name not in decode[dialect]:
                decode[dialect][dec_name] = (cls, structure, dec_tf[dialect].get(ga))
    return decode, encode


# SERVER_EVENT_CLASSES lists ConversationItemCreated before ConversationItemAdded; make
# the beta name "conversation.item.created" decode to ConversationItemAdded (the GA
# event that replaced it) by building Added first.
def _server_order() -> tuple[type, ...]:
    added = [c for c in SERVER_EVENT_CLASSES if c.type == "conversation.item.added"]  # type: ignore[attr-defined]
    return (*added, *(c for c in SERVER_EVENT_CLASSES if c not in added))


_SERVER_DECODE, _SERVER_ENCODE = _build(_server_order())
_CLIENT_DECODE, _CLIENT_ENCODE = _build(CLIENT_EVENT_CLASSES)


def _describe(exc: BaseException, cl: type | None) -> str:
    """One leaf error as text: the converter's own hooks say what they expected and what
    came (``expected an object, got a number``); cattrs' default names only the expected
    Python type (``invalid value for type, expected list[MessageItem | ...]``)."""
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected "):
        return str(exc)
    return format_exception(exc, cl)


def _error_from(exc: Exception, event_type: str | None, data: object) -> ProtocolError:
    if isinstance(exc, BaseValidationError):
        messages = transform_error(exc, path="$", format_exception=_describe)
        first = messages[0] if messages else str(exc)
        reason, _, path = first.rpartition(" @ ")
        if not reason:
            reason, path = first, "$"
        if len(messages) > 1:
            reason += f" (and {len(messages) - 1} more: {'; '.join(messages[1:4])})"
        return ProtocolError(reason, event_type=event_type, path=path, excerpt=excerpt_of(data))
    return ProtocolError(
        f"{type(exc).__name__}: {exc}", event_type=event_type, path="$", excerpt=excerpt_of(data)
    )


def _decode(
    data: str | bytes,
    table: dict[str, _DecodeEntry],
    unknown: type,
) -> Any:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(
            f"invalid JSON: {exc}", event_type=None, path="$", excerpt=excerpt_of(data)
        ) from None
    if type(obj) is not dict:
        raise ProtocolError(
            f"expected a JSON object, got {type(obj).__name__}",
            event_type=None,
            path="$",
            excerpt=excerpt_of(data),
        )
    t = obj.get("type")
    if type(t) is not str:
        raise ProtocolError(
            "missing or non-string 'type'", event_type=None, path="$.type", excerpt=excerpt_of(data)
        )
    entry = table.get(t)
    if entry is None:
        return unknown(type=t, raw=obj)
    cls, structure, transform = entry
    try:
        if transform is not None:
            obj = transform(obj)
        return structure(obj, cls)
    except Exception as exc:  # the decode boundary: one domain error, chained
        raise _error_from(exc, t, data) from exc


def decode_server_event(data: str | bytes, dialect: Dialect) -> ServerEvent:
    """Decode one server frame (JSON text) into a server event.

    In the beta dialect, beta names and shapes are translated to the GA model (a beta
    ``conversation.item.created`` becomes :class:`ConversationItemAdded`). Unknown event
    types (including the other dialect's names) become :class:`UnknownServerEvent`;
    unknown fields are ignored.

    Raises:
        ProtocolError: invalid JSON, not an object, no string ``type``, or a known event
            with missing or wrongly typed fields.
    """
    return _decode(data, _SERVER_DECODE[dialect], UnknownServerEvent)


def decode_client_event(data: str | bytes, dialect: Dialect) -> ClientEvent:
    """Decode one client frame (what a server receives) into a client event.

    Same rules as :func:`decode_server_event`; unknown types become
    :class:`UnknownClientEvent`.

    Raises:
        ProtocolError: invalid JSON, not an object, no string ``type``, or a known event
            with missing or wrongly typed fields.
    """
    return _decode(data, _CLIENT_DECODE[dialect], UnknownClientEvent)


def _encode(event: Any, table: dict[type, _EncodeEntry], unknown: type, dialect: Dialect) -> str:
    cls = type(event)
    entry = table.get(cls)
    if entry is None:
        if cls is unknown:
            return orjson.dumps(event.raw).decode()
        if (
            cls in _SERVER_ENCODE[Dialect.GA]
            or cls in _SERVER_ENCODE[Dialect.BETA]
            or (cls in _CLIENT_ENCODE[Dialect.GA] or cls in _CLIENT_ENCODE[Dialect.BETA])
        ):
            raise ProtocolError(
                f"{cls.__name__} does not exist in the {dialect.value} dialect",
                event_type=cls.type,
                path="$.type",
                excerpt=excerpt_of(repr(event)),
            )
        raise TypeError(f"not an event of this kind: {cls.__name__}")
    name, unstructure, transform = entry
    d = unstructure(event)
    if name != cls.type:
        d["type"] = name
    if transform is not None:
        d = transform(d)
    return orjson.dumps(d).decode()


def encode_client_event(event: ClientEvent, dialect: Dialect) -> str:
    """Encode a client event as JSON text for ``dialect``.

    Unset (``None``) optional fields are omitted; ``NULL`` encodes as ``null``. In GA a
    ``session.update`` without ``session.type`` is sent with ``"type": "realtime"``.
    :class:`UnknownClientEvent` is sent as its raw dict.

    Raises:
        ProtocolError: the event does not exist in ``dialect``
            (see :func:`dialect_supports`).
        TypeError: ``event`` is not a client event.
    """
    return _encode(event, _CLIENT_ENCODE[dialect], UnknownClientEvent, dialect)


def encode_server_event(event: ServerEvent, dialect: Dialect) -> str:
    """Encode a server event as JSON text for ``dialect`` (used by the embedded server).

    Same rules as :func:`encode_client_event`; ``ConversationItemAdded`` is sent as
    ``conversation.item.created`` in beta.

    Raises:
        ProtocolError: the event does not exist in ``dialect``.
        TypeError: ``event`` is not a server event.
    """
    return _encode(event, _SERVER_ENCODE[dialect], UnknownServerEvent, dialect)


def dialect_supports(event_or_class: object, dialect: Dialect) -> bool:
    """Whether this event (instance or class) exists on the wire in ``dialect``.

    Unknown events are always "supported": they are sent as their raw dict.
    """
    cls = event_or_class if isinstance(event_or_class, type) else type(event_or_class)
    if cls in (UnknownServerEvent, UnknownClientEvent):
        return True
    return cls in _SERVER_ENCODE[dialect] or cls in _CLIENT_ENCODE[dialect]


def wire_type(event_or_class: object, dialect: Dialect) -> str | None:
    """The ``type`` string this event has on the wire in ``dialect`` (None: not there)."""
    cls = event_or_class if isinstance(event_or_class, type) else type(event_or_class)
    if cls in (UnknownServerEvent, UnknownClientEvent):
        return event_or_class.type if not isinstance(event_or_class, type) else None  # type: ignore[attr-defined]
    entry = _SERVER_ENCODE[dialect].get(cls) or _CLIENT_ENCODE[dialect].get(cls)
    return entry[0] if entry is not None else None
