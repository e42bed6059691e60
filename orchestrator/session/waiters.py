"""A driver call (or internal step) waiting for one server event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

__all__ = ["Waiter"]


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
