"""An explicit ``null`` on an optional field of a client event is "not given" (PROTOCOL_NOTES §8).

The cases are generated from the official ``openai`` package's client-event
``TypedDict`` params (GA: ``openai.types.realtime``; beta: ``openai.types.beta.realtime``),
test-only: for every event and every object reachable in it (session, audio config,
transcription, tools, items, content parts, ``response`` ...), one event sets every
optional field of that object to ``null``. The server must answer it exactly as it
answers the same event without those fields. Nulls that mean something
(:data:`orchestrator.mockserver.nulls.MEANINGFUL`) are left out of the generation.
"""

from __future__ import annotations

import base64
import typing
from typing import Any

import pytest
import trio
import trio.testing
from mockserver_helpers import fast_config, mem_connection, next_event, send

from orchestrator.mockserver import MockServer
from orchestrator.mockserver.nulls import MEANINGFUL, OPAQUE, drop_unset_nulls

openai = pytest.importorskip("openai")
typing_extensions = pytest.importorskip("typing_extensions")

from openai.types.beta.realtime import realtime_client_event_param as beta_events  # noqa: E402
from openai.types.realtime import realtime_client_event_param as ga_events  # noqa: E402

GA = "/v1/realtime?model=gpt-realtime"
BETA = "/v1/realtime?model=gpt-4o-realtime-preview"
BETA_HEADERS = [("OpenAI-Beta", "realtime=v1")]
#: not handled by the server in this form (transcription sessions are another change)
SKIP = {"transcription_session.update", "session.update:transcription"}
AUDIO_100MS = base64.b64encode(bytes(4800)).decode()
#: plausible values for required fields, by name
REQUIRED_VALUES: dict[str, Any] = {
    "audio": AUDIO_100MS,
    "item_id": "item_nope",
    "model": "gpt-realtime",
    "name": "get_weather",
    "server_label": "deepwiki",
    "call_id": "call_1",
    "output": "{}",
    "arguments": "{}",
    "id": "item_abc",
}

_hints_cache: dict[Any, dict[str, Any]] = {}


def _hints(td: Any) -> dict[str, Any]:
    if td not in _hints_cache:
        _hints_cache[td] = typing_extensions.get_type_hints(td, include_extras=True)
    return _hints_cache[td]


def _required(td: Any) -> set[str]:
    """``td``'s required keys (``__required_keys__`` misses the ``Required[...]`` of the
    openai package's string annotations)."""
    out = set()
    for key, t in _hints(td).items():
        origin = typing.get_origin(t)
        if origin is typing_extensions.Required or (
            td.__total__ and origin is not typing_extensions.NotRequired
        ):
            out.add(key)
    return out


def _is_typeddict(t: Any) -> bool:
    return typing_extensions.is_typeddict(t)


def _strip(t: Any) -> Any:
    """``Required[X]`` / ``NotRequired[X]`` / ``Annotated[X, ...]`` -> ``X``."""
    while typing.get_origin(t) in (
        typing_extensions.Required,
        typing_extensions.NotRequired,
        typing_extensions.Annotated,
    ):
        t = typing.get_args(t)[0]
    return t


def _members(t: Any) -> list[Any]:
    t = _strip(t)
    if typing.get_origin(t) is typing.Union or type(t).__name__ == "UnionType":
        return [m for a in typing.get_args(t) for m in _members(a) if m is not type(None)]
    return [t]


def _value(key: str, t: Any) -> Any:
    """A valid-looking value of type ``t`` for a required field ``key``."""
    if key in REQUIRED_VALUES:
        return REQUIRED_VALUES[key]
    for m in _members(t):
        if _is_typeddict(m):
            return _skeleton(m)
        origin = typing.get_origin(m)
        if origin is typing.Literal:
            return typing.get_args(m)[0]
        if m is str:
            return "x"
        if m is bool:
            return True
        if m in (int, float):
            return 0
        if origin in (list, list) or "Iterable" in str(m) or "Sequence" in str(m):
            (elem,) = typing.get_args(m) or (str,)
            return [_value(key, elem)]
        if origin is dict or m is dict:
            return {}
    return "x"


def _skeleton(td: Any) -> dict[str, Any]:
    """``td`` with only its required fields (and its ``type`` tag)."""
    hints = _hints(td)
    keys = _required(td) | ({"type"} & set(hints))
    return {k: _value(k, hints[k]) for k in sorted(keys)}


#: one step down into an event: (key, whether it is an array's first element, the
#: TypedDict found there)
Step = tuple[str, bool, Any]


def _objects(td: Any, depth: int = 0) -> list[list[Step]]:
    """The paths to every TypedDict reachable in ``td`` (one per union member)."""
    found: list[list[Step]] = [[]]
    if depth > 5:
        return found
    for key, t in _hints(td).items():
        if key in OPAQUE:
            continue
        for m in _members(t):
            inner, in_list = m, False
            if typing.get_origin(m) is list or "Iterable" in str(m):
                args = typing.get_args(m)
                if not args:
                    continue
                inner, in_list = args[0], True
            for sub in _members(inner):
                if _is_typeddict(sub):
                    found += [[(key, in_list, sub), *p] for p in _objects(sub, depth + 1)]
    return found


def _build(td: Any, steps: list[Step], nulls: dict[str, None]) -> dict[str, Any]:
    """``td``'s skeleton with, at the end of ``steps``, an object that has ``nulls``."""
    obj = _skeleton(td)
    if not steps:
        return {**nulls, **{k: v for k, v in obj.items() if k not in nulls}}
    (key, in_list, sub), *rest = steps
    inner = _build(sub, rest, nulls)
    obj[key] = [inner] if in_list else inner
    return obj


def _cases(module: Any, union_name: str, *, ga: bool) -> list[tuple[str, dict[str, Any], int]]:
    union = getattr(module, union_name)
    cases = []
    for ev in _members(union):
        etype = typing.get_args(_strip(_hints(ev)["type"]))[0]
        if etype in SKIP:
            continue
        for steps in _objects(ev):
            td = steps[-1][2] if steps else ev
            skip = _required(td) | MEANINGFUL | {"type"}
            nulls = {k: None for k in _hints(td) if k not in skip}
            if not nulls:
                continue
            event = _build(ev, steps, nulls)
            session = event.get("session")
            if ga and isinstance(session, dict) and "type" not in session:
                session["type"] = "realtime"
            path = ".".join(k + ("[0]" if in_list else "") for k, in_list, _ in steps) or "-"
            cases.append((f"{etype}:{path}:{td.__name__}", event, len(nulls)))
    return cases


GA_CASES = _cases(ga_events, "RealtimeClientEventParam", ga=True)
BETA_CASES = _cases(beta_events, "RealtimeClientEventParam", ga=False)


async def _answers(server: MockServer, resource: str, headers: Any, event: Any) -> list[Any]:
    """What the server sends after ``event`` (types; errors with code/param/message)."""
    got: list[Any] = []
    async with mem_connection(server, resource, headers) as ws:
        assert (await next_event(ws))["type"] == "session.created"
        if resource == BETA:
            while (await next_event(ws))["type"] != "conversation.created":  # pragma: no cover
                pass
        await ws.send_message(send(event))
        with trio.move_on_after(2):
            while True:
                e = await next_event(ws)
                if e["type"] == "error":
                    err = e["error"]
                    got.append(("error", err["code"], err["param"], err["message"]))
                else:
                    got.append(e["type"])
    return sorted(set(got), key=repr)


def _check(cases: list[Any], resource: str, headers: Any) -> None:
    async def main() -> None:
        server = MockServer(fast_config())
        failures = []
        for name, event, _ in cases:
            stripped = drop_unset_nulls(event["type"], event)
            assert stripped != event, name
            with_nulls = await _answers(server, resource, headers, event)
            without = await _answers(server, resource, headers, stripped)
            if with_nulls != without:
                failures.append((name, with_nulls, without))
        assert not failures, failures

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_generated_cases_cover_the_client_events() -> None:
    ga = {c[0].split(":")[0] for c in GA_CASES}
    beta = {c[0].split(":")[0] for c in BETA_CASES}
    assert {"session.update", "response.create", "conversation.item.create"} <= ga & beta
    assert "conversation.item.truncate" in ga  # event_id only
    assert len(GA_CASES) > 30 and len(BETA_CASES) > 15
    assert sum(c[2] for c in GA_CASES) > 100


def test_ga_null_optional_fields_are_not_given() -> None:
    _check(GA_CASES, GA, None)


def test_beta_null_optional_fields_are_not_given() -> None:
    _check(BETA_CASES, BETA, BETA_HEADERS)
