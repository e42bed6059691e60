"""The results of a regression suite (``orchestrator test``), from a run's records (pure).

A suite runs each scenario a number of times (its *runs*); every run is one logical
session of the run, recognised by the scenario its records name (``SessionResult.scenario``,
else its ``label``: both are the scenario's name). :func:`suite_outcomes` groups the
session and turn records of one or more runs into one :class:`ScenarioOutcome` per
scenario:

* a run's index is its place among the scenario's sessions in session order (session
  ids are numbered in start order); a session restarted by the supervisor is one run,
  judged by its last attempt;
* a run *passed* when its session completed; it *failed* when the session failed with
  the expectation type (``ScenarioFailed``: an ``expect_*`` or budget that did not hold,
  no greeting), with the failure's text (expected vs actual, as the driver wrote it); it
  is an *error* when the session failed otherwise (connection refused, server error,
  timeout); *skipped* when it was cancelled (the run was stopped) or never started
  (fewer sessions than planned runs);
* a scenario passes when its pass rate (passed / planned runs) is at least the
  ``min_pass_rate`` (1.0: every run must pass; lower for real models, flaky by nature);
* the p95 of the main latencies (:data:`SUITE_METRICS`) over the scenario's turns.

:func:`suite_table` renders the terminal table and the failure lines under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from orchestrator.metrics.records import SessionResult, TurnRecord
from orchestrator.metrics.stats import percentile
from orchestrator.metrics.text import fmt_number, format_table, truncate

__all__ = [
    "SUITE_METRICS",
    "RunOutcome",
    "ScenarioOutcome",
    "SuiteScenario",
    "suite_outcomes",
    "suite_passed",
    "suite_table",
]

#: Metrics whose p95 the suite reports per scenario (DESIGN.md's latency names).
SUITE_METRICS: tuple[str, ...] = ("voice_to_voice_ms", "ttfb_ms")
#: Failure lines shown per scenario under the table (the rest are counted).
FAILURES_SHOWN = 3
#: Longest failure text in a line under the table (the JUnit file has it in full).
FAILURE_WIDTH = 300

Verdict = Literal["passed", "failed", "error", "skipped"]


@attrs.frozen(kw_only=True)
class SuiteScenario:
    """One scenario of a suite: its ``name`` (the records' scenario) and ``file``."""

    name: str
    file: str


@attrs.frozen(kw_only=True)
class RunOutcome:
    """One run of one scenario. ``index``: 0-based among the scenario's runs;
    ``verdict``: see the module docstring; ``failure_type`` / ``message``: why it did not
    pass (``None`` when it passed); ``session_id``: its session (``None``: never started);
    ``duration_s``: planned start to end (``None``: never started)."""

    scenario: str
    index: int
    verdict: Verdict
    session_id: str | None = None
    failure_type: str | None = None
    message: str | None = None
    duration_s: float | None = None

    @property
    def passed(self) -> bool:
        """Whether the run passed."""
        return self.verdict == "passed"


@attrs.frozen(kw_only=True)
class ScenarioOutcome:
    """Every run of one scenario and the p95 of :data:`SUITE_METRICS` over its turns
    (``None``: not measured)."""

    scenario: SuiteScenario
    runs: tuple[RunOutcome, ...]
    p95: dict[str, float | None] = attrs.field(hash=False)

    @property
    def passed(self) -> int:
        """How many runs passed."""
        return sum(run.passed for run in self.runs)

    @property
    def pass_rate(self) -> float | None:
        """Passed runs / runs (``None`` without runs)."""
        return self.passed / len(self.runs) if self.runs else None

    def ok(self, min_pass_rate: float = 1.0) -> bool:
        """Whether the scenario passes: at least one run, and a pass rate of at least
        ``min_pass_rate``."""
        rate = self.pass_rate
        return rate is not None and rate >= min_pass_rate


def _run_of(result: SessionResult, scenario: str, index: int, expectation_type: str) -> RunOutcome:
    duration = max(result.t_end_s - result.planned_start_s, 0.0)
    if result.status == "completed":
        return RunOutcome(
            scenario=scenario,
            index=index,
            verdict="passed",
            session_id=result.session_id,
            duration_s=duration,
        )
    failure_type = result.failure.type if result.failure is not None else None
    message = result.failure.message if result.failure is not None else result.reason
    verdict: Verdict
    if result.status == "cancelled":
        verdict, failure_type = "skipped", failure_type or "cancelled"
        message = message or "the session was cancelled (the run was stopped)"
    else:
        verdict = "failed" if failure_type == expectation_type else "error"
    return RunOutcome(
        scenario=scenario,
        index=index,
        verdict=verdict,
        session_id=result.session_id,
        failure_type=failure_type or "(no reason)",
        message=message or "(no reason recorded)",
        duration_s=duration,
    )


def _session_order(session_id: str) -> tuple[int, str]:
    """Sort key: session ids in numeric order (``s000010`` after ``s000009``)."""
    return len(session_id), session_id


def suite_outcomes(
    scenarios: Sequence[SuiteScenario],
    repeat: int,
    turns: Iterable[TurnRecord],
    sessions: Iterable[SessionResult],
    *,
    expectation_type: str = "ScenarioFailed",
) -> list[ScenarioOutcome]:
    """One :class:`ScenarioOutcome` per entry of ``scenarios`` (in that order) from the
    records of the run(s) that played them ``repeat`` times each. Sessions of scenarios
    not in ``scenarios`` are ignored; a scenario with fewer sessions than ``repeat`` gets
    ``skipped`` runs for the missing ones ("never started")."""
    wanted = {s.name for s in scenarios}
    last: dict[str, tuple[str, SessionResult]] = {}  # session id -> scenario, last attempt
    for result in sessions:
        name = result.scenario or result.label
        if name is None or name not in wanted:
            continue
        seen = last.get(result.session_id)
        if seen is None or result.attempt >= seen[1].attempt:
            last[result.session_id] = (name, result)
    by_scenario: dict[str, list[SessionResult]] = {name: [] for name in wanted}
    for name, result in last.values():
        by_scenario[name].append(result)
    values: dict[str, dict[str, list[float | None]]] = {
        name: {m: [] for m in SUITE_METRICS} for name in wanted
    }
    owner = {sid: name for sid, (name, _) in last.items()}
    for turn in turns:
        name = owner.get(turn.session_id)
        if name is None:
            continue
        for metric in SUITE_METRICS:
            values[name][metric].append(getattr(turn, metric))
    outcomes = []
    for scenario in scenarios:
        results = sorted(by_scenario[scenario.name], key=lambda r: _session_order(r.session_id))
        runs = [
            _run_of(r, scenario.name, i, expectation_type) for i, r in enumerate(results)
        ]
        runs += [
            RunOutcome(
                scenario=scenario.name,
                index=i,
                verdict="skipped",
                failure_type="not run",
                message="this run never started (the run ended first)",
            )
            for i in range(len(runs), repeat)
        ]
        p95 = {m: percentile(values[scenario.name][m], 95) for m in SUITE_METRICS}
        outcomes.append(ScenarioOutcome(scenario=scenario, runs=tuple(runs), p95=p95))
    return outcomes


def suite_passed(outcomes: Sequence[ScenarioOutcome], min_pass_rate: float = 1.0) -> bool:
    """Whether every scenario passes (:meth:`ScenarioOutcome.ok`)."""
    return all(o.ok(min_pass_rate) for o in outcomes)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def suite_table(outcomes: Sequence[ScenarioOutcome], min_pass_rate: float = 1.0) -> str:
    """The suite's table (scenario, runs, passed, pass rate, verdict, p95 of
    :data:`SUITE_METRICS`), then each failed run (up to :data:`FAILURES_SHOWN` per
    scenario): ``name #N (session): Type: what was expected and what happened``."""
    headers = ["scenario", "runs", "passed", "pass rate", "result"]
    headers += [f"{m.removesuffix('_ms')} p95 ms" for m in SUITE_METRICS]
    rows = [
        [
            o.scenario.name,
            str(len(o.runs)),
            str(o.passed),
            _percent(o.pass_rate),
            "PASS" if o.ok(min_pass_rate) else "FAIL",
            *(fmt_number(o.p95[m], 0) for m in SUITE_METRICS),
        ]
        for o in outcomes
    ]
    out = [format_table(headers, rows)]
    lines: list[str] = []
    for o in outcomes:
        failed = [run for run in o.runs if not run.passed]
        for run in failed[:FAILURES_SHOWN]:
            where = f" ({run.session_id})" if run.session_id else ""
            text = truncate(f"{run.failure_type}: {run.message}", FAILURE_WIDTH)
            lines.append(f"  {o.scenario.name} #{run.index + 1}{where}: {text}")
        if len(failed) > FAILURES_SHOWN:
            lines.append(f"  {o.scenario.name}: {len(failed) - FAILURES_SHOWN} more failed runs")
    if lines:
        out.append("failed runs:\n" + "\n".join(lines) + "\n")
    total = sum(len(o.runs) for o in outcomes)
    passed = sum(o.passed for o in outcomes)
    ok = sum(o.ok(min_pass_rate) for o in outcomes)
    need = "" if min_pass_rate >= 1.0 else f" (pass rate >= {_percent(min_pass_rate)})"
    out.append(
        f"{ok} of {len(outcomes)} scenarios passed{need}; {passed} of {total} runs passed\n"
    )
    return "".join(out)
