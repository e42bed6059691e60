"""The files of a run directory, built from its ``results.jsonl``.

``results.jsonl`` is the source of truth (written line by line by :class:`~.sink.JsonlSink`
while the run goes). :func:`write_outputs` derives the rest from it, the same way for a
run that just ended and for ``orchestrator report DIR`` later:

* ``summary.json`` — :func:`orchestrator.metrics.build_summary` of the records, with the
  run info and config of the file's ``run`` line, late/dropped start counts and validity
  of its ``run_end`` line, merged with the embedded target's verdict of its ``target``
  line (whose figures are the summary's ``run.target``);
* ``summary.csv`` — :func:`orchestrator.metrics.summary_csv`;
* ``report.html`` — :func:`orchestrator.metrics.render_report` (self-contained, offline).

Files are written to a temporary name and renamed, so a reader never sees half a summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from orchestrator.metrics import (
    ResultsFile,
    Threshold,
    build_summary,
    read_results,
    render_report,
    summary_csv,
)
from orchestrator.metrics.prices import PriceTable
from orchestrator.supervisor.sink import RunMeta, read_run_meta
from orchestrator.supervisor.validity import merge_validity

__all__ = [
    "RESULTS_FILE",
    "REPORT_FILE",
    "SUMMARY_CSV",
    "SUMMARY_FILE",
    "RunOutputs",
    "count_late_starts",
    "load_summary",
    "write_outputs",
]

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_CSV = "summary.csv"
REPORT_FILE = "report.html"

#: A start later than this (ms after its planned time) counts as late unless the run's
#: config says otherwise (``late_after_ms``).
DEFAULT_LATE_AFTER_MS = 50.0


class RunOutputs:
    """What :func:`write_outputs` produced: the summary dict, the records and the meta."""

    def __init__(self, summary: dict[str, Any], results: ResultsFile, meta: RunMeta) -> None:
        self.summary = summary
        self.results = results
        self.meta = meta


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(tmp, path)


def count_late_starts(results: ResultsFile, late_after_ms: float) -> int:
    """First attempts of sessions that started more than ``late_after_ms`` after plan."""
    return sum(
        1
        for s in results.sessions
        if s.attempt == 0 and s.late_start_ms is not None and s.late_start_ms > late_after_ms
    )


def write_outputs(
    out_dir: str | os.PathLike[str],
    *,
    thresholds: Iterable[str | Threshold] | None = None,
    prices: PriceTable | None = None,
) -> RunOutputs:
    """Read ``out_dir/results.jsonl`` and (re)write ``summary.json``, ``summary.csv`` and
    ``report.html`` next to it.

    ``thresholds``: expressions to evaluate (``None``: the ones stored in the run config,
    if any); ``prices`` is the price table of the cost estimate (``None``: the built-in
    one). Everything else comes from the file, so a rebuild (``orchestrator report``)
    gives the summary the run gave: validity is ``run_end``'s merged with the ``target``
    line's (see :mod:`.sink`), ``run.target`` that line's figures. Raises ``OSError`` if
    the results file cannot be read, ``ResultsFormatError`` for a corrupt line (a cut-off
    last line is tolerated and noted as ``run.truncated``), ``ThresholdError`` for a bad
    expression.
    """
    out = Path(out_dir)
    results_path = out / RESULTS_FILE
    results = read_results(results_path)
    meta = read_run_meta(results_path)
    config = dict(meta.config)
    if thresholds is None:
        thresholds = list(config.get("thresholds") or ())
    thresholds = list(thresholds)
    run = dict(meta.run)
    validity = meta.validity
    if meta.target is not None:
        if meta.target.get("figures") is not None:
            run["target"] = meta.target["figures"]
        validity = merge_validity(validity, meta.target.get("validity"))
    if results.truncated:
        run["truncated"] = True
    if not meta.ended:
        run.setdefault("ended", "no run_end line: the run crashed or is still running")
    if meta.interrupted:
        run["interrupted"] = True
    if meta.aborted is not None:
        run["aborted"] = meta.aborted
    late = meta.late_starts
    if late is None:
        late = count_late_starts(results, float(config.get("late_after_ms", DEFAULT_LATE_AFTER_MS)))
    summary = build_summary(
        results.turns,
        results.sessions,
        run=run,
        config=config,
        model=config.get("model"),
        late_starts=late,
        dropped_starts=meta.dropped_starts,
        held_starts=(meta.monitor or {}).get("held_starts"),
        validity=validity,
        thresholds=thresholds,
        prices=prices,
    )
    _atomic_write(out / SUMMARY_FILE, orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    _atomic_write(out / SUMMARY_CSV, summary_csv(summary).encode())
    html = render_report(summary, results.turns, results.sessions, results.snapshots)
    _atomic_write(out / REPORT_FILE, html.encode())
    return RunOutputs(summary, results, meta)


def load_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``summary.json`` of a run directory; when it is missing, it is rebuilt from
    ``results.jsonl`` (and written). Raises ``FileNotFoundError`` naming the directory when
    neither file exists, ``ValueError`` naming the file when the summary is not JSON."""
    path = Path(run_dir)
    summary_path = path / SUMMARY_FILE
    if summary_path.is_file():
        try:
            data = orjson.loads(summary_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{summary_path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{summary_path}: expected a JSON object")
        return data
    if not (path / RESULTS_FILE).is_file():
        raise FileNotFoundError(f"{path}: no {SUMMARY_FILE} or {RESULTS_FILE} in this directory")
    return write_outputs(path).summary
