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
commands (``command``). The actor runs methods concurrently (``max_concurrency``), so a
command never waits behind a poll.
"""

from __future__ import annotations

import logging
import os
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
#: How long stopping an actor may take before it is killed.
STOP_TIMEOUT_S = 10.0


def require_ray() -> Any:
    """The ``ray`` module. Raises ``ImportError`` with :data:`RAY_MISSING` when absent."""
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


@contextmanager
def ray_cluster(address: str | None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to the Ray cluster at ``address`` for the block, or (``None``) start a
    local instance with ``num_cpus`` CPUs (no dashboard); yields the ``ray`` module.
    Resource handling: the connection (and a local instance) ends with the block."""
    ray = require_ray()
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus, **quiet)
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray: Any) -> int:
    """The CPUs of the connected cluster (one worker per CPU)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


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

    def __init__(self, index: int, ray: Any, limiter: trio.CapacityLimiter) -> None:
        self.index = index
        self.ray = ray
        self.limiter = limiter
        self.actor: Any = None
        self.where = ""
        self.failure: str | None = None

    @property
    def name(self) -> str:
        """``worker I (Ray actor on HOST, pid P)``."""
        return f"worker {self.index}" + (f" (Ray actor on {self.where})" if self.where else "")

    async def _call(self, method: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(
            lambda: self.ray.get(method.remote(*args)), limiter=self.limiter
        )

    async def open(self, order: bytes) -> None:
        """Create the actor and start the order in it. Raises Ray's errors."""
        remote = self.ray.remote(num_cpus=1, max_concurrency=4)(WorkerActor)
        self.actor = remote.remote()
        info = await self._call(self.actor.start, order)
        self.where = f"{info['host']}, pid {info['pid']}"

    async def receive_some(self) -> bytes:
        """The next batch of the worker's lines (``b""``: it ended, or the actor died)."""
        while True:
            try:
                data = await self._call(self.actor.poll, POLL_S)
            except self.ray.exceptions.RayError as exc:
                self.failure = f"the actor failed: {type(exc).__name__}"
                return b""
            if data is None:
                return b""
            if data:
                return bytes(data)

    async def send(self, data: bytes) -> None:
        """Send a command line (nothing happens once the actor is gone)."""
        try:
            await self._call(self.actor.command, data)
        except self.ray.exceptions.RayError:
            pass

    async def close(self) -> str:
        """Stop the worker and the actor; says how it ended. Bounded; never raises."""
        if self.actor is None:
            return "never started"
        with trio.move_on_after(STOP_TIMEOUT_S + 1):
            try:
                await self._call(self.actor.close)
            except self.ray.exceptions.RayError as exc:
                self.failure = self.failure or f"the actor failed: {type(exc).__name__}"
        try:
            self.ray.kill(self.actor)
        except Exception:  # noqa: BLE001, S110 - already gone
            pass
        return self.failure or "ended"
