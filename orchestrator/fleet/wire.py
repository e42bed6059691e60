"""The line protocol between a worker and its coordinator.

Worker to coordinator, one JSON object per line (UTF-8, ``\\n``-terminated):

* a record, exactly the line ``results.jsonl`` holds with ``"worker": W`` first
  (``{"worker":1,"kind":"session",...}``; :class:`StreamSink` writes them), which the
  coordinator appends to the results file as it is;
* a control message ``{"fleet": KIND, ...}`` (:func:`message`): ``ready`` (job read,
  waiting for the start), ``status`` (``snapshot``: the worker supervisor's live
  :class:`~orchestrator.supervisor.snapshot.SupervisorSnapshot` as a dict), ``end`` (the
  worker's own ``run_end`` figures: ``validity``, ``monitor``, ``late_starts``,
  ``dropped_starts``, ``interrupted``, ``t_s``), ``error`` (``error``: why the worker
  could not run, as text).

Coordinator to worker, one command per line (:func:`command_line`, :func:`parse_command`):
``go EPOCH`` (start the share at wall-clock time ``EPOCH``, seconds since the Unix
epoch), ``drain GRACE_S`` (as the first Ctrl-C), ``cancel`` (as the second). The end of
the command stream means the coordinator is gone: the worker cancels its sessions.

Writes are synchronous and blocking, as :class:`~orchestrator.supervisor.sink.JsonlSink`'s
are: a record is handed over before the supervisor does anything else with it; a
coordinator that falls behind holds the worker's event loop, which its loop-lag figure
(and so its validity) then shows.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from orchestrator.metrics import SessionResult, TimelinePoint, TurnRecord, redact_config
from orchestrator.metrics.failure import first_error
from orchestrator.metrics.records import to_json_line

__all__ = [
    "Command",
    "FdWriter",
    "LineWriter",
    "QueueWriter",
    "StreamSink",
    "WireError",
    "command_line",
    "error_message",
    "is_record",
    "message",
    "parse_command",
    "parse_message",
]

MESSAGE_PREFIX = b'{"fleet":'
RECORD_PREFIX = b'{"worker":'


class WireError(ValueError):
    """A line of the worker protocol that does not parse (the message quotes it)."""


class LineWriter(Protocol):
    """Where a worker's lines go; ``write`` hands one whole line over before returning."""

    def write(self, line: bytes) -> None: ...


class FdWriter:
    """Writes lines to a file descriptor (a pipe to the coordinator), blocking until the
    whole line is written. ``close`` closes the descriptor (idempotent)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def write(self, line: bytes) -> None:
        """Write all of ``line``. Raises ``OSError`` (``BrokenPipeError``: the coordinator
        is gone) or ``ValueError`` once closed."""
        if self.fd is None:
            raise ValueError("the worker's output is closed")
        view = memoryview(line)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        """Close the descriptor."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class QueueWriter:
    """Puts lines on a bounded ``queue.Queue`` that another thread drains (a Ray actor's
    ``poll``); a full queue blocks the writer until there is room."""

    def __init__(self, maxsize: int = 65536) -> None:
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize)

    def write(self, line: bytes) -> None:
        """Queue ``line`` (blocks while the queue is full)."""
        self.queue.put(line)

    def take(self, wait_s: float) -> bytes:
        """Every queued line, joined; waits up to ``wait_s`` for the first (``b""``: none)."""
        try:
            lines = [self.queue.get(timeout=wait_s)]
        except queue.Empty:
            return b""
        while True:
            try:
                lines.append(self.queue.get_nowait())
            except queue.Empty:
                return b"".join(lines)


def _tagged(worker: int, line: bytes) -> bytes:
    return b'{"worker":%d,' % worker + line[1:]


class StreamSink:
    """A :class:`~orchestrator.supervisor.sink.RecordSink` that writes every record, tagged
    with its worker, to a :class:`LineWriter` (run-level events: redacted, as
    :class:`~orchestrator.supervisor.sink.JsonlSink` writes them)."""

    def __init__(self, out: LineWriter, worker: int) -> None:
        self.out = out
        self.worker = worker

    def turn(self, record: TurnRecord) -> None:
        """Hand a finished turn over."""
        self.out.write(_tagged(self.worker, to_json_line(record)))

    def session(self, record: SessionResult) -> None:
        """Hand a finished session over."""
        self.out.write(_tagged(self.worker, to_json_line(record)))

    def snapshot(self, record: TimelinePoint) -> None:
        """Hand a live-status sample over."""
        self.out.write(_tagged(self.worker, to_json_line(record)))

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Hand a run-level line ``{"worker": W, "kind": kind, **data}`` over."""
        payload = {"worker": self.worker, "kind": kind, **redact_config(data)}
        self.out.write(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def error_message(exc: BaseException) -> bytes:
    """The ``error`` message of a worker that failed with ``exc`` (a group: its first
    error, or the group itself when it holds none)."""
    first = first_error(exc) or exc
    return message("error", error=f"{type(first).__name__}: {first}")


def message(kind: str, **fields: Any) -> bytes:
    """A control message line ``{"fleet": kind, **fields}``."""
    return orjson.dumps({"fleet": kind, **fields}, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def is_record(line: bytes) -> bool:
    """True for a record line (to append to the results file), False for a message."""
    return line.startswith(RECORD_PREFIX)


def parse_message(line: bytes) -> dict[str, Any]:
    """The fields of a control message line. Raises :class:`WireError` for anything else."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("fleet"), str):
        raise WireError(f"not a worker message: {line[:200]!r}")
    return data


class Command(NamedTuple):
    """A coordinator's command: ``go`` (``value``: the start epoch), ``drain``
    (``value``: the grace in seconds) or ``cancel``."""

    kind: Literal["go", "drain", "cancel"]
    value: float = 0.0


def command_line(command: Command) -> bytes:
    """The line of ``command``."""
    if command.kind == "cancel":
        return b"cancel\n"
    return f"{command.kind} {command.value!r}\n".encode()


def parse_command(line: bytes) -> Command:
    """The :class:`Command` of a line. Raises :class:`WireError` quoting a bad line."""
    parts = line.decode(errors="replace").split()
    if parts == ["cancel"]:
        return Command("cancel")
    if len(parts) == 2 and parts[0] in ("go", "drain"):
        try:
            return Command(parts[0], float(parts[1]))  # type: ignore[arg-type]
        except ValueError:
            pass
    raise WireError(f"not a coordinator command: {line[:200]!r}")
