"""Workers as local processes: ``python -m orchestrator.fleet.worker``, one per share.

Each process runs in its own session (a terminal's Ctrl-C reaches only the coordinator,
which forwards it as a ``drain`` command), reads its order and commands on stdin and
writes its lines on stdout (:mod:`orchestrator.fleet.wire`); its stderr is the
coordinator's. Because its stdin is a pipe from the coordinator, it also stops when the
coordinator dies without cleaning up (even ``SIGKILL``). Stopping closes its stdin only:
its stdout stays open (and is read) until it exited, so the records of the sessions it
cancels are not lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import trio

__all__ = ["STOP_TIMEOUT_S", "ProcessWorker", "describe_exit"]

#: After its stdin is closed, how long a worker may take to stop before SIGTERM, then SIGKILL.
STOP_TIMEOUT_S = 5.0


def describe_exit(code: int | None) -> str:
    """``exit code N`` / ``killed by SIGKILL`` / ``still running`` for a return code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ProcessWorker:
    """One local worker process (a :class:`~orchestrator.fleet.coordinator.WorkerLink`)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: trio.Process | None = None

    @property
    def name(self) -> str:
        """``worker I (pid P)``: how reports name this worker."""
        pid = "" if self.process is None else f" (pid {self.process.pid})"
        return f"worker {self.index}{pid}"

    async def open(self, order: bytes) -> None:
        """Start the process and send it ``order``. Raises ``OSError`` when it cannot be
        started. Cancellation: raises ``Cancelled``; :meth:`close` stops what started."""
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "orchestrator.fleet.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        await self.send(b"job %d\n" % len(order) + order)

    async def receive_some(self) -> bytes:
        """The next bytes the worker wrote (``b""``: it closed its output, or exited)."""
        assert self.process is not None and self.process.stdout is not None
        try:
            return bytes(await self.process.stdout.receive_some(1 << 16))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the worker's stdin (nothing happens once it exited)."""
        assert self.process is not None and self.process.stdin is not None
        try:
            await self.process.stdin.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def close_input(self) -> None:
        """Close the worker's stdin: it cancels its sessions, writes their records and
        exits; its output can still be read to its end. Never raises but ``Cancelled``
        (the pipe is closed even then)."""
        proc = self.process
        if proc is not None and proc.stdin is not None:
            with trio.move_on_after(1):
                await proc.stdin.aclose()

    async def close(self) -> str:
        """Stop the worker and say how it ended (:func:`describe_exit`): stdin closed
        (it cancels its sessions and exits), then after :data:`STOP_TIMEOUT_S` SIGTERM,
        after as long again SIGKILL; its stdout is closed once it exited (whoever reads
        it should have read it to its end first: :meth:`close_input`). Bounded; never
        raises (``Cancelled`` included: call it shielded)."""
        proc = self.process
        if proc is None:
            return "never started"
        with trio.CancelScope(shield=True):
            await self.close_input()
        for stop in (None, proc.terminate, proc.kill):
            if stop is not None and proc.returncode is None:
                await self._close_output()  # unread now: a write blocked on it fails
                stop()
            with trio.move_on_after(STOP_TIMEOUT_S):
                await proc.wait()
            if proc.returncode is not None:
                break
        await self._close_output()
        return describe_exit(proc.returncode)

    async def _close_output(self) -> None:
        proc = self.process
        if proc is not None and proc.stdout is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await proc.stdout.aclose()
