"""The result sink: every finished turn and session goes to ``results.jsonl`` at once.

A load run can end badly (Ctrl-C, a crash, the machine running out of memory). What was
finished before must survive, so :class:`JsonlSink` writes each record as one line and
flushes it to the operating system *before* the supervisor does anything else with the
result (restart decisions, live statistics, the next start). A crash then loses at most
the line being written; :func:`orchestrator.metrics.read_results` skips such a cut-off
last line.

Besides the metrics records (``turn``, ``session``, ``snapshot``; see
:mod:`orchestrator.metrics.records`) the sink writes these run-level kinds, which the
metrics reader skips as unknown and :func:`read_run_meta` reads, so that a results file
alone is enough to rebuild ``summary.json`` and ``report.html`` (``orchestrator report``):

``{"kind": "run", "run": {...}, "config": {...}}``
    first line: run information and the (already redacted) run configuration.
``{"kind": "start_dropped", "index": i, "planned_start_s": t, "late_ms": x, "reason": r}``
    one per planned start that never happened (``"too_late"`` or ``"max_concurrency"``).
``{"kind": "run_abort", "threshold": expr, "actual": x, "t_s": t, "reason": text, ...}``
    when an ``:abort`` threshold failed during the run (see :mod:`.live_thresholds`).
``{"kind": "run_end", "t_s": t, "late_starts": n, "dropped_starts": n, "validity": {...},
"monitor": {...}, "interrupted": bool}``
    when the run ended in an orderly way (also after Ctrl-C).
``{"kind": "target", "validity": {"valid": bool, "reasons": [...]}, "figures": {...}}``
    after ``run_end`` (also after a crash), when the run used the embedded target: its
    verdict from its own ground truth (send lateness) and its figures, which a summary
    merges into its validity and shows as ``run.target``.

Writes are synchronous: a line of a few hundred bytes to a local file takes microseconds,
far less than one trio scheduling round, and doing it inline keeps the ordering promise
simple (nothing can run between "session finished" and "its line is flushed").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

import attrs
import orjson

from orchestrator.metrics import (
    SessionResult,
    TimelinePoint,
    TurnRecord,
    redact_config,
    to_json_line,
)

__all__ = [
    "JsonlSink",
    "ListSink",
    "RecordSink",
    "RunMeta",
    "read_run_meta",
]


class RecordSink(Protocol):
    """Where the supervisor puts records. Every method must persist (or keep) the record
    before returning; none may block on I/O for long (they run on the trio thread)."""

    def turn(self, record: TurnRecord) -> None: ...

    def session(self, record: SessionResult) -> None: ...

    def snapshot(self, record: TimelinePoint) -> None: ...

    def event(self, kind: str, data: Mapping[str, Any]) -> None: ...


@attrs.define(eq=False)
class ListSink:
    """An in-memory sink (library use, tests): keeps every record in lists."""

    turns: list[TurnRecord] = attrs.field(factory=list)
    sessions: list[SessionResult] = attrs.field(factory=list)
    snapshots: list[TimelinePoint] = attrs.field(factory=list)
    events: list[dict[str, Any]] = attrs.field(factory=list)

    def turn(self, record: TurnRecord) -> None:
        """Keep a finished turn."""
        self.turns.append(record)

    def session(self, record: SessionResult) -> None:
        """Keep a finished session."""
        self.sessions.append(record)

    def snapshot(self, record: TimelinePoint) -> None:
        """Keep a live-status sample."""
        self.snapshots.append(record)

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Keep a run-level event (``{"kind": kind, **data}``)."""
        self.events.append({"kind": kind, **data})


class JsonlSink:
    """Appends records to a ``results.jsonl`` file, one flushed line per record.

    Use as a context manager (``with JsonlSink(path) as sink:``) or call :meth:`close`.
    The file is created (parent directories too) and truncated on open. ``fsync=True``
    also forces every line to stable storage (survives a power cut, costs ~1 ms a line).
    ``lines`` counts the lines written.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fp: IO[bytes] | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fsync = fsync
        self.lines = 0

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._fp is None

    def _write(self, line: bytes) -> None:
        fp = self._fp
        if fp is None:
            raise ValueError(f"results sink {self.path} is closed")
        fp.write(line)
        fp.flush()
        if self._fsync:
            os.fsync(fp.fileno())
        self.lines += 1

    def turn(self, record: TurnRecord) -> None:
        """Write and flush one finished turn."""
        self._write(to_json_line(record))

    def session(self, record: SessionResult) -> None:
        """Write and flush one finished session."""
        self._write(to_json_line(record))

    def snapshot(self, record: TimelinePoint) -> None:
        """Write and flush one live-status sample."""
        self._write(to_json_line(record))

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Write and flush a run-level line ``{"kind": kind, **data}`` (secrets redacted)."""
        payload = {"kind": kind, **redact_config(data)}
        self._write(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def close(self) -> None:
        """Close the file (idempotent)."""
        fp, self._fp = self._fp, None
        if fp is not None:
            fp.close()


#: What a run-level line holds, byte for byte (``orjson`` writes no spaces); other lines
#: are metrics records, skipped without parsing.
_RUN_LEVEL_KEYS = (b'"kind":"run', b'"kind":"start_dropped"', b'"kind":"target"')


@attrs.frozen(kw_only=True)
class RunMeta:
    """The run-level lines of a results file (see the module docstring).

    ``ended`` is False when there is no ``run_end`` line (the run crashed or is still
    going): ``late_starts``/``validity`` are then unknown (``None``) and ``dropped_starts``
    counts the ``start_dropped`` lines seen.
    """

    run: dict[str, Any] = attrs.field(factory=dict)
    config: dict[str, Any] = attrs.field(factory=dict)
    dropped_starts: int = 0
    late_starts: int | None = None
    validity: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    interrupted: bool = False
    ended: bool = False
    aborted: dict[str, Any] | None = None
    """The ``run_abort`` line (without ``kind``): an ``:abort`` threshold stopped the run."""
    target: dict[str, Any] | None = None
    """The ``target`` line (without ``kind``): the embedded target's ``validity`` and
    ``figures``; ``None`` when the run had none (``--url``, or an older results file)."""


def read_run_meta(path: str | os.PathLike[str]) -> RunMeta:
    """Read the ``run`` / ``start_dropped`` / ``run_abort`` / ``run_end`` / ``target``
    lines of a results file.

    Lines that are not JSON (a line cut off by a crash) and other kinds are skipped; the
    metrics records are read by :func:`orchestrator.metrics.read_results`.
    Raises ``OSError`` when the file cannot be read.
    """
    run: dict[str, Any] = {}
    config: dict[str, Any] = {}
    dropped = 0
    end: dict[str, Any] | None = None
    aborted: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    with open(path, "rb") as fp:
        for line in fp:
            if not any(key in line for key in _RUN_LEVEL_KEYS):
                continue  # fast path: metrics records
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            kind = data.get("kind")
            if kind == "run":
                run = dict(data.get("run") or {})
                config = dict(data.get("config") or {})
            elif kind == "start_dropped":
                dropped += 1
            elif kind == "run_end":
                end = data
            elif kind == "run_abort" and aborted is None:
                aborted = {k: v for k, v in data.items() if k != "kind"}
            elif kind == "target":
                target = {k: v for k, v in data.items() if k != "kind"}
    if end is None:
        return RunMeta(
            run=run, config=config, dropped_starts=dropped, aborted=aborted, target=target
        )
    return RunMeta(
        run=run,
        config=config,
        dropped_starts=int(end.get("dropped_starts", dropped)),
        late_starts=int(end.get("late_starts", 0)),
        validity=end.get("validity"),
        monitor=end.get("monitor"),
        interrupted=bool(end.get("interrupted", False)),
        ended=True,
        aborted=aborted,
        target=target,
    )
