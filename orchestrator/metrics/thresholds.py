"""k6-style pass/fail thresholds: ``'voice_to_voice_ms.p95<800'``, ``'sessions_failed==0'``.

Grammar: ``METRIC[{SELECTOR}][.STAT] OP NUMBER``.

- ``METRIC``: a distribution metric (:data:`~orchestrator.metrics.names.DISTRIBUTION_METRICS`,
  needs a ``STAT``) or a scalar (:data:`~orchestrator.metrics.names.SCALAR_METRICS`, no
  ``STAT``).
- ``STAT``: ``avg``/``mean``, ``min``, ``max``, ``count``, ``med`` (= p50), ``pNN`` or
  ``pNN.N`` (any percentile 0..100; k6's ``p(95)`` spelling is accepted too).
- ``SELECTOR`` (k6's tag filter): ``key:value`` pairs, comma-separated, all of which a
  record must carry to count: ``scenario:NAME`` (the session's scenario), ``label:NAME``
  (the turn's label; a session matches when one of its turns has it) or any user tag
  (``env:staging``). ``ttfb_ms{scenario:checkout,label:question}.p95<800``. Totals
  counted from records take one too (:data:`SCOPED_SCALARS`); ``late_starts``,
  ``dropped_starts`` and ``cost_usd`` (:data:`UNSCOPED_SCALARS`) do not. A selector
  that matches no record at all fails its threshold (``note`` says so): k6 leaves a
  threshold without data unjudged, which in CI would let a typo pass.
- ``OP``: ``<  <=  >  >=  ==  !=``.
- an optional ``:abort`` suffix (k6's ``abortOnFail``): the threshold is also judged
  during the run, on rolling windows, and a failure stops the run
  (:mod:`orchestrator.supervisor.live_thresholds`); ``Threshold.abort`` says so.

A threshold on a metric without samples fails (``actual`` is ``None``), except ``count``,
which is 0. Percentiles are linear-interpolation percentiles, as in ``summarize``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from orchestrator.metrics.names import DISTRIBUTION_METRICS, SCALAR_METRICS
from orchestrator.metrics.stats import clean_values, percentile

__all__ = [
    "SCOPED_SCALARS",
    "SELECTOR_FIELDS",
    "TAG_NAME",
    "UNSCOPED_SCALARS",
    "Threshold",
    "ThresholdError",
    "ThresholdResult",
    "check_tags",
    "evaluate",
    "evaluate_summary",
    "format_selector",
    "matches",
    "parse_tag",
    "parse_threshold",
    "parse_thresholds",
    "threshold_result",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_SPLIT = re.compile(r"^\s*(?P<lhs>[^<>=!]*?)\s*(?P<op>[<>=!]+)\s*(?P<rhs>.*?)\s*$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PCT = re.compile(r"^p\(?(?P<q>\d+(?:\.\d+)?)\)?$")
_LHS = re.compile(r"^(?P<metric>[^{}.]*)(?:\{(?P<selector>[^{}]*)\})?(?P<rest>.*)$")
#: What a tag name (a selector key, a scenario's ``tags`` key, ``--tag NAME=...``) may be.
TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def check_tags(tags: Mapping[str, str], where: str) -> dict[str, str]:
    """``tags`` as a plain dict; raises ``ValueError`` naming ``where`` and the tag when a
    name is not a :data:`TAG_NAME`, is ``scenario`` or ``label`` (:data:`SELECTOR_FIELDS`:
    no selector could reach such a tag) or a value is not a non-empty string."""
    out = dict(tags)
    for key, value in out.items():
        if not (isinstance(key, str) and TAG_NAME.match(key)):
            raise ValueError(
                f"{where}: bad tag name {key!r} (a letter or _, then letters, digits, _ . -)"
            )
        if key in SELECTOR_FIELDS:
            raise ValueError(
                f"{where}: tag name {key!r} is reserved: a {{{key}:...}} selector matches the "
                f"record's own {key}, never a user tag; choose another name"
            )
        if not (isinstance(value, str) and value.strip()):
            raise ValueError(f"{where}: tag {key!r} needs a non-empty string value, got {value!r}")
    return out


def parse_tag(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (a ``--tag`` argument) as ``(name, value)``; raises ``ValueError``
    naming the argument when the ``=`` is missing, the name is not a :data:`TAG_NAME` or
    the value is empty."""
    name, eq, value = text.partition("=")
    if not eq:
        raise ValueError(f"--tag {text!r}: expected NAME=VALUE, e.g. env=staging")
    (pair,) = check_tags({name.strip(): value.strip()}, f"--tag {text!r}").items()
    return pair


#: Selector keys that are not user tags.
SELECTOR_FIELDS: tuple[str, ...] = ("scenario", "label")
#: Run totals that are not counted from tagged records (the supervisor's start counts,
#: the price of the run's tokens): a ``{key:value}`` selector cannot scope them.
UNSCOPED_SCALARS: tuple[str, ...] = ("late_starts", "dropped_starts", "cost_usd")
#: Run totals a selector can scope (counted from the records it matches).
SCOPED_SCALARS: tuple[str, ...] = tuple(m for m in SCALAR_METRICS if m not in UNSCOPED_SCALARS)
_STAT_ALIASES = {"avg": "mean", "mean": "mean", "min": "min", "max": "max", "count": "count"}


class ThresholdError(ValueError):
    """A threshold expression that cannot be parsed or evaluated; names the expression."""


@attrs.frozen(kw_only=True)
class Threshold:
    """A parsed threshold. ``stat`` is ``None`` for scalar metrics; ``q`` is the percentile
    (0..100) when ``stat`` is ``"pNN"``; ``mean`` is the canonical name of ``avg``;
    ``selector`` the ``(key, value)`` pairs of ``{key:value,...}`` (empty: every record)."""

    expr: str
    metric: str
    stat: str | None
    q: float | None
    op: str
    target: float
    selector: tuple[tuple[str, str], ...] = ()
    abort: bool = False
    """``:abort`` was given: judged live too, and a live failure aborts the run."""

    def passes(self, actual: float | None) -> bool:
        """Whether ``actual`` satisfies the threshold (``None`` = no data = fails)."""
        return actual is not None and _OPS[self.op](actual, self.target)


@attrs.frozen(kw_only=True)
class ThresholdResult:
    """The outcome of one threshold: ``actual`` is the measured value (``None`` if the
    metric had no samples), ``ok`` whether it passed; ``note`` explains a ``None``."""

    expr: str
    metric: str
    stat: str | None
    op: str
    target: float
    actual: float | None
    ok: bool
    note: str | None = None
    selector: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for ``summary.json``)."""
        return attrs.asdict(self)


def _parse_stat(expr: str, metric: str, raw: str) -> tuple[str, float | None]:
    name = raw.strip().lower()
    if name in _STAT_ALIASES:
        return _STAT_ALIASES[name], None
    if name == "med":
        return "p50", 50.0
    m = _PCT.match(name)
    if m:
        q = float(m["q"])
        if q > 100.0:
            raise ThresholdError(f"threshold {expr!r}: percentile {raw!r} is above 100")
        return f"p{m['q']}", q
    raise ThresholdError(
        f"threshold {expr!r}: unknown stat {raw!r} for {metric!r} "
        "(use avg, mean, min, max, count, med, pNN or pNN.N)"
    )


def _parse_selector(expr: str, raw: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for part in raw.split(","):
        key, colon, value = part.partition(":")
        key, value = key.strip(), value.strip().strip("'\"")
        if not colon or not TAG_NAME.match(key) or not value:
            raise ThresholdError(
                f"threshold {expr!r}: bad selector item {part.strip()!r} in {{{raw}}} "
                "(write {key:value,...}, e.g. {label:question} or {scenario:checkout})"
            )
        if any(k == key for k, _ in pairs):
            raise ThresholdError(f"threshold {expr!r}: selector key {key!r} given twice")
        pairs.append((key, value))
    return tuple(pairs)


def matches(
    selector: Iterable[tuple[str, str]],
    *,
    scenario: str | None,
    label: str | None,
    tags: Mapping[str, str] | None,
) -> bool:
    """Whether a record with this ``scenario``, turn ``label`` and user ``tags`` carries
    every ``(key, value)`` of ``selector`` (``label`` None: the label is not checked,
    the caller decides for records without one)."""
    for key, value in selector:
        if key == "scenario":
            if scenario != value:
                return False
        elif key == "label":
            if label is not None and label != value:
                return False
        elif (tags or {}).get(key) != value:
            return False
    return True


def format_selector(selector: Iterable[tuple[str, str]]) -> str:
    """``{key:value,...}`` as written in a threshold."""
    return "{" + ",".join(f"{k}:{v}" for k, v in selector) + "}"


def parse_threshold(expr: str) -> Threshold:
    """Parse one expression; raises :class:`ThresholdError` saying what is wrong."""
    if not isinstance(expr, str) or not expr.strip():
        raise ThresholdError(f"threshold {expr!r}: empty expression")
    body, colon, option = expr.rpartition(":")
    if "}" in option:  # the colon was a selector's, not an option's
        body, colon, option = expr, "", ""
    if colon and option.strip() != "abort":
        raise ThresholdError(
            f"threshold {expr!r}: unknown option {option.strip()!r} (only ':abort')"
        )
    abort = bool(colon)
    m = _SPLIT.match(body if abort else expr)
    if m is None:
        raise ThresholdError(f"threshold {expr!r}: expected METRIC[.STAT] OP NUMBER")
    lhs, op, rhs = m["lhs"], m["op"], m["rhs"]
    if op not in _OPS:
        raise ThresholdError(
            f"threshold {expr!r}: bad operator {op!r} (use one of {' '.join(_OPS)})"
        )
    if not lhs:
        raise ThresholdError(f"threshold {expr!r}: missing metric before {op!r}")
    parts = _LHS.match(lhs)
    if parts is not None and "{" in parts["rest"]:
        raise ThresholdError(
            f"threshold {expr!r}: the {{key:value}} selector goes right after the metric "
            "name, before the stat (e.g. 'ttfb_ms{label:question}.p95<800')"
        )
    if parts is None or (parts["rest"] and not parts["rest"].startswith(".")):
        raise ThresholdError(
            f"threshold {expr!r}: expected METRIC[{{key:value}}][.STAT] before {op!r}"
        )
    selector = () if parts["selector"] is None else _parse_selector(expr, parts["selector"])
    metric, dot, raw_stat = parts["metric"], parts["rest"][:1], parts["rest"][1:]
    metric = metric.strip()
    if not _METRIC.match(metric) or (
        metric not in DISTRIBUTION_METRICS and metric not in SCALAR_METRICS
    ):
        known = ", ".join((*DISTRIBUTION_METRICS, *SCALAR_METRICS))
        raise ThresholdError(f"threshold {expr!r}: unknown metric {metric!r} (known: {known})")
    stat: str | None = None
    q: float | None = None
    if metric in SCALAR_METRICS:
        if dot:
            raise ThresholdError(
                f"threshold {expr!r}: {metric!r} is a single number and takes no stat "
                f"(write e.g. '{metric}{op}{rhs}')"
            )
        if selector and metric in UNSCOPED_SCALARS:
            raise ThresholdError(
                f"threshold {expr!r}: {metric!r} is a total of the whole run and takes no "
                f"{{key:value}} selector (totals that do: {', '.join(SCOPED_SCALARS)})"
            )
    elif not dot:
        raise ThresholdError(
            f"threshold {expr!r}: {metric!r} is a distribution; name a stat, e.g. '{metric}.p95'"
        )
    else:
        stat, q = _parse_stat(expr, metric, raw_stat)
    try:
        target = float(rhs)
    except ValueError:
        raise ThresholdError(f"threshold {expr!r}: bad number {rhs!r}") from None
    if not math.isfinite(target):
        raise ThresholdError(f"threshold {expr!r}: bad number {rhs!r} (must be finite)")
    return Threshold(
        expr=expr.strip(),
        metric=metric,
        stat=stat,
        q=q,
        op=op,
        target=target,
        selector=selector,
        abort=abort,
    )


def parse_thresholds(exprs: Iterable[str | Threshold]) -> list[Threshold]:
    """Parse many expressions (already-parsed :class:`Threshold` objects pass through)."""
    return [e if isinstance(e, Threshold) else parse_threshold(e) for e in exprs]


_NOT_MEASURED = "not measured"


def threshold_result(
    t: Threshold, actual: float | None, note: str = "no samples", *, missing_ok: bool = False
) -> ThresholdResult:
    """``t`` judged on ``actual``; None (nothing to judge) fails unless ``missing_ok``
    (live judging: no data yet is no failure), with ``note`` saying why."""
    return ThresholdResult(
        expr=t.expr,
        metric=t.metric,
        stat=t.stat,
        op=t.op,
        target=t.target,
        actual=actual,
        ok=(missing_ok and actual is None) or t.passes(actual),
        note=note if actual is None else None,
        selector=dict(t.selector) or None,
    )


def _stat_of(values: np.ndarray, t: Threshold) -> float | None:
    if t.stat == "count":
        return float(values.size)
    if values.size == 0:
        return None
    if t.q is not None:
        return percentile(values, t.q)
    if t.stat == "mean":
        return float(values.mean())
    return float(values.min() if t.stat == "min" else values.max())


Samples = Mapping[str, Iterable[float | None] | np.ndarray]
#: The samples and scalars of the records a selector matches (None: it matches none).
Scoped = Callable[[tuple[tuple[str, str], ...]], tuple[Samples, Mapping[str, float | None]] | None]


def evaluate(
    thresholds: Iterable[str | Threshold],
    *,
    samples: Samples,
    scalars: Mapping[str, float | None],
    scoped: Scoped | None = None,
) -> list[ThresholdResult]:
    """Evaluate thresholds on raw samples (exact, any percentile) and run scalars.

    ``samples`` maps distribution metric names to their values (missing = no samples);
    ``scalars`` maps :data:`SCALAR_METRICS` names to values (missing/``None`` = fails).
    ``scoped(selector)`` gives both for the records a threshold's selector matches (None
    when it matches none: that threshold fails); without it a threshold with a selector
    raises :class:`ThresholdError`.
    """
    results = []
    for t in parse_thresholds(thresholds):
        if t.selector:
            if scoped is None:
                raise ThresholdError(
                    f"threshold {t.expr!r}: a {{key:value}} selector needs the run's records"
                )
            found = scoped(t.selector)
            if found is None:
                results.append(
                    threshold_result(
                        t,
                        None,
                        f"no record matches {format_selector(t.selector)} (selector keys: "
                        "scenario, label or a user tag)",
                    )
                )
                continue
            results.extend(
                evaluate([attrs.evolve(t, selector=())], samples=found[0], scalars=found[1])
            )
            results[-1] = attrs.evolve(results[-1], selector=dict(t.selector))
            continue
        if t.stat is None:
            results.append(
                threshold_result(t, _float_or_none(scalars.get(t.metric)), _NOT_MEASURED)
            )
            continue
        raw = samples.get(t.metric, ())
        values = raw if isinstance(raw, np.ndarray) else clean_values(raw)
        results.append(threshold_result(t, _stat_of(values, t)))
    return results


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def evaluate_summary(
    thresholds: Iterable[str | Threshold], summary: Mapping[str, Any]
) -> list[ThresholdResult]:
    """Evaluate thresholds against a stored ``summary.json`` dict (``summary["metrics"]``,
    ``summary["totals"]``). Only the stats a summary keeps are available (count, mean,
    min, max, p50, p90, p95, p99); other percentiles raise :class:`ThresholdError`. A
    selector of one ``scenario`` or one ``label`` on a distribution metric reads
    ``summary["breakdown"]``; other selectors raise :class:`ThresholdError` (evaluate them
    on the results file)."""
    totals = summary.get("totals", {})
    results = []
    for t in parse_thresholds(thresholds):
        metrics = summary.get("metrics", {})
        if t.selector:
            (key, value), *more = t.selector
            if more or key not in SELECTOR_FIELDS or t.stat is None:
                raise ThresholdError(
                    f"threshold {t.expr!r}: a stored summary breaks distributions down by "
                    "one scenario or one label only; evaluate it on the results file"
                )
            group = summary.get("breakdown", {}).get(key, {}).get(value)
            if group is None:
                results.append(
                    threshold_result(t, None, f"no record matches {format_selector(t.selector)}")
                )
                continue
            metrics = group.get("metrics", {})
        if t.stat is None:
            results.append(threshold_result(t, _float_or_none(totals.get(t.metric)), _NOT_MEASURED))
            continue
        stats = metrics.get(t.metric) or {"count": 0}
        key = t.stat if t.q is None else f"p{t.q:g}"
        if key not in ("count", "mean", "min", "max", "p50", "p90", "p95", "p99"):
            raise ThresholdError(
                f"threshold {t.expr!r}: a stored summary has no {t.stat!r}; "
                "use p50/p90/p95/p99 or evaluate on the results file"
            )
        if key == "count":
            results.append(threshold_result(t, float(stats.get("count") or 0)))
        else:
            results.append(threshold_result(t, _float_or_none(stats.get(key))))
    return results
