"""Run validity: was the load generator, or the embedded target, its own bottleneck?

:func:`judge` turns the generator's event-loop lag p99 and its audio pacers' lateness p99
(:mod:`.monitor`) into a verdict: over the limits (default 50 ms each), the generator was
the bottleneck and the run's latency numbers are not trustworthy. :func:`judge_target`
does the same for the embedded target's own send lateness (its ground truth), and
:func:`merge_validity` joins verdicts. While the run goes,
:meth:`ValidityLimits.judge_live` leaves a figure unjudged until it has
:data:`MIN_LIVE_SAMPLES` samples (early on, a p99 is the max of the start-up stalls).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import attrs

__all__ = [
    "MIN_LIVE_SAMPLES",
    "Validity",
    "ValidityLimits",
    "judge",
    "judge_target",
    "merge_validity",
]


#: The fewest samples a figure needs before the *live* verdict judges its p99
#: (:meth:`ValidityLimits.judge_live`): over fewer, a p99 is really the max, i.e. the
#: start-up stalls (imports, first connections). At the loop monitor's 100 ms tick, 10 s
#: of loop lag; 2 s of one session's paced 20 ms audio frames.
MIN_LIVE_SAMPLES = 100


@attrs.frozen
class ValidityLimits:
    """Above these p99s (ms) the load generator is judged to be the bottleneck."""

    loop_lag_p99_ms: float = 50.0
    pacer_p99_ms: float = 50.0
    target_send_p99_ms: float = 50.0
    """The embedded target's own send lateness (ground truth ``send_late_ms``) p99."""
    min_live_samples: int = MIN_LIVE_SAMPLES
    """Samples a figure needs before the live verdict judges it (:meth:`judge_live`)."""

    def __attrs_post_init__(self) -> None:
        for name in ("loop_lag_p99_ms", "pacer_p99_ms", "target_send_p99_ms"):
            value: float = getattr(self, name)
            if not (isinstance(value, numbers.Real) and value >= 0 and not math.isnan(value)):
                raise ValueError(f"ValidityLimits.{name} must be a number >= 0, got {value!r}")
        if not (isinstance(self.min_live_samples, int) and self.min_live_samples >= 0):
            raise ValueError(
                "ValidityLimits.min_live_samples must be an int >= 0, got "
                f"{self.min_live_samples!r}"
            )

    def judge_live(
        self,
        loop_lag_p99_ms: float | None,
        loop_lag_samples: int | None,
        pacer_p99_ms: float | None,
        pacer_samples: int | None,
    ) -> dict[str, Any]:
        """The verdict of :func:`judge` *while the run goes*: a figure measured over fewer
        than :attr:`min_live_samples` samples is not judged yet (its p99 is the max of a
        few start-up samples); a count of ``None`` (unknown) is judged as :func:`judge`
        does. ``{"valid", "reasons", "judged"}``: ``judged`` is False while no figure was
        judged (``valid`` is then True, ``reasons`` empty). The end-of-run verdict is
        :func:`judge`'s, over every sample."""
        figures = []
        for value, samples in (
            (loop_lag_p99_ms, loop_lag_samples),
            (pacer_p99_ms, pacer_samples),
        ):
            measured = value is not None and not math.isnan(value)
            enough = samples is None or samples >= self.min_live_samples
            figures.append(value if measured and enough else None)
        verdict = judge(figures[0], figures[1], self)
        judged = any(v is not None for v in figures)
        return {"valid": verdict.valid, "reasons": list(verdict.reasons), "judged": judged}


class Validity(NamedTuple):
    """``(valid, reasons)``: ``reasons`` explains every failed check (empty when valid)."""

    valid: bool
    reasons: list[str]


def judge(
    loop_lag_p99_ms: float | None,
    pacer_p99_ms: float | None,
    limits: ValidityLimits | None = None,
) -> Validity:
    """Was the run valid, i.e. was the generator *not* its own bottleneck?

    Each figure over its limit (strictly) makes the run invalid with a reason naming the
    figure, its value and the limit. ``None``/NaN means not measured (no audio was paced,
    the monitor did not run) and is not held against the run.
    """
    limits = ValidityLimits() if limits is None else limits
    reasons: list[str] = []
    checks = (
        ("event-loop lag", loop_lag_p99_ms, limits.loop_lag_p99_ms),
        ("audio pacer lateness", pacer_p99_ms, limits.pacer_p99_ms),
    )
    for what, value, limit in checks:
        if value is not None and not math.isnan(value) and value > limit:
            reasons.append(
                f"{what} p99 {value:.1f} ms > limit {limit:g} ms: the load generator was the "
                "bottleneck, latencies measured in this run are not trustworthy"
            )
    return Validity(not reasons, reasons)


def judge_target(
    send_late_p99_ms: float | None,
    target: str,
    limits: ValidityLimits | None = None,
) -> Validity:
    """Was the embedded target *not* the bottleneck? Its own send lateness p99 (ground
    truth ``actual - intended``) over ``limits.target_send_p99_ms`` (strictly) makes the
    run invalid with a reason naming ``target`` (e.g. ``"embedded server (own process)"``).
    ``None``/NaN: not measured, not held against the run."""
    limits = ValidityLimits() if limits is None else limits
    value, limit = send_late_p99_ms, limits.target_send_p99_ms
    if value is None or math.isnan(value) or value <= limit:
        return Validity(True, [])
    return Validity(
        False,
        [
            f"{target}: send lateness p99 {value:.1f} ms > limit {limit:g} ms (ground truth "
            "actual - intended): the target could not keep its own latency plan, latencies "
            "measured in this run include its stalls"
        ],
    )


def merge_validity(*verdicts: Validity | dict[str, Any] | None) -> dict[str, Any]:
    """One ``{"valid", "reasons"}`` of several verdicts (``None``s are skipped): valid
    only if every one is, with every reason in order."""
    reasons: list[str] = []
    valid = True
    for verdict in verdicts:
        if verdict is None:
            continue
        if isinstance(verdict, Validity):
            ok, why = verdict.valid, list(verdict.reasons)
        else:
            ok, why = bool(verdict.get("valid", True)), [str(r) for r in verdict.get("reasons", ())]
        valid = valid and ok
        reasons.extend(r for r in why if r not in reasons)
    return {"valid": valid, "reasons": reasons}
