"""One worker of a fleet run: a full supervisor on its share of the plan.

:func:`run_worker` is the worker, whatever carries it: it takes its share of the whole
model (:func:`~orchestrator.supervisor.plan.share_model`), builds its session specs,
sets up its runtime (the CLI's garbage-collector tuning) and opens its supervisor, says
``ready`` and waits for the coordinator's ``go EPOCH``. The share's plan is anchored at
that wall-clock time (mapped to the worker's trio clock), so the dealt start times line
up with the whole plan's across workers (up to the hosts' clock offsets); a ``go`` that
arrives after the epoch does not shift the plan: the starts already due are late, and
counted as such (``late_starts``). It runs the share, streaming every record and a
``status`` message every ``status_interval_s`` to the coordinator, then an ``end``
message with its own validity and self-monitoring figures (the ``run_end`` figures of a
single run). Its restart jitter is seeded with ``seed + worker`` (workers do not replay
each other's).

As a local process (``python -m orchestrator.fleet.worker``, started by
:mod:`orchestrator.fleet.local`): the order arrives on stdin (``job N`` then N bytes,
:mod:`orchestrator.fleet.job`), commands follow on stdin, lines go out on the original
stdout (anything else the process prints is sent to stderr instead). The end of stdin
means the coordinator is gone: running sessions are cancelled and the process exits.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import nullcontext

import trio

from orchestrator.fleet.job import JobError, WorkOrder, loads_order
from orchestrator.fleet.wire import (
    Command,
    FdWriter,
    LineWriter,
    StreamSink,
    WireError,
    error_message,
    message,
    parse_command,
)
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor.gc_regime import FullCollectionPolicy, FullCollector
from orchestrator.supervisor.plan import run_index, share_model
from orchestrator.supervisor.rate_gate import RateGate
from orchestrator.supervisor.supervisor import Supervisor, open_supervisor
from orchestrator.supervisor.workload import Workload, planned_total
from orchestrator.transport import prepare_ssl_context

__all__ = ["main", "run_worker"]


def _share_total(order: WorkOrder) -> int | None:
    """How many sessions this worker's share plans, when known before the run."""
    total = planned_total(order.job.model)
    return None if total is None else len(range(order.worker, total, order.workers))


async def _obey(
    commands: trio.MemoryReceiveChannel[Command], sup: Supervisor, nursery: trio.Nursery
) -> None:
    """Apply the coordinator's commands to ``sup`` until cancelled; the end of the
    commands (coordinator gone) cancels every session."""
    async for command in commands:
        sup.interrupted = True
        if command.kind == "drain":
            nursery.start_soon(sup.drain, command.value)
        elif command.kind == "cancel":
            sup.cancel()
    sup.interrupted = True
    sup.cancel()


async def _report(sup: Supervisor, out: LineWriter, interval_s: float) -> None:
    """Send ``sup``'s live status every ``interval_s`` until cancelled."""
    while True:
        await trio.sleep(interval_s)
        out.write(message("status", snapshot=sup.snapshot().to_dict()))


async def run_worker(
    order: WorkOrder, out: LineWriter, commands: trio.MemoryReceiveChannel[Command]
) -> None:
    """Run ``order``'s share (see the module docstring), writing to ``out`` and obeying
    ``commands``; returns after the ``end`` message was written. A ``drain`` or
    ``cancel`` before ``go``, or the end of ``commands``, ends the worker without running
    anything (an ``end`` message with nothing started). Reseeds ``order.job.restart``'s
    jitter (the order is the worker's own copy).

    Resource handling: the supervisor's sessions all end before this returns (a ``drain``
    gives them its grace, a ``cancel`` or the end of ``commands`` cancels them; each one's
    result is written). Cancellation: raises ``Cancelled`` after the supervisor cancelled
    its sessions; no ``end`` message is written then.
    """
    job = order.job
    share = share_model(job.model, order.worker, order.workers)
    seed = job.seed + order.worker
    job.restart.backoff.rng.seed(seed)  # the restart jitter differs per worker

    def spec_for(local: int) -> SessionSpec:
        return job.spec(run_index(local, order.worker, order.workers))

    workload = Workload(model=share, spec=spec_for, driver=job.driver, restart=job.restart)
    # build the base specs now (a factory may build them on first use), and a wss
    # target's TLS context, before ``ready``: the run's clock starts at ``go``
    if getattr(spec_for(0).target, "secure", False):
        await prepare_ssl_context()
    runtime = job.runtime() if job.runtime is not None else nullcontext()
    started = False
    with runtime:
        async with trio.open_nursery() as nursery:
            async with open_supervisor(
                sink=StreamSink(out, order.worker),
                restart=job.restart,
                breaker=job.breaker,
                validity_limits=job.validity_limits,
                late_after_ms=job.late_after_ms,
                drop_after_ms=job.drop_after_ms,
                timeline_interval_s=None,  # the coordinator samples the whole fleet
                seed=seed,
                rate_gate=RateGate() if job.respect_rate_limits else None,
                tags=job.tags,
            ) as sup:
                sup.planned_total = _share_total(order)
                out.write(message("ready", pid=os.getpid()))
                first = None
                async for command in commands:
                    first = command
                    break
                if first is not None and first.kind == "go":
                    started = True
                    # the epoch on this process's trio clock (past: the due starts are late)
                    t0 = trio.current_time() + (first.value - time.time())
                    sup.t0 = t0
                    nursery.start_soon(_obey, commands, sup, nursery)
                    nursery.start_soon(_report, sup, out, order.status_interval_s)
                    collector = FullCollector(
                        progress=lambda: (
                            sup.completed + sup.failed + sup.cancelled,
                            sup.running,
                        ),
                        policy=FullCollectionPolicy(),
                    )
                    await nursery.start(collector.run)
                    await sup.run_workload(workload, t0=t0)
            nursery.cancel_scope.cancel()
    if not started:
        out.write(message("end", started=False, interrupted=True))
        return
    out.write(message("status", snapshot=sup.snapshot().to_dict()))
    out.write(
        message(
            "end",
            started=True,
            t_s=round(sup.now_s(), 6),
            late_starts=sup.late_starts,
            dropped_starts=sup.dropped_starts,
            validity=sup.validity(),
            monitor=sup.monitor_figures(),
            interrupted=sup.interrupted,
        )
    )


# --------------------------------------------------------------------------- process


def _read_order(fd: int) -> tuple[WorkOrder, bytes]:
    """Read ``job N\\n`` and N bytes from ``fd`` (blocking); returns the order and any
    bytes read past it. Raises :class:`JobError`."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise JobError("the coordinator closed the worker's input before its job")
        data += chunk
    header, _, data = data.partition(b"\n")
    words = header.split()
    if len(words) != 2 or words[0] != b"job" or not words[1].isdigit():
        raise JobError(f"not a job header: {header[:100]!r}")
    size = int(words[1])
    parts = [data]
    have = len(data)
    while have < size:
        chunk = os.read(fd, min(1 << 20, size - have))
        if not chunk:
            raise JobError(f"the job was cut off ({have} of {size} bytes)")
        parts.append(chunk)
        have += len(chunk)
    body = b"".join(parts)
    return loads_order(body[:size]), body[size:]


async def _read_commands(fd: int, rest: bytes, send: trio.MemorySendChannel[Command]) -> None:
    """Parse command lines from ``fd`` (after ``rest``) into ``send``; closes ``send`` at
    the end of the input. Raises :class:`WireError` for a bad line."""
    with send:
        stream = trio.lowlevel.FdStream(fd)
        buf = rest
        while True:
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    await send.send(parse_command(line))
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            buf += chunk


async def _serve(order: WorkOrder, rest: bytes, out: LineWriter) -> None:
    send, receive = trio.open_memory_channel[Command](8)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_commands, os.dup(0), rest, send)
        await run_worker(order, out, receive)
        nursery.cancel_scope.cancel()


def main() -> int:
    """The worker process: read the order, run it, exit 0 (1 when it could not run; the
    reason is sent as an ``error`` message and printed on stderr)."""
    out = FdWriter(os.dup(1))
    os.dup2(2, 1)  # stray prints must not corrupt the line protocol
    try:
        order, rest = _read_order(0)
        trio.run(_serve, order, rest, out)
    except BaseException as exc:  # noqa: BLE001 - a crash is reported, never silent
        if _only_broken_pipes(exc):
            return 1  # the coordinator is gone: nobody to tell
        if not isinstance(exc, JobError | WireError):
            traceback.print_exc()
        _report_error(out, exc)
        return 1
    finally:
        out.close()
    return 0


def _only_broken_pipes(exc: BaseException) -> bool:
    """True when ``exc`` is a ``BrokenPipeError``, or a group (trio's nurseries raise
    them) of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(BrokenPipeError)[1] is None
    return isinstance(exc, BrokenPipeError)


def _report_error(out: FdWriter, exc: BaseException) -> None:
    line = error_message(exc)
    print(f"orchestrator worker: {line.decode().strip()}", file=sys.stderr, flush=True)
    try:
        out.write(line)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
