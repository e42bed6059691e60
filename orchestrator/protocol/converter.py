"""The cattrs converter for the event model (GA shape, no dialect translation).

Split like ``cattrs.preconf.orjson``: :func:`configure_converter` installs the hooks on
any converter, :func:`make_converter` builds a preconfigured orjson converter, and
:data:`converter` is the shared instance the codec uses.

Choices, and why:

- **Strict primitives.** cattrs' default ``str``/``int`` hooks call ``str(v)`` / ``int(v)``
  and would silently turn ``5`` into ``"5"``; here a wrong JSON type is an error.
  ``float`` fields accept integers (servers send ``"speed": 1``).
- **Lists must be JSON arrays** (cattrs would iterate a string or an object) of at most
  :data:`~orchestrator.protocol.common.MAX_ARRAY_LENGTH` elements, and structuring
  stops at the first bad element (cattrs would collect one error per element: a
  2 MB ``response.done`` whose ``output`` is a million zeros took 24 s and 2.3 GB to
  reject). The error keeps the element's index for the path.
- **Unions** are resolved by JSON type (null / string / number / object) — every union in
  the model has at most one member per JSON type, so no guessing is needed. Unions of
  classes (items, tools, events) are tagged by their ``type`` field and fall back to an
  ``Unknown*`` class that keeps the raw dict. This is
  ``cattrs.strategies.configure_tagged_union`` specialised for a tag that is a class
  attribute (events) or a field (items), and for an unknown-tag class that keeps the raw
  payload instead of being structured.
- **Null is "not given"** (PROTOCOL_NOTES §8: production clients send unset optional
  fields as ``null``). Fields typed ``X | None`` take it as ``None``; a ``null`` on a
  field that has a default but no ``None`` in its type (a message item's ``content``)
  gives the default, as if the field were absent. Required fields and ``type`` tags still
  refuse ``null``.
- **Unset is omitted.** Unstructuring drops fields whose default is ``None`` while they
  are ``None``, so a partial ``session.update`` only names what it changes; ``NULL``
  (:class:`~orchestrator.protocol.common.Null`) unstructures to an explicit ``null``.
- Event classes unstructure with their GA ``type`` first, so ``converter.unstructure``
  gives the GA wire dict; ``converter.structure(d, ServerEvent)`` dispatches on ``type``.
- Detailed validation stays on: errors carry the path of the bad field, which the codec
  turns into one :class:`~orchestrator.protocol.errors.ProtocolError`. It costs almost
  nothing on valid frames (``try`` is free on Python 3.11+: ``detailed_validation=False``
  measured 2-3 % faster on ``response.done`` / ``session.updated``), so there is no
  separate fast path.
- **Fewer hook calls** (``benchmarks/bench_codec.py``): decoding a large event is mostly
  hook calls and frozen-instance construction, so ``X | None`` of a primitive or a model
  class is one fused hook, and a union only calls the member hooks that accept the
  value's Python type (no exception raised and caught for ``"inf"`` in
  ``int | "inf"``). Error messages are the members' own.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, get_args, get_origin

import attrs
import cattrs
import cattrs.preconf.orjson
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .client_events import CLIENT_EVENT_CLASSES, ClientEvent, UnknownClientEvent
from .common import MAX_ARRAY_LENGTH, Null
from .items import (
    FunctionCallItem,
    FunctionCallOutputItem,
    Item,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    McpCallItem,
    McpListToolsItem,
    MessageItem,
    UnknownItem,
)
from .server_events import SERVER_EVENT_CLASSES, ServerEvent, UnknownServerEvent
from .session_config import FunctionTool, McpTool, Tool, UnknownTool

__all__ = ["configure_converter", "converter", "make_converter"]

_NoneType = type(None)
_EVENT_CLASSES = frozenset(SERVER_EVENT_CLASSES) | frozenset(CLIENT_EVENT_CLASSES)
_UNKNOWN_CLASSES = (UnknownServerEvent, UnknownClientEvent, UnknownItem, UnknownTool)
_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
# The Python values each strict primitive hook accepts (see the hooks below).
_PRIM_ACCEPTS: dict[type, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (float, int),
    bool: (bool,),
}

StructureHook = Callable[[Any, Any], Any]


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


# --- strict primitives ---------------------------------------------------------------


def _structure_str(v: Any, _: Any) -> str:
    if isinstance(v, str):
        return v
    raise TypeError(f"expected a string, got {_json_type(v)}")


def _structure_int(v: Any, _: Any) -> int:
    if type(v) is int:
        return v
    raise TypeError(f"expected an integer, got {_json_type(v)}")


def _structure_float(v: Any, _: Any) -> float:
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    raise TypeError(f"expected a number, got {_json_type(v)}")


def _structure_bool(v: Any, _: Any) -> bool:
    if type(v) is bool:
        return v
    raise TypeError(f"expected a boolean, got {_json_type(v)}")


# The strict primitives whose fast path is an exact type test (float also takes int).
_EXACT_TYPE_HOOKS: dict[type, StructureHook] = {
    str: _structure_str,
    int: _structure_int,
    bool: _structure_bool,
}


def _structure_dict(v: Any, _: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    raise TypeError(f"expected an object, got {_json_type(v)}")


def _is_dict_type(t: Any) -> bool:
    return t is dict or get_origin(t) is dict


def _is_list_type(t: Any) -> bool:
    return get_origin(t) is list


def _is_union(t: Any) -> bool:
    return get_origin(t) in (typing.Union, types.UnionType)


def _list_hook_factory(t: Any, conv: cattrs.Converter) -> StructureHook:
    (elem,) = get_args(t)
    elem_hook = conv.get_structure_hook(elem)

    def structure_list(v: Any, _: Any) -> list[Any]:
        if not isinstance(v, list):
            raise TypeError(f"expected an array, got {_json_type(v)}")
        if len(v) > MAX_ARRAY_LENGTH:
            raise ValueError(
                f"expected an array of at most {MAX_ARRAY_LENGTH} elements, got {len(v)}"
            )
        out: list[Any] = []
        try:
            for e in v:
                out.append(elem_hook(e, elem))
        except Exception as exc:
            # Stop at the first bad element (index len(out)): one error is enough to
            # reject the frame, and an error object per element of a long junk array
            # would cost seconds and gigabytes.
            i = len(out)
            exc.__notes__ = [
                *getattr(exc, "__notes__", []),
                IterableValidationNote(f"Structuring {t} @ index {i}", i, elem),
            ]
            raise IterableValidationError(f"While structuring {t!r}", [exc], t) from None
        return out

    return structure_list


def _fused_optional(inner: Any, inner_hook: StructureHook) -> StructureHook | None:
    """A one-call hook for ``inner | None`` when ``inner`` is a strict primitive or a
    model class, else ``None``.

    Decoding spends most of its time in hook calls, and optional fields are the most
    common: this does the ``None`` test and the member's own check in one function
    instead of two, with exactly the member's error message.
    """
    strict = _EXACT_TYPE_HOOKS.get(inner)
    if strict is not None:

        def optional_exact(v: Any, _: Any) -> Any:
            if v is None or type(v) is inner:
                return v
            return strict(v, inner)  # raises the usual message

        return optional_exact
    if inner is float:

        def optional_float(v: Any, _: Any) -> Any:
            t = type(v)
            if t is float or v is None:
                return v
            if t is int:
                return float(v)
            return _structure_float(v, inner)

        return optional_float
    object_inner = getattr(inner_hook, "inner", None)
    if object_inner is not None and attrs.has(inner):

        def optional_object(v: Any, _: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, dict):
                return object_inner(v, inner)
            return inner_hook(v, inner)  # raises the usual "expected an object" message

        return optional_object
    return None


def _union_hook_factory(t: Any, conv: cattrs.Converter) -> StructureHook:
    args = get_args(t)
    nullable = _NoneType in args
    members = [a for a in args if a is not _NoneType and a is not Null]
    if len(members) == 1:
        (inner,) = members
        inner_hook = conv.get_structure_hook(inner)
        if nullable:
            fused = _fused_optional(inner, inner_hook)
            if fused is not None:
                return fused
        if not nullable:
            return lambda v, _: inner_hook(v, inner)

        def structure_optional(v: Any, _: Any) -> Any:
            return None if v is None else inner_hook(v, inner)

        return structure_optional

    literals: set[object] = set()
    prims: list[type] = []
    object_hook: StructureHook | None = None
    object_cls: Any = None
    for m in members:
        if get_origin(m) is typing.Literal:
            literals.update(get_args(m))
        elif m in _JSON_NAMES:
            prims.append(m)
        elif (attrs.has(m) or _is_dict_type(m)) and object_cls is None:
            object_cls = m
            object_hook = conv.get_structure_hook(m)
        else:
            raise TypeError(f"unsupported union member {m!r} in {t!r}")
    expected = [repr(x) for x in sorted(literals, key=repr)]
    expected += [_JSON_NAMES[p] for p in prims]
    if object_cls is not None:
        expected.append("an object")
    if nullable:
        expected.append("null")
    what = "expected " + " or ".join(expected)
    # Each member's hook, keyed by the Python types it accepts, in member order: only a
    # hook that can succeed is called (a hook that raises costs a caught exception).
    by_type: dict[type, list[tuple[type, StructureHook]]] = {}
    for p in prims:
        for accepted in _PRIM_ACCEPTS[p]:
            by_type.setdefault(accepted, []).append((p, conv.get_structure_hook(p)))

    def structure_union(v: Any, _: Any) -> Any:
        if v is None:
            if nullable:
                return None
        elif isinstance(v, dict):
            if object_hook is not None:
                return object_hook(v, object_cls)
        elif isinstance(v, str | int | float):
            for p, h in by_type.get(type(v), ()):
                try:
                    return h(v, p)
                except TypeError:
                    pass
            if v in literals and not isinstance(v, bool):
                return v
        raise TypeError(f"{what}, got {_json_type(v)}: {v!r:.40}")

    return structure_union


# --- attrs classes -------------------------------------------------------------------


def _defaulted_not_nullable(cl: Any) -> tuple[str, ...]:
    """Fields of ``cl`` (other than ``type``) that have a default but do not take None."""
    hints = typing.get_type_hints(cl)
    return tuple(
        a.name
        for a in attrs.fields(cl)
        if a.default is not attrs.NOTHING
        and a.name != "type"
        and hints[a.name] is not Any
        and not (_is_union(hints[a.name]) and _NoneType in get_args(hints[a.name]))
    )


def _class_structure_factory(cl: Any, conv: cattrs.Converter) -> StructureHook:
    inner = make_dict_structure_fn(cl, conv)
    name = cl.__name__
    defaulted = _defaulted_not_nullable(cl)

    def structure_object(v: Any, _: Any) -> Any:
        if not isinstance(v, dict):
            raise TypeError(f"expected an object for {name}, got {_json_type(v)}")
        return inner(v, cl)

    if defaulted:

        def structure_object_null_is_default(v: Any, _: Any) -> Any:
            if not isinstance(v, dict):
                raise TypeError(f"expected an object for {name}, got {_json_type(v)}")
            for key in defaulted:
                if key in v and v[key] is None:  # null = not given: the default
                    v = {k: x for k, x in v.items() if not (k in defaulted and x is None)}
                    break
            return inner(v, cl)

        structure_object_null_is_default.inner = structure_object_null_is_default  # type: ignore[attr-defined]
        return structure_object_null_is_default

    structure_object.inner = inner  # type: ignore[attr-defined]
    return structure_object


def _omit_unset_overrides(cl: Any) -> dict[str, Any]:
    return {a.name: override(omit_if_default=True) for a in attrs.fields(cl) if a.default is None}


def _class_unstructure_factory(cl: Any, conv: cattrs.Converter) -> Callable[[Any], Any]:
    inner = make_dict_unstructure_fn(cl, conv, **_omit_unset_overrides(cl))
    if cl not in _EVENT_CLASSES:
        return inner
    wire_type = cl.type

    def unstructure_event(ev: Any) -> dict[str, Any]:
        return {"type": wire_type, **inner(ev)}

    unstructure_event.inner = inner  # type: ignore[attr-defined]
    return unstructure_event


def _unknown_structure_hook(cl: Any) -> StructureHook:
    def structure_unknown(v: Any, _: Any) -> Any:
        if not isinstance(v, dict):
            raise TypeError(f"expected an object, got {_json_type(v)}")
        t = v.get("type")
        if cl in (UnknownServerEvent, UnknownClientEvent) and not isinstance(t, str):
            raise TypeError("expected a string 'type'")
        return cl(type=t if isinstance(t, str) else None, raw=v)

    return structure_unknown


def _tagged_union_hook(
    conv: cattrs.Converter, classes: Iterable[type], tag_of: Callable[[type], str], default: type
) -> StructureHook:
    table = {tag_of(c): (c, conv.get_structure_hook(c)) for c in classes}
    default_hook = conv.get_structure_hook(default)

    def structure_tagged(v: Any, _: Any) -> Any:
        if not isinstance(v, dict):
            raise TypeError(f"expected an object, got {_json_type(v)}")
        entry = table.get(v.get("type"))  # type: ignore[arg-type]
        if entry is None:
            return default_hook(v, default)
        return entry[1](v, entry[0])

    return structure_tagged


def _field_default_tag(cl: type) -> str:
    tag = attrs.fields_dict(cl)["type"].default
    if not isinstance(tag, str):
        raise TypeError(f"{cl.__name__}.type needs a string default (its wire tag)")
    return tag


def configure_converter(conv: cattrs.Converter) -> None:
    """Install the event model's hooks on ``conv`` (see the module docstring)."""
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook_func(_is_dict_type, _structure_dict)
    conv.register_unstructure_hook_func(_is_dict_type, lambda d: d)
    conv.register_structure_hook_factory(_is_list_type, _list_hook_factory)
    conv.register_structure_hook_factory(_is_union, _union_hook_factory)
    conv.register_unstructure_hook(Null, lambda _: None)

    conv.register_structure_hook_factory(attrs.has, _class_structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, _class_unstructure_factory)
    for cl in _UNKNOWN_CLASSES:
        conv.register_structure_hook(cl, _unknown_structure_hook(cl))
        conv.register_unstructure_hook(cl, lambda u: dict(u.raw))

    item_classes = (
        MessageItem,
        FunctionCallItem,
        FunctionCallOutputItem,
        McpListToolsItem,
        McpCallItem,
        McpApprovalRequestItem,
        McpApprovalResponseItem,
    )

    # Registered as predicate hooks (not register_structure_hook) so they take
    # precedence over the generic union factory above (later predicates win), one at a
    # time because later unions contain classes that need the earlier ones.
    def register_tagged(union: Any, classes: Iterable[type], tag_of: Any, default: type) -> None:
        hook = _tagged_union_hook(conv, classes, tag_of, default)
        conv.register_structure_hook_func(lambda t: t == union, hook)

    register_tagged(Item, item_classes, _field_default_tag, UnknownItem)
    register_tagged(Tool, (FunctionTool, McpTool), _field_default_tag, UnknownTool)
    register_tagged(ServerEvent, SERVER_EVENT_CLASSES, lambda c: c.type, UnknownServerEvent)
    register_tagged(ClientEvent, CLIENT_EVENT_CLASSES, lambda c: c.type, UnknownClientEvent)


def make_converter(**kwargs: Any) -> cattrs.preconf.orjson.OrjsonConverter:
    """A new orjson converter with the event model's hooks (kwargs go to cattrs)."""
    conv = cattrs.preconf.orjson.make_converter(**kwargs)
    configure_converter(conv)
    return conv


converter = make_converter()
"""The shared, preconfigured converter (GA shapes; the codec adds dialects on top)."""
