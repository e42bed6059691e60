"""The embedded target of ``orchestrator run`` in its own process(es).

A load generator must never measure itself: served in the generator's own event loop,
the embedded server's sends wait behind the sessions' work, and at a few hundred
sessions the client measures that wait as server latency. So by default ``run`` starts
``orchestrator serve --child --port 0`` as a child process (``--server-processes N``:
N of them sharing one port with ``SO_REUSEPORT``; the kernel spreads the connections)
and loads it over loopback; ``--server-in-process`` keeps the old in-process server
(tests, small runs).

The child protocol (see :mod:`orchestrator.cli.serve`): the child prints ``ready
port=PORT pid=PID`` on stdout once listening; a ``start`` line on its stdin marks the
run's start (origin of ``--server-freeze``); the end of its stdin stops it. The child
runs in its own session (a terminal's Ctrl-C reaches only the parent, which drains its
sessions while the server keeps serving) and, because its stdin is a pipe from the
parent, it also stops when the parent dies without cleaning up (even ``SIGKILL``).

Options: every ``--server-*`` option of the run becomes the child's option as typed
(``serve`` parses it with the same value types); the run's own choices are added
(seed, model, hearing directory, no key, pings off unless asked for, the scenario's
``[server]`` hints, the ground-truth file). :func:`child_argv` builds the command line;
a test checks that ``serve`` builds the same :class:`ServerConfig` from it as ``run``
does in-process.

Log: the servers' own log (their stderr, warnings and errors) goes to ``OUT/server.log``
when they log anything (:data:`SERVER_LOG_FILE`, ``log_path`` of :func:`serve_target`; the in-process server's
``orchestrator.mockserver`` logger with :func:`in_process_log`), never to the terminal,
where it would land above the live panel, ``--quiet`` or not. A server that fails to start
or dies is reported with the last lines of that file.

Validity: every server writes ground truth (``OUT/groundtruth.jsonl`` unless
``--server-groundtruth`` names a file; process ``i > 0`` writes ``NAME.i.jsonl``), and
each record has the server's own send lateness (``send_late_ms``: actual - intended,
freezes excused). :func:`judge_groundtruth` reads the records of this run and makes the
run invalid when its p99 is over ``--target-lateness-limit-ms``, naming the target.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio

from orchestrator.cli.options import SERVER_OPTIONS, Given
from orchestrator.mockserver import ServerConfig
from orchestrator.mockserver.groundtruth import send_lateness
from orchestrator.supervisor.validity import Validity, ValidityLimits, judge_target

__all__ = [
    "GROUNDTRUTH_FILE",
    "READY_TIMEOUT_S",
    "SERVER_LOG_FILE",
    "SERVER_PREFIX",
    "STOP_TIMEOUT_S",
    "EmbeddedTarget",
    "TargetError",
    "TargetProcesses",
    "argv_for_run",
    "child_argv",
    "groundtruth_paths",
    "in_process_log",
    "judge_groundtruth",
    "serve_target",
]

#: The prefix of ``run``'s embedded-server options (``--server-first-delta``): the child
#: gets each of them without it.
SERVER_PREFIX = "server-"
GROUNDTRUTH_FILE = "groundtruth.jsonl"
#: The embedded server's log in the run folder (its processes' stderr).
SERVER_LOG_FILE = "server.log"
#: How many last lines of the log a :class:`TargetError` quotes.
LOG_TAIL_LINES = 5
#: How long a child may take to print its ready line (imports, audio synthesis).
READY_TIMEOUT_S = 60.0
#: After stdin is closed, how long a child may take to stop before SIGTERM, then SIGKILL.
STOP_TIMEOUT_S = 5.0

#: Options ``run`` decides itself (from the built config) rather than passing as typed.
_FROM_CONFIG = frozenset(
    {
        "seed",
        "stall-probability",
        "stall-ms",
        "ping-interval-s",
        "tool-rule",
        "spoken-transcript",
        "greeting",
    }
)


class TargetError(RuntimeError):
    """The embedded server process could not start, or exited during the run."""


@attrs.define(eq=False)
class EmbeddedTarget:
    """How the run's embedded server runs and where its ground truth goes.

    ``offsets``: the size of each ground-truth file before the run (an existing file is
    appended to; only this run's records are judged). ``log``: where the servers' log
    goes (``OUT/server.log``; ``None``: this process's stderr)."""

    in_process: bool
    processes: int
    groundtruth: list[Path]
    offsets: list[int] = attrs.field(factory=list)
    log: Path | None = None

    @property
    def name(self) -> str:
        """The target as a validity reason names it."""
        if self.in_process:
            return "embedded server (in-process, sharing the generator's event loop)"
        if self.processes == 1:
            return "embedded server (own process)"
        return f"embedded server ({self.processes} processes)"

    def note_offsets(self) -> None:
        """Remember how long each ground-truth file is before the run."""
        self.offsets = [p.stat().st_size if p.exists() else 0 for p in self.groundtruth]


def groundtruth_paths(first: Path, processes: int) -> list[Path]:
    """The ground-truth file of each server process: ``first``, then ``NAME.i.SUFFIX``."""
    return [first] + [
        first.with_name(f"{first.stem}.{i}{first.suffix or '.jsonl'}") for i in range(1, processes)
    ]


#: Server process ``i`` of a run numbers its connections from ``i * CONNECTIONS_PER_PROCESS``.
CONNECTIONS_PER_PROCESS = 1_000_000


def child_argv(
    args: argparse.Namespace,
    config: ServerConfig,
    *,
    prefix: str,
    port: int,
    reuse_port: bool,
    groundtruth: Path | None,
    process: int = 0,
) -> list[str]:
    """The command line of one ``orchestrator serve --child`` for the run's server.

    ``process``: the index of this server process among those sharing the port: it numbers
    its connections from ``process *`` :data:`CONNECTIONS_PER_PROCESS` (the seed is the
    run's in every process, so what depends on the seed alone, such as tool results, does
    not depend on which process a session reached).

    ``args``: the run's namespace (``--PREFIX*`` options parsed with ``defer=True``);
    ``config``: the server config ``run`` built from them (seed, scenario hints ...)."""
    argv = [sys.executable, "-m", "orchestrator", "serve", "--child"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--api-key="]
    if reuse_port:
        argv.append("--reuse-port")
    argv += ["--log-level", "WARNING", "--default-model", config.default_model]
    argv += (
        ["--no-hearing"] if config.hearing_dir is None else ["--hear-dir", str(config.hearing_dir)]
    )
    for opt in SERVER_OPTIONS:
        if opt.name in _FROM_CONFIG or opt.name == "groundtruth":
            continue
        value = getattr(args, opt.dest(prefix), None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Given):
                argv.append(f"--{opt.name}")
                if item.text is not None:
                    argv.append(item.text)
    faults = config.faults
    argv += ["--seed", str(config.seed)]
    argv += ["--first-connection", str(CONNECTIONS_PER_PROCESS * process)]
    argv += ["--stall-probability", repr(faults.stall_probability)]
    argv += ["--stall-ms", repr(faults.stall_ms)]
    argv += ["--ping-interval-s", repr(config.ping_interval_s or 0.0)]
    for rule in config.tool_rules:
        argv += ["--tool-rule", f"{rule.pattern}=>{rule.tool}:{rule.arguments}"]
    for text in config.spoken_transcripts:
        argv += ["--spoken-transcript", text]
    if config.greeting is not None:  # --server-greeting, or a scenario's [server] greeting
        argv += ["--greeting", config.greeting]
    if groundtruth is not None:
        argv += ["--groundtruth", str(groundtruth)]
    return argv


@attrs.define(eq=False)
class TargetProcesses:
    """The running server processes (``port`` shared by all of them)."""

    port: int
    processes: list[trio.Process]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def mark_start(self) -> None:
        """Tell every process the run starts now (origin of scheduled faults).

        A process that does not read its stdin within :data:`STOP_TIMEOUT_S` (hung) is
        skipped rather than waited for. Cancellation: raises ``Cancelled``; a process may
        then have missed it."""
        for proc in self.processes:
            assert proc.stdin is not None
            with trio.move_on_after(STOP_TIMEOUT_S):
                try:
                    await proc.stdin.send_all(b"start\n")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # exited: the watcher reports it


def _log_tail(log: Path | None) -> str:
    """`` (log: PATH, last lines: ...)`` for an error message, from the end of the servers'
    log file (empty without one, or when it is empty or unreadable)."""
    if log is None:
        return ""
    try:
        with open(log, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 4096, 0))
            lines = f.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return f" (log: {log})"
    tail = " | ".join(line.strip() for line in lines if line.strip())
    return f" (log: {log}" + (f"; last lines: {tail})" if tail else ")")


async def _read_ready(proc: trio.Process, what: str, log: Path | None) -> int:
    """The port of ``proc``'s ready line (raises :class:`TargetError` if it ends first)."""
    assert proc.stdout is not None
    data = b""
    while b"\n" not in data:
        chunk = await proc.stdout.receive_some(4096)
        if not chunk:
            code = await proc.wait()
            raise TargetError(f"{what} exited with code {code} before it was ready{_log_tail(log)}")
        data += chunk
    line = data.split(b"\n", 1)[0].decode(errors="replace")
    fields = dict(part.partition("=")[::2] for part in line.split()[1:])
    if not line.startswith("ready ") or not fields.get("port", "").isdigit():
        raise TargetError(f"{what}: unexpected ready line {line!r}{_log_tail(log)}")
    return int(fields["port"])


async def _stop(proc: trio.Process) -> None:
    """Stop ``proc``: close its stdin (it stops and flushes its ground truth), then after
    :data:`STOP_TIMEOUT_S` SIGTERM, after as long again SIGKILL. Bounded; never raises
    (``Cancelled`` included: call it shielded)."""
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with trio.move_on_after(1):
                await stream.aclose()
    with trio.move_on_after(STOP_TIMEOUT_S):
        await proc.wait()
    if proc.returncode is None:
        proc.terminate()
        with trio.move_on_after(STOP_TIMEOUT_S):
            await proc.wait()
    if proc.returncode is None:
        proc.kill()
        with trio.move_on_after(STOP_TIMEOUT_S):
            await proc.wait()


async def _watch(proc: trio.Process, what: str, log: Path | None) -> None:
    code = await proc.wait()
    raise TargetError(
        f"{what} (pid {proc.pid}) exited during the run with code {code}{_log_tail(log)}"
    )


def _open_log(log: Path) -> Any:
    log.parent.mkdir(parents=True, exist_ok=True)
    return open(log, "ab")  # noqa: SIM115 - closed by serve_target


def _close_log(log: Path, file: Any) -> None:
    """Close the log; remove it when it is empty (nothing was logged, this run or before)."""
    file.close()
    with contextlib.suppress(OSError):
        if log.stat().st_size == 0:
            log.unlink()


async def serve_target(
    argv_for: Any,
    processes: int = 1,
    *,
    log: Path | None = None,
    task_status: trio.TaskStatus[TargetProcesses] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``processes`` embedded server processes until cancelled; reports them (their
    shared port) once every one is listening.

    ``argv_for(index, port, reuse_port)``: the command line of process ``index``
    (:func:`child_argv`); process 0 picks a free port, the others bind the same one.
    ``log``: the file their stderr is appended to (its folder is made; left only when
    something was written to it; ``None``: this process's stderr, where it would show
    above the live panel).

    Resource handling: every process started is stopped (see :func:`_stop`: stdin closed,
    then SIGTERM, then SIGKILL, each wait bounded) however this task ends, cancellation
    and errors included, and the log file is closed after them; the processes run in
    their own session, so a terminal's Ctrl-C reaches only this process, and their stdin
    is a pipe from this process, so they also stop if it dies. Error handling: a process
    that exits before its ready line (within :data:`READY_TIMEOUT_S`) or during the run
    raises :class:`TargetError`, quoting the last lines of ``log``; ``OSError`` when the
    log cannot be opened (nothing started).
    """
    procs: list[trio.Process] = []
    reuse = processes > 1
    log_file = None if log is None else await trio.to_thread.run_sync(_open_log, log)
    try:
        port = 0
        for index in range(processes):
            what = "the embedded server" + (f" process {index}" if processes > 1 else "")
            argv: Sequence[str] = argv_for(index, port, reuse)
            proc = await trio.lowlevel.open_process(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
            procs.append(proc)
            with trio.move_on_after(READY_TIMEOUT_S) as waited:
                port = await _read_ready(proc, what, log)
            if waited.cancelled_caught:
                raise TargetError(
                    f"{what} was not ready within {READY_TIMEOUT_S:g} s{_log_tail(log)}"
                )
        async with trio.open_nursery() as nursery:
            for index, proc in enumerate(procs):
                nursery.start_soon(_watch, proc, f"the embedded server process {index}", log)
            task_status.started(TargetProcesses(port=port, processes=procs))
    finally:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as stopping:
                for proc in procs:
                    stopping.start_soon(_stop, proc)
        if log is not None and log_file is not None:
            _close_log(log, log_file)


@contextmanager
def in_process_log(target: EmbeddedTarget | None) -> Iterator[None]:
    """For the block, the log of an in-process embedded server (``target.in_process``
    with a ``target.log``: the ``orchestrator.mockserver`` logger, warnings and up) is
    appended to ``target.log`` instead of reaching the terminal (Python's last-resort
    handler prints warnings on stderr, above the live panel). The logger's handlers, level
    and propagation are restored and the file closed on exit, however the block ends.
    Anything else (``None``: ``--url``; server processes, whose stderr
    :func:`serve_target` sends to the file): nothing changes."""
    if target is None or not target.in_process or target.log is None:
        yield
        return
    log = target.log
    logger = logging.getLogger("orchestrator.mockserver")
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log, encoding="utf-8", delay=True)  # made by a first line
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.WARNING))
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
        handler.close()


def _records(path: Path, offset: int) -> list[dict[str, Any]]:
    """The ground-truth records of ``path`` from byte ``offset`` (a cut-off last line,
    from a process that was killed mid-write, is skipped)."""
    if not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    out = []
    for line in lines:
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out


def judge_groundtruth(
    target: EmbeddedTarget, limits: ValidityLimits
) -> tuple[Validity, dict[str, Any]]:
    """The target's verdict (:func:`~orchestrator.supervisor.validity.judge_target`) and
    figures (:func:`~orchestrator.mockserver.groundtruth.send_lateness`, plus how it ran)
    from the ground truth this run wrote."""
    offsets = target.offsets or [0] * len(target.groundtruth)
    records: list[dict[str, Any]] = []
    for path, offset in zip(target.groundtruth, offsets, strict=True):
        records.extend(_records(path, offset))
    figures = send_lateness(records)
    verdict = judge_target(figures["send_late_p99_ms"], target.name, limits)
    info = {
        "mode": "in-process" if target.in_process else "process",
        "processes": target.processes,
        "groundtruth": [os.fspath(p) for p in target.groundtruth],
        **figures,
    }
    return verdict, info


def argv_for_run(setup: Any, args: argparse.Namespace) -> Any:
    """``argv_for(index, port, reuse_port)`` of :func:`serve_target` for the run of
    ``setup`` (a :class:`~orchestrator.cli.run_setup.RunSetup` with the embedded target)."""
    assert setup.server_config is not None and setup.target is not None
    config, paths = setup.server_config, setup.target.groundtruth

    def argv_for(index: int, port: int, reuse_port: bool) -> list[str]:
        return child_argv(
            args,
            config,
            prefix=SERVER_PREFIX,
            port=port,
            reuse_port=reuse_port,
            groundtruth=paths[index],
            process=index,
        )

    return argv_for
