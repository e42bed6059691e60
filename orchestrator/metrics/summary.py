"""``summary.json`` of a run: counts, per-metric stats, tokens and cost, validity, thresholds.

Layout of the dict returned by :func:`build_summary` (JSON-ready, stable key order)::

    schema        1
    run           run info from the caller (redacted), plus computed ``duration_s``
    config        the run config, passed through :func:`redact_config`
    totals        flat scalars (names.SCALAR_METRICS): sessions_total/_completed/_failed/
                  _cancelled (sessions counted once: a session restarted by the supervisor
                  has a record per attempt, its last attempt says how it ended),
                  session_error_rate = failed / all sessions, turns_total,
                  turns_failed, turn_error_rate = failed turns / all turns (a turn fails
                  when its status is "failed", it has an error record or a "failed"
                  response; see ``TurnRecord.failed``), late_starts,
                  dropped_starts, reconnects, cost_usd
    connections   attempts (connections tried, reconnect attempts included),
                  connect_failed (attempts that failed before the websocket handshake:
                  TCP or TLS; None or absent for older results), refused
                  (handshakes refused with an HTTP status), refused_by_status
                  (``{"429": n}``), reconnects, restarts (supervisor restarts: session
                  records after a session's first)
    sessions      by_status, failure_types (``failure.type`` -> count), failure_reasons
                  (full reason -> count, most common 20), gap_ms_total
    turns         by_mode, by_status (turn status -> count; "(unknown)" for records
                  without one), by_response_status, by_error_code, failure_reasons (failed
                  turns: reason -> count, most common 20; the turn's reason, else its
                  response's status_reason, else its first error code, else "(no reason)")
    failure_groups [{scope: "session"|"turn", type, code, template, count, example,
                  distinct}], largest first (at most 50): failures of the same type and
                  code whose texts differ only in ids, numbers and quoted text
                  (:func:`~orchestrator.metrics.failure.failure_template`); ``example``
                  is the first one's full text (every text stays in the records),
                  ``distinct`` how many different texts the group holds
    metrics       {metric: {count, mean, min, p50, p90, p95, p99, max}} for every
                  names.DISTRIBUTION_METRICS entry (count 0 and nulls when unmeasured)
    breakdown     {"scenario": {NAME: {sessions, completed, failed, metrics}},
                   "label": {LABEL: {turns, failed, metrics}}}: the same per scenario
                  (sessions counted once) and per turn label ("(none)" for records
                  without one), ``metrics`` holding only the metrics with samples
    tokens        usage totals (USAGE_FIELDS)
    cost          {model, usd, note, prices_per_1m, prices_source}
    validity      {valid, reasons}: from the supervisor's self-monitoring
    thresholds    [{expr, metric, stat, op, target, actual, ok, note}]
    thresholds_ok all thresholds passed (true when there are none)

Prices are data (:mod:`orchestrator.metrics.prices`: the built-in ``prices.toml``, USD
per 1M tokens from OpenAI's public model pages, overridable with ``run --prices FILE``):
an estimate for comparison, not a bill. A model name matches its entry exactly or with a
dated snapshot suffix (``gpt-realtime-2025-08-28``); a model the table cannot price gets
``usd: null`` and a note saying why.
"""

from __future__ import annotations

import collections
import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from orchestrator.metrics.failure import group_failures, turn_failure_kind
from orchestrator.metrics.names import DISTRIBUTION_METRICS, SESSION_METRICS, TURN_METRICS
from orchestrator.metrics.prices import ModelPrice, PriceTable, builtin_prices
from orchestrator.metrics.records import USAGE_FIELDS, SessionResult, TurnRecord
from orchestrator.metrics.stats import clean_values, summarize
from orchestrator.metrics.thresholds import Threshold, evaluate, matches, parse_thresholds

__all__ = [
    "CSV_COLUMNS",
    "PRICES",
    "ModelPrice",
    "Validity",
    "build_summary",
    "estimate_cost",
    "last_attempts",
    "metric_samples",
    "price_for",
    "redact_config",
    "summary_csv",
    "token_totals",
]

SCHEMA = 1
#: How many distinct failure reasons (sessions, turns) the summary lists.
FAILURE_REASONS_TOP = 20
#: How many failure groups the summary lists per scope (sessions, turns).
FAILURE_GROUPS_TOP = 50
#: The key of records without a scenario or a turn label in ``breakdown``.
NO_NAME = "(none)"


#: The built-in prices (USD per 1M tokens) by model name (read from ``prices.toml``).
PRICES: Mapping[str, ModelPrice] = builtin_prices().prices

Prices = Mapping[str, ModelPrice] | PriceTable
"""A price table, or a plain mapping of model name to price."""


def _table(prices: Prices) -> PriceTable:
    return prices if isinstance(prices, PriceTable) else PriceTable(prices=prices)


def price_for(model: str | None, prices: Prices = PRICES) -> ModelPrice | None:
    """The price entry of ``model`` (exact name or name + ``-YYYY-MM-DD``), else ``None``."""
    return _table(prices).price_for(model)


def estimate_cost(
    tokens: Mapping[str, int], model: str | None, prices: Prices = PRICES
) -> tuple[float | None, str | None]:
    """``(usd, note)`` for usage totals ``tokens`` (keys = ``USAGE_FIELDS``).

    Cached input is billed at the cached rate and the rest of the input at the input
    rate. When usage reports cached tokens without their text/audio split, the cached
    tokens are split in proportion to text/audio input (noted). Without a text/audio split
    of input or output tokens the cost is unknown (``None``).
    """
    table = _table(prices)
    price = table.price_for(model)
    if price is None:
        return None, table.missing_reason(model)
    note = None
    t_in = tokens.get("input_text_tokens", 0)
    a_in = tokens.get("input_audio_tokens", 0)
    t_out = tokens.get("output_text_tokens", 0)
    a_out = tokens.get("output_audio_tokens", 0)
    if t_in + a_in < tokens.get("input_tokens", 0) or t_out + a_out < tokens.get(
        "output_tokens", 0
    ):
        return None, "usage lacks the text/audio token split; cost not estimated"
    cached = tokens.get("input_cached_tokens", 0)
    # float: cached tokens without a split are shared out in proportion below
    c_text: float = tokens.get("input_cached_text_tokens", 0)
    c_audio: float = tokens.get("input_cached_audio_tokens", 0)
    if cached > c_text + c_audio:
        rest = cached - c_text - c_audio
        share = t_in / (t_in + a_in) if t_in + a_in else 1.0
        c_text += rest * share
        c_audio += rest * (1.0 - share)
        note = "cached tokens without text/audio split were split in proportion to input"
    usd = (
        (t_in - c_text) * price.text_in
        + c_text * price.text_cached
        + t_out * price.text_out
        + (a_in - c_audio) * price.audio_in
        + c_audio * price.audio_cached
        + a_out * price.audio_out
    ) / 1e6
    return usd, note


_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "authorization",
        "auth",
        "token",
        "access_token",
        "auth_token",
        "bearer",
        "secret",
        "client_secret",
        "password",
        "cookie",
        "ocp_apim_subscription_key",
    }
)
_SECRET_SUFFIXES = ("_api_key", "_secret", "_token", "_password")
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+\S+)")
_URL_SECRET_PARAM = re.compile(
    r"([?&](?:api[-_]?key|key|token|access_token|auth|sig|signature)=)[^&#\s]*", re.I
)
REDACTED = "[redacted]"


def _is_secret_key(key: str) -> bool:
    norm = key.strip().lower().replace("-", "_")
    return norm in _SECRET_KEYS or norm.endswith(_SECRET_SUFFIXES)


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v) for k, v in value.items() if not _is_secret_key(str(k))}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return _URL_SECRET_PARAM.sub(r"\1" + REDACTED, _SECRET_VALUE.sub(REDACTED, text))


def redact_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-ready copy of ``config`` without secrets: keys such as ``api_key``,
    ``authorization``, ``token``, ``*_secret`` are dropped at any depth, ``sk-…`` and
    ``Bearer …`` strings and ``?api-key=``/``?token=`` URL parameters are replaced by
    ``[redacted]``; other objects become ``str(obj)`` (``transport.Secret`` hides itself)."""
    return _redact_value(config or {})


def _str_tuple(reasons: Iterable[str]) -> tuple[str, ...]:
    return tuple(reasons)


@attrs.frozen(kw_only=True)
class Validity:
    """Whether the load generator itself kept up (event-loop lag, pacer lateness, ...).
    Reported by the supervisor's self-monitoring; a run is valid when ``reasons`` is empty
    unless ``valid`` says otherwise."""

    valid: bool = True
    reasons: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def to_dict(self) -> dict[str, Any]:
        """``{"valid": bool, "reasons": [...]}``."""
        return {"valid": self.valid and not self.reasons, "reasons": list(self.reasons)}


def metric_samples(
    turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]
) -> dict[str, np.ndarray]:
    """Every distribution metric's samples (``names.DISTRIBUTION_METRICS`` order).

    Session metrics come from the sessions; turn metrics from the turns.
    ``tool_roundtrip_ms`` takes each listed tool call's own round trip (the turn's
    ``tool_roundtrip_ms`` when it lists no calls); ``mcp_call_ms`` likewise takes each
    listed MCP call's ``duration_ms`` (the record's field is the turn's longest call;
    it is the sample only when no listed call has a duration)."""
    out: dict[str, np.ndarray] = {}
    for name in DISTRIBUTION_METRICS:
        if name in SESSION_METRICS:
            out[name] = clean_values(getattr(s, name) for s in sessions)
        elif name == "tool_roundtrip_ms":
            out[name] = clean_values(
                v
                for t in turns
                for v in (
                    [c.roundtrip_ms for c in t.tool_calls]
                    if t.tool_calls
                    else [t.tool_roundtrip_ms]
                )
            )
        elif name == "mcp_call_ms":
            out[name] = clean_values(v for t in turns for v in _mcp_durations(t))
        else:
            assert name in TURN_METRICS
            out[name] = clean_values(getattr(t, name) for t in turns)
    return out


def _mcp_durations(turn: TurnRecord) -> list[float | None]:
    """Each MCP call's duration in ``turn`` (the turn's ``mcp_call_ms`` without any)."""
    durations = [c.duration_ms for c in turn.mcp_calls if c.duration_ms is not None]
    return list(durations) if durations else [turn.mcp_call_ms]


def token_totals(turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]) -> dict[str, int]:
    """Usage totals. A session that reports its own totals counts with them (they include
    responses outside turns); the turns of any other session are summed instead."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    counted: set[str] = set()
    for s in sessions:
        if any(getattr(s, f) is not None for f in USAGE_FIELDS):
            counted.add(s.session_id)
            for f in USAGE_FIELDS:
                totals[f] += getattr(s, f) or 0
    for t in turns:
        if t.session_id not in counted:
            for f in USAGE_FIELDS:
                totals[f] += getattr(t, f) or 0
    return totals


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _round(value: float | int | None) -> float | int | None:
    return round(value, 3) if isinstance(value, float) else value


def _failure_type(result: SessionResult) -> str:
    """The failure's type; for records written before ``failure`` existed, the type
    name that leads their ``"Type: message"`` reason."""
    if result.failure is not None:
        return result.failure.type
    if not result.reason:
        return "(no reason)"
    return result.reason.split(":", 1)[0].strip() or "(no reason)"


def _turn_failure_reason(turn: TurnRecord) -> str:
    if turn.reason:
        return turn.reason
    if turn.status_reason:
        return turn.status_reason
    for err in turn.errors:
        if err.code:
            return err.code
    return "(no reason)"


def last_attempts(sessions: Sequence[SessionResult]) -> list[SessionResult]:
    """One record per session id (a session restarted by the supervisor has one per
    attempt): its last attempt (highest ``attempt``; a later record wins a tie), in the
    order the sessions first appear."""
    last: dict[str, SessionResult] = {}
    for s in sessions:
        seen = last.get(s.session_id)
        if seen is None or s.attempt >= seen.attempt:
            last[s.session_id] = s
    return list(last.values())


def connection_counts(sessions: Sequence[SessionResult]) -> dict[str, Any]:
    """``summary["connections"]`` of every session record (attempts included):
    connection ``attempts``, ``connect_failed`` (before the handshake), ``refused`` (with
    an HTTP status) and ``refused_by_status``,
    ``reconnects``, and ``restarts`` (records of attempts after a session's first)."""
    refused: collections.Counter[str] = collections.Counter()
    for s in sessions:
        refused.update(s.refused_by_status or {})
    return {
        "attempts": sum(s.connect_attempts for s in sessions),
        "connect_failed": _sum_known(s.connect_failed for s in sessions),
        "refused": sum(refused.values()),
        "refused_by_status": dict(sorted(refused.items())),
        "reconnects": sum(s.reconnects for s in sessions),
        "restarts": sum(1 for s in sessions if s.attempt > 0),
    }


def _sum_known(values: Iterable[int | None]) -> int | None:
    """The sum of the known values; None when none is known (older records)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _counts(turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]) -> dict[str, Any]:
    """The session and turn counts of ``totals`` (sessions counted once)."""
    logical = last_attempts(sessions)
    by_status = collections.Counter(s.status for s in logical)
    failed_turns = sum(1 for t in turns if t.failed)
    return {
        "sessions_total": len(logical),
        "sessions_completed": by_status.get("completed", 0),
        "sessions_failed": by_status.get("failed", 0),
        "sessions_cancelled": by_status.get("cancelled", 0),
        "session_error_rate": _rate(by_status.get("failed", 0), len(logical)),
        "turns_total": len(turns),
        "turns_failed": failed_turns,
        "turn_error_rate": _rate(failed_turns, len(turns)),
    }


def _stats(values: np.ndarray) -> dict[str, Any]:
    return {k: _round(v) for k, v in summarize(values).to_dict().items()}


def _measured(turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]) -> dict[str, Any]:
    """The stats of the metrics with samples (a breakdown group's ``metrics``)."""
    return {
        name: _stats(values)
        for name, values in metric_samples(turns, sessions).items()
        if values.size
    }


class _Tagged:
    """The records of a run by scenario, label and user tags: the summary's
    ``breakdown`` and the records a threshold's selector matches."""

    def __init__(self, turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]) -> None:
        self.turns = turns
        self.sessions = sessions
        # a turn written before records carried ``scenario`` takes its session's
        self._scenario_of = {s.session_id: s.scenario or s.label for s in sessions}

    def scenario(self, record: TurnRecord | SessionResult) -> str | None:
        if isinstance(record, SessionResult):
            return record.scenario or record.label
        return record.scenario or self._scenario_of.get(record.session_id)

    def scoped(
        self, selector: tuple[tuple[str, str], ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Samples and counts of the records ``selector`` matches (None: none); a session
        matches a ``label`` when one of its turns has that label."""
        turns = [
            t
            for t in self.turns
            if matches(selector, scenario=self.scenario(t), label=t.label or "", tags=t.tags)
        ]
        labelled = {t.session_id for t in turns}
        wants_label = any(k == "label" for k, _ in selector)
        sessions = [
            s
            for s in self.sessions
            if matches(selector, scenario=self.scenario(s), label=None, tags=s.tags)
            and (not wants_label or s.session_id in labelled)
        ]
        if not turns and not sessions:
            return None
        counts = {**_counts(turns, sessions), "reconnects": sum(s.reconnects for s in sessions)}
        return metric_samples(turns, sessions), counts

    def breakdown(self) -> dict[str, Any]:
        """``summary["breakdown"]`` (see the module docstring)."""
        by_scenario: dict[str, tuple[list[TurnRecord], list[SessionResult]]] = {}
        for s in self.sessions:
            by_scenario.setdefault(self.scenario(s) or NO_NAME, ([], []))[1].append(s)
        for t in self.turns:
            by_scenario.setdefault(self.scenario(t) or NO_NAME, ([], []))[0].append(t)
        scenarios = {}
        for name, (turns, sessions) in sorted(by_scenario.items()):
            status = collections.Counter(s.status for s in last_attempts(sessions))
            scenarios[name] = {
                "sessions": sum(status.values()),
                "completed": status.get("completed", 0),
                "failed": status.get("failed", 0),
                "metrics": _measured(turns, sessions),
            }
        by_label: dict[str, list[TurnRecord]] = {}
        for t in self.turns:
            by_label.setdefault(t.label or NO_NAME, []).append(t)
        labels = {
            label: {
                "turns": len(turns),
                "failed": sum(1 for t in turns if t.failed),
                "metrics": _measured(turns, ()),
            }
            for label, turns in sorted(by_label.items())
        }
        return {"scenario": scenarios, "label": labels}


def _turn_failure_text(turn: TurnRecord) -> str:
    if turn.reason:
        return turn.reason
    for err in turn.errors:
        return f"{err.code}: {err.message}" if err.code else err.message or "(no reason)"
    return turn.status_reason or "(no reason)"


def _failures(
    sessions: Sequence[SessionResult], turns: Sequence[TurnRecord]
) -> Iterable[tuple[str, str, str | None, str]]:
    """``(scope, type, code, text)`` of every failed session (last attempts) and turn."""
    for s in sessions:
        code = s.failure.code if s.failure is not None else None
        yield "session", _failure_type(s), code, s.reason or "(no reason)"
    for t in turns:
        kind, code = turn_failure_kind(t)
        yield "turn", kind, code, _turn_failure_text(t)


def _failure_groups(
    sessions: Sequence[SessionResult], turns: Sequence[TurnRecord]
) -> list[dict[str, Any]]:
    """``summary["failure_groups"]``: at most :data:`FAILURE_GROUPS_TOP` groups per scope
    (sessions, turns: many turn groups never crowd the session groups out), largest first
    (ties: session groups first)."""
    groups = [
        *group_failures(_failures(sessions, ()), FAILURE_GROUPS_TOP),
        *group_failures(_failures((), turns), FAILURE_GROUPS_TOP),
    ]
    return [g.to_dict() for g in sorted(groups, key=lambda g: -g.count)]


def _validity_dict(validity: Validity | Mapping[str, Any] | None) -> dict[str, Any]:
    if validity is None:
        return Validity().to_dict()
    if isinstance(validity, Validity):
        return validity.to_dict()
    return Validity(
        valid=bool(validity.get("valid", True)),
        reasons=tuple(str(r) for r in validity.get("reasons", ())),
    ).to_dict()


def build_summary(
    turns: Sequence[TurnRecord],
    sessions: Sequence[SessionResult],
    *,
    run: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    model: str | None = None,
    late_starts: int = 0,
    dropped_starts: int = 0,
    held_starts: int | None = None,
    validity: Validity | Mapping[str, Any] | None = None,
    thresholds: Iterable[str | Threshold] = (),
    prices: Prices | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` dict of a run (layout in the module docstring).

    ``model`` defaults to ``config["model"]``; ``prices`` to the built-in table
    (:func:`~orchestrator.metrics.prices.builtin_prices`). ``late_starts`` / ``dropped_starts`` are
    the supervisor's counts of arrivals that started late or never started;
    ``held_starts`` those held by ``--respect-rate-limits`` (None: no gate). Raises
    ``ThresholdError`` for a bad threshold expression (before doing any other work)."""
    parsed = parse_thresholds(thresholds)
    config_out = redact_config(config)
    if model is None:
        model = (config or {}).get("model") or (run or {}).get("model")
    run_out = redact_config(run)
    if "duration_s" not in run_out:
        ends = [s.t_end_s for s in sessions] + [t.t_end_s for t in turns]
        run_out["duration_s"] = _round(max(ends, default=0.0))

    logical = last_attempts(sessions)
    by_status = collections.Counter(s.status for s in logical)
    failed_sessions = [s for s in logical if s.status == "failed"]
    failed_turns = [t for t in turns if t.failed]
    tokens = token_totals(turns, sessions)
    table = builtin_prices() if prices is None else _table(prices)
    usd, cost_note = estimate_cost(tokens, model, table)
    price = table.price_for(model)

    totals: dict[str, Any] = {
        **_counts(turns, sessions),
        "late_starts": int(late_starts),
        "dropped_starts": int(dropped_starts),
        "held_starts": None if held_starts is None else int(held_starts),
        "rate_limited_turns": sum(
            1 for t in turns if any(e.code == "rate_limit_exceeded" for e in t.errors)
        ),
        "rate_limited_sessions": sum(1 for s in logical if s.rate_limited),
        "reconnects": sum(s.reconnects for s in sessions),
        "cost_usd": None if usd is None else round(usd, 6),
    }
    samples = metric_samples(turns, sessions)
    metrics = {name: _stats(values) for name, values in samples.items()}
    tagged = _Tagged(turns, sessions)
    threshold_results = [
        r.to_dict() for r in evaluate(parsed, samples=samples, scalars=totals, scoped=tagged.scoped)
    ]
    return {
        "schema": SCHEMA,
        "run": run_out,
        "config": config_out,
        "totals": totals,
        "connections": connection_counts(sessions),
        "sessions": {
            "by_status": dict(sorted(by_status.items())),
            "failure_types": dict(
                collections.Counter(_failure_type(s) for s in failed_sessions).most_common()
            ),
            "failure_reasons": dict(
                collections.Counter(s.reason or "(no reason)" for s in failed_sessions).most_common(
                    FAILURE_REASONS_TOP
                )
            ),
            "gap_ms_total": _round(float(sum(s.gap_ms_total for s in sessions))),
        },
        "turns": {
            "by_mode": dict(sorted(collections.Counter(t.mode for t in turns).items())),
            "by_status": dict(
                sorted(collections.Counter(t.status or "(unknown)" for t in turns).items())
            ),
            "by_response_status": dict(
                sorted(collections.Counter(t.response_status or "(none)" for t in turns).items())
            ),
            "by_error_code": dict(
                collections.Counter(
                    e.code or "(no code)" for t in turns for e in t.errors
                ).most_common()
            ),
            "failure_reasons": dict(
                collections.Counter(_turn_failure_reason(t) for t in failed_turns).most_common(
                    FAILURE_REASONS_TOP
                )
            ),
        },
        "failure_groups": _failure_groups(failed_sessions, failed_turns),
        "metrics": metrics,
        "breakdown": tagged.breakdown(),
        "tokens": tokens,
        "cost": {
            "model": model,
            "usd": totals["cost_usd"],
            "note": cost_note,
            "prices_per_1m": attrs.asdict(price) if price else None,
            "prices_source": table.source,
        },
        "validity": _validity_dict(validity),
        "thresholds": threshold_results,
        "thresholds_ok": all(r["ok"] for r in threshold_results),
    }


#: Columns of :func:`summary_csv`.
CSV_COLUMNS: tuple[str, ...] = ("metric", "count", "mean", "p50", "p90", "p95", "p99", "max")


def summary_csv(summary: Mapping[str, Any]) -> str:
    """One CSV row per metric of ``summary["metrics"]``: ``metric,count,mean,p50,p90,p95,
    p99,max`` (empty cells for unmeasured stats)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, stats in summary.get("metrics", {}).items():
        row: list[Any] = [name]
        for col in CSV_COLUMNS[1:]:
            value = stats.get(col)
            row.append("" if value is None else value)
        writer.writerow(row)
    return buf.getvalue()
