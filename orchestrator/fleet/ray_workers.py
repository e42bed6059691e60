"""Workers as Ray actors (``--ray [ADDRESS]``): the same workers, on a Ray cluster.

Needs the optional extra (``pip install 'realtime-orchestrator[ray]'``); :func:`require_ray`
says so when it is missing. :func:`ray_cluster` connects to the cluster at ADDRESS, or,
without one, starts a local Ray instance for the run (no dashboard) and stops it after.

Each worker is a :class:`WorkerActor` (one CPU): its ``start`` method unpickles the order
(shipped by content, as a bytes argument: no shared filesystem is assumed; the package
itself must be installed on every node) and runs :func:`~orchestrator.fleet.worker.run_worker`
in a thread of the actor process with a :class:`~orchestrator.fleet.wire.QueueWriter`;
the coordinator's :class:`RayWorker` link polls the queued lines in batches (``poll``,
waited for in a worker thread of the coordinator via ``trio.to_thread``) and sends
commands (``command``). Every ``ray.get`` has a timeout (the ready timeout for ``start``,
the stop timeout for ``close``, a few poll intervals for ``poll``) and its thread is
abandoned when the caller is cancelled, so a stuck cluster cannot hang the run; an actor
never placed (no free CPU) is killed. The actor runs methods concurrently (``max_concurrency``), so a
command never waits behind a poll.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from orchestrator.fleet.job import loads_order
from orchestrator.fleet.wire import Command, QueueWriter, error_message, parse_command

__all__ = [
    "RAY_MISSING",
    "POLL_S",
    "RayWorker",
    "WorkerActor",
    "cluster_cpus",
    "ray_cluster",
    "require_ray",
]

RAY_MISSING = "--ray needs Ray: pip install 'realtime-orchestrator[ray]'"
#: How long one ``poll`` waits for the first line.
POLL_S = 0.2
#: How long one ``poll`` call may take (its wait included) before it counts as unanswered.
POLL_TIMEOUT_S = 10 * POLL_S
#: Unanswered polls in a row after which the actor counts as lost.
POLL_MISSES = 3
#: How long stopping an actor may take before it is killed.
STOP_TIMEOUT_S = 10.0
#: How long an actor may take to be created and start its order (placement included).
READY_TIMEOUT_S = 120.0
#: How long a command may take to be delivered.
COMMAND_TIMEOUT_S = 10.0
#: The handlers ``ray.init`` replaces (SIGTERM: ``sys.exit(15)``) and ``ray.shutdown``
#: does not restore.
_HANDLED = tuple(
    s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)) if s is not None
)


def require_ray() -> Any:
    """The ``ray`` module. Raises ``ImportError`` with :data:`RAY_MISSING` when absent."""
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


@contextmanager
def ray_cluster(
    address: str | None, num_cpus: int | None = None, *, quiet: bool = False
) -> Iterator[Any]:
    """Connect to the Ray cluster at ``address`` for the block, or (``None``) start a
    local instance with ``num_cpus`` CPUs (no dashboard); yields the ``ray`` module.
    Ray's own log lines on stderr (its ``ray`` logger) show from WARNING up, from ERROR
    up when ``quiet`` (its notices, e.g. that token authentication is enabled, are
    noise then); what the actors print is forwarded either way.
    Resource handling: the connection (and a local instance) ends with the block. The
    process's SIGTERM/SIGINT/SIGHUP handlers are restored right after ``ray.init`` (which
    installs its own: SIGTERM would exit 15 without a summary) and after
    ``ray.shutdown``."""
    ray = require_ray()
    options = {
        "include_dashboard": False,
        "logging_level": logging.ERROR if quiet else logging.WARNING,
    }
    saved = _signal_handlers()
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, **options)
    finally:
        _restore_signal_handlers(saved)
    try:
        yield ray
    finally:
        try:
            ray.shutdown()
        finally:
            _restore_signal_handlers(saved)


def _signal_handlers() -> dict[int, Any]:
    """The current handlers of :data:`_HANDLED` (only in the main thread: elsewhere no
    handler can be set, by Ray either)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in _HANDLED}


def _restore_signal_handlers(saved: dict[int, Any]) -> None:
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


def cluster_cpus(ray: Any) -> int:
    """The CPUs of the connected cluster (one worker per CPU)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def available_cpus(ray: Any) -> int:
    """The CPUs of the connected cluster free now (at least 1): more one-CPU actors than
    this would wait for a CPU, never start, and hold the whole fleet's start."""
    free = ray.available_resources().get("CPU")
    if free is None:
        return cluster_cpus(ray)
    return max(1, int(free))


class WorkerActor:
    """The actor body (wrapped by ``ray.remote`` in :class:`RayWorker`)."""

    def __init__(self) -> None:
        self.out = QueueWriter()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._send: trio.MemorySendChannel[Command] | None = None
        self._listening = threading.Event()
        self._ended = threading.Event()

    def start(self, order: bytes) -> dict[str, Any]:
        """Run ``order`` in a thread of this actor; returns where (host, pid)."""
        decoded = loads_order(order)
        self._thread = threading.Thread(target=self._main, args=(decoded,), daemon=True)
        self._thread.start()
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _main(self, order: Any) -> None:
        from orchestrator.fleet.worker import run_worker

        async def body() -> None:
            send, receive = trio.open_memory_channel[Command](8)
            self._token, self._send = trio.lowlevel.current_trio_token(), send
            self._listening.set()
            await run_worker(order, self.out, receive)

        try:
            trio.run(body)
        except BaseException as exc:  # noqa: BLE001 - reported to the coordinator as data
            self.out.write(error_message(exc))
        finally:
            self._listening.set()
            self._ended.set()

    def poll(self, wait_s: float = POLL_S) -> bytes | None:
        """The lines written since the last poll (waits up to ``wait_s`` for one);
        ``None`` once the worker ended and every line was taken."""
        ended = self._ended.is_set()
        data = self.out.take(0.0 if ended else wait_s)
        return None if ended and not data else data

    def command(self, line: bytes) -> None:
        """Deliver one command line to the worker (ignored once it ended)."""
        self._listening.wait()
        token, send = self._token, self._send
        if token is None or send is None or self._ended.is_set():
            return
        command = parse_command(line)
        try:
            token.run_sync_soon(_deliver, send, command)
        except trio.RunFinishedError:
            pass

    def close(self) -> None:
        """End the worker's commands (it cancels its sessions) and wait for its end."""
        self._listening.wait(timeout=STOP_TIMEOUT_S)
        token, send = self._token, self._send
        if token is not None and send is not None:
            try:
                token.run_sync_soon(send.close)
            except trio.RunFinishedError:
                pass
        self._ended.wait(timeout=STOP_TIMEOUT_S)


def _deliver(send: trio.MemorySendChannel[Command], command: Command) -> None:
    try:
        send.send_nowait(command)
    except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # at most go, drain and cancel: never full; closed: the worker ended


class RayWorker:
    """One worker as a Ray actor (a :class:`~orchestrator.fleet.coordinator.WorkerLink`).
    ``limiter``: the coordinator threads its blocking Ray calls may use."""

    def __init__(
        self,
        index: int,
        ray: Any,
        limiter: trio.CapacityLimiter,
        *,
        ready_timeout_s: float = READY_TIMEOUT_S,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.ray = ray
        self.limiter = limiter
        self.ready_timeout_s = ready_timeout_s
        self.runtime_env = runtime_env
        self.actor: Any = None
        self.started = False
        self.where = ""
        self.failure: str | None = None
        self._closing: Any = None

    @property
    def name(self) -> str:
        """``worker I (Ray actor on HOST, pid P)``."""
        return f"worker {self.index}" + (f" (Ray actor on {self.where})" if self.where else "")

    async def _get(self, ref: Any, timeout_s: float) -> Any:
        """``ray.get(ref)`` in a coordinator thread, waiting at most ``timeout_s`` (raises
        Ray's ``GetTimeoutError`` then). Cancellation: the thread is abandoned at once (it
        ends by its own timeout), so a ``move_on_after`` around this works."""
        return await trio.to_thread.run_sync(
            lambda: self.ray.get(ref, timeout=timeout_s),
            limiter=self.limiter,
            abandon_on_cancel=True,
        )

    async def open(self, order: bytes) -> None:
        """Create the actor and start the order in it. Raises Ray's errors
        (``GetTimeoutError`` when the actor has not started within ``ready_timeout_s``,
        e.g. no free CPU for it); :meth:`close` then kills the pending actor."""
        options: dict[str, Any] = {"num_cpus": 1, "max_concurrency": 4}
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        remote = self.ray.remote(**options)(WorkerActor)
        self.actor = remote.remote()
        info = await self._get(self.actor.start.remote(order), self.ready_timeout_s)
        self.started = True
        self.where = f"{info['host']}, pid {info['pid']}"

    async def receive_some(self) -> bytes:
        """The next batch of the worker's lines (``b""``: it ended, or the actor died or
        left :data:`POLL_MISSES` polls in a row unanswered)."""
        misses = 0
        while True:
            try:
                data = await self._get(self.actor.poll.remote(POLL_S), POLL_TIMEOUT_S)
            except self.ray.exceptions.GetTimeoutError:
                misses += 1
                if misses < POLL_MISSES:
                    continue
                self.failure = f"the actor did not answer {misses} polls of {POLL_TIMEOUT_S:g} s"
                return b""
            except self.ray.exceptions.RayError as exc:
                self.failure = f"the actor failed: {type(exc).__name__}"
                return b""
            misses = 0
            if data is None:
                return b""
            if data:
                return bytes(data)

    async def send(self, data: bytes) -> None:
        """Send a command line (nothing happens once the actor is gone or does not take
        it within :data:`COMMAND_TIMEOUT_S`)."""
        try:
            await self._get(self.actor.command.remote(data), COMMAND_TIMEOUT_S)
        except self.ray.exceptions.RayError:
            pass

    async def close_input(self) -> None:
        """End the worker's commands without waiting for its end (it cancels its
        sessions; its remaining lines can still be polled)."""
        if self.started and self._closing is None:
            self._closing = self.actor.close.remote()

    async def close(self) -> str:
        """Stop the worker and the actor; says how it ended. Bounded (about
        :data:`STOP_TIMEOUT_S`: a worker that has not ended by then is killed with its
        actor; an actor still pending is killed at once); never raises."""
        if self.actor is None:
            return "never started"
        if self.started:
            await self.close_input()
            with trio.move_on_after(STOP_TIMEOUT_S + 1):
                try:
                    await self._get(self._closing, STOP_TIMEOUT_S + 0.5)
                except self.ray.exceptions.RayError as exc:
                    self.failure = self.failure or f"the actor failed: {type(exc).__name__}"
        try:
            self.ray.kill(self.actor)
        except Exception:  # noqa: BLE001, S110 - already gone
            pass
        if not self.started:
            return "never started (its actor was not placed in time)"
        return self.failure or "ended"
