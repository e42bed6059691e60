"""A result sink that also shows every record to observers (live judges, exporters).

:class:`TeeSink` keeps the sink's ordering promise: the inner sink (the file) gets each
record first; only then do the observers see it, in order. Observers implement the same
:class:`~.sink.RecordSink` methods, must be quick and must not raise (an observer's
exception is logged and the observer skipped for that record: a live view never ends a
run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.metrics import SessionResult, TimelinePoint, TurnRecord
from orchestrator.supervisor.sink import ListSink, RecordSink

__all__ = ["TeeSink", "show"]

log = logging.getLogger(__name__)


def show(observers: Iterable[Any], method: str, *args: Any) -> None:
    """Call ``observer.method(*args)`` on each observer in order; an observer that raises
    is logged and skipped (a live view never ends a run)."""
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except Exception:
            log.exception("sink observer %r failed on %s", observer, method)


class TeeSink:
    """``inner`` (default: a new :class:`ListSink`) first, then each observer."""

    def __init__(self, inner: RecordSink | None, observers: Iterable[RecordSink] = ()) -> None:
        self.inner: RecordSink = ListSink() if inner is None else inner
        self.observers: list[RecordSink] = list(observers)

    def _show(self, method: str, *args: Any) -> None:
        show(self.observers, method, *args)

    def turn(self, record: TurnRecord) -> None:
        """The inner sink, then the observers."""
        self.inner.turn(record)
        self._show("turn", record)

    def session(self, record: SessionResult) -> None:
        """The inner sink, then the observers."""
        self.inner.session(record)
        self._show("session", record)

    def snapshot(self, record: TimelinePoint) -> None:
        """The inner sink, then the observers."""
        self.inner.snapshot(record)
        self._show("snapshot", record)

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """The inner sink, then the observers."""
        self.inner.event(kind, data)
        self._show("event", kind, data)

    def __getattr__(self, name: str) -> Any:
        # ListSink.sessions, JsonlSink.path, ...: what the wrapped sink offers
        if name in ("inner", "observers"):
            raise AttributeError(name)
        return getattr(self.inner, name)
