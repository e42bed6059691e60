"""A driver call (or internal step) waiting for one server event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

__all__ = ["Waiter", "WaiterRegistry", "await_waiter"]


class Waiter:
    """Waits for the first server event ``match`` accepts, or for an error: a server
    ``error`` echoing ``event_id`` (``RequestRejected``), a lost connection (``LinkLost``,
    except for ``event_type == "wait_for"`` observers) or the end of the session."""

    __slots__ = ("error", "event", "event_id", "event_type", "match", "result")

    def __init__(self, match: Callable[[Any], bool], event_id: str | None, event_type: str) -> None:
        self.match = match
        self.event_id = event_id
        self.event_type = event_type
        self.event = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class WaiterRegistry(Protocol):
    """Where waiters are registered (``SessionCore``) so received events resolve them."""

    def add_waiter(self, waiter: Waiter) -> None: ...

    def remove_waiter(self, waiter: Waiter) -> None: ...


async def await_waiter(
    registry: WaiterRegistry,
    waiter: Waiter,
    send: Callable[[], Awaitable[object]] | None = None,
) -> Any:
    """Register ``waiter``, run ``send`` (if any), wait for the waiter to be resolved and
    unregister it; raise its error or return its result.

    Cancellation: the waiter is unregistered; whatever ``send`` already sent stays sent."""
    registry.add_waiter(waiter)
    try:
        if send is not None:
            await send()
        await waiter.event.wait()
    finally:
        registry.remove_waiter(waiter)
    if waiter.error is not None:
        raise waiter.error
    return waiter.result
