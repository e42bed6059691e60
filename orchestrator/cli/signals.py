"""Stop signals of a run: the first SIGINT / SIGTERM / SIGHUP drains, a second cancels.

:class:`StopSignals` records what arrived; :func:`held_stop_signals` keeps SIGTERM and
SIGHUP from killing the process while it is outside trio (set-up, writing the summary);
:func:`watch_stop_signals` reacts inside the run. The exit code of a stopped run is
128 + the first signal's number (:func:`exit_code_for_signal`).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import attrs
import trio

__all__ = [
    "Drainable",
    "EXIT_HANGUP",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "STOP_SIGNALS",
    "StopSignals",
    "exit_code_for_signal",
    "held_stop_signals",
    "watch_stop_signals",
]

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
EXIT_HANGUP = 129  # 128 + SIGHUP (POSIX)

#: Signals that stop a run: the first one drains, a second one (any of them) cancels.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    sig
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
    if sig is not None
)


def exit_code_for_signal(signum: int) -> int:
    """The exit code of a run stopped by ``signum``: 128 + its number, as a shell reports a
    process a signal killed (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + int(signum)


_SIGNAL_WORDS: dict[int, str] = {
    signal.SIGINT: "interrupted",
    signal.SIGTERM: "terminated (SIGTERM)",
}
if hasattr(signal, "SIGHUP"):
    _SIGNAL_WORDS[signal.SIGHUP] = "hung up (SIGHUP)"


@attrs.define(eq=False)
class StopSignals:
    """The stop signals a run received, in order (``signals``); ``first`` decides the exit
    code. Shared by the signal handlers outside the run and the watcher task inside it."""

    signals: list[int] = attrs.field(factory=list)

    @property
    def first(self) -> int | None:
        """The first stop signal received (``None``: none)."""
        return self.signals[0] if self.signals else None

    def note(self, signum: int) -> None:
        """Record a received stop signal."""
        self.signals.append(int(signum))


@contextmanager
def held_stop_signals(stop: StopSignals) -> Iterator[None]:
    """While the block runs outside trio (setup, writing the summary), SIGTERM and SIGHUP
    are noted in ``stop`` instead of killing the process at once; inside ``trio.run`` the
    run's own signal receiver takes them over. Previous handlers are restored on exit.
    Only in the main thread (elsewhere signals cannot be handled: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [sig for sig in STOP_SIGNALS if sig != signal.SIGINT]
    previous = {sig: signal.getsignal(sig) for sig in held}
    for sig in held:
        signal.signal(sig, lambda signum, _frame: stop.note(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Drainable(Protocol):
    """What a stop signal acts on: a supervisor, or a fleet of them."""

    interrupted: bool

    async def drain(self, grace_s: float) -> None:
        """Start no more sessions; give running ones ``grace_s`` to finish."""

    def cancel(self) -> None:
        """Cancel every running session."""


async def watch_stop_signals(
    signals: Any,
    stop: StopSignals,
    sup: Drainable,
    grace_s: float,
    nursery: trio.Nursery,
    quiet: bool,
) -> None:
    """React to stop signals until cancelled: the first one (those received before this
    task started are in ``stop`` already) starts ``sup.drain(grace_s)`` in ``nursery``; any
    further one cancels every running session. Cancellation: raises ``Cancelled`` while
    waiting for a signal; nothing is left half done."""

    seen = 0

    def react(signum: int) -> None:
        nonlocal seen
        seen += 1
        sup.interrupted = True
        if seen == 1:
            if not quiet:
                again = "Ctrl-C again" if signum == signal.SIGINT else "the signal again or Ctrl-C"
                print(
                    f"\n{_SIGNAL_WORDS.get(signum, f'signal {signum}')}: draining (running "
                    f"sessions get {grace_s:g} s); {again} to cancel them",
                    file=sys.stderr,
                    flush=True,
                )
            nursery.start_soon(sup.drain, grace_s)
        else:
            if not quiet:
                print("\ncancelling running sessions", file=sys.stderr, flush=True)
            sup.cancel()

    for signum in list(stop.signals):  # arrived before the run's receiver was listening
        react(signum)
    async for signum in signals:
        stop.note(signum)
        react(signum)
