"""Checking a finished turn against its expectations (pure: values in, failures out).

:func:`check_turn` compares a :class:`~.model.TurnSpec`'s expectations with what was
:class:`Observed` of the turn and returns one :class:`ExpectationFailure` per expectation
that did not hold. Messages are deterministic for the same observation (sorted JSON,
bounded excerpts), so the run summary can count failures by reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from .model import TurnSpec

__all__ = ["ExpectationFailure", "Observed", "check_turn", "subset_mismatch"]

_EXCERPT = 120


@attrs.frozen(kw_only=True)
class ExpectationFailure:
    """One expectation of one turn that did not hold: ``expectation`` is the scenario key
    (``expect_tool_args``, ``max_ttfb_ms``, ...), ``message`` what was seen instead."""

    turn_index: int
    label: str | None
    expectation: str
    message: str

    def __str__(self) -> str:
        turn = f"turn {self.turn_index}" + (f" ({self.label})" if self.label else "")
        return f"{turn}: {self.expectation}: {self.message}"


@attrs.frozen(kw_only=True)
class Observed:
    """What happened in a turn, as far as expectations care.

    ``tool_calls``: ``(name, JSON arguments text)`` in call order; ``metrics``: the
    turn record's latency metrics by name (``None`` = not measured);
    ``user_transcript_pending``: the server's transcription of the user audio had not
    arrived yet when this was observed, so ``expect_user_transcript_regex`` is not
    checked (observe again once it arrived, or gave up).
    """

    status: str
    reason: str | None = None
    tool_calls: tuple[tuple[str, str], ...] = ()
    transcript: str = ""
    user_transcript: str | None = None
    user_transcript_pending: bool = False
    metrics: Mapping[str, float | None] = attrs.field(factory=dict)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "...")


def subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where ``actual`` does not contain ``expected``, or None when it does.

    Tables match when every expected key is present with a matching value (extra keys in
    ``actual`` are fine); arrays match element by element and must have the same length;
    other values must be equal and of the same kind (``true`` is not ``1``; ``1`` equals
    ``1.0``).
    """
    where = path or "arguments"
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{where} is {_json(actual)}, expected a table"
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                return f"{sub} is missing"
            found = subset_mismatch(value, actual[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(expected, list | tuple):
        if not isinstance(actual, list | tuple) or len(actual) != len(expected):
            return f"{where} is {_json(actual)}, expected {_json(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = subset_mismatch(e, a, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    same_kind = isinstance(expected, bool) == isinstance(actual, bool)
    if not same_kind or expected != actual:
        return f"{where} is {_json(actual)}, expected {_json(expected)}"
    return None


def _parse_args(arguments: str) -> Any:
    try:
        return orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return None


def check_turn(spec: TurnSpec, index: int, observed: Observed) -> list[ExpectationFailure]:
    """Every expectation of ``spec`` (turn ``index``) that ``observed`` does not meet.

    A turn that did not end as ``expect_status`` says fails that expectation; when it
    neither completed nor was interrupted (failed, cancelled) nothing else is checked,
    since the rest of its data is incomplete. ``expect_user_transcript_regex`` is skipped
    while ``observed.user_transcript_pending``.
    """
    failures: list[ExpectationFailure] = []

    def fail(expectation: str, message: str) -> None:
        failures.append(
            ExpectationFailure(
                turn_index=index, label=spec.label, expectation=expectation, message=message
            )
        )

    if observed.status != spec.expect_status:
        why = f" ({observed.reason})" if observed.reason else ""
        fail("expect_status", f"the turn was {observed.status}{why}, expected {spec.expect_status}")
        if observed.status not in ("completed", "interrupted"):
            return failures
    names = [name for name, _ in observed.tool_calls]
    called = ", ".join(names) or "none"
    if spec.expect_no_tool and names:
        fail("expect_no_tool", f"expected no tool call, got: {called}")
    if spec.expect_tool is not None:
        calls = [args for name, args in observed.tool_calls if name == spec.expect_tool]
        if not calls:
            fail("expect_tool", f"{spec.expect_tool} was not called (calls: {called})")
        elif spec.expect_tool_args is not None:
            _check_args(spec, calls, fail)
    _check_regex(
        fail,
        "expect_transcript_regex",
        spec.expect_transcript_regex,
        observed.transcript,
        "assistant",
    )
    if not observed.user_transcript_pending:
        _check_regex(
            fail,
            "expect_user_transcript_regex",
            spec.expect_user_transcript_regex,
            observed.user_transcript,
            "user",
        )
    for metric, limit in spec.budgets.items():
        value = observed.metrics.get(metric)
        if value is None:
            fail(f"max_{metric}", f"{metric} was not measured (budget {limit:g} ms)")
        elif value > limit:
            fail(f"max_{metric}", f"{metric} {value:.1f} ms > {limit:g} ms")
    return failures


def _check_args(spec: TurnSpec, calls: Sequence[str], fail: Any) -> None:
    mismatches: list[str] = []
    for arguments in calls:
        parsed = _parse_args(arguments)
        if parsed is None:
            mismatches.append(f"arguments are not valid JSON: {_excerpt(arguments)}")
            continue
        found = subset_mismatch(spec.expect_tool_args, parsed)
        if found is None:
            return
        mismatches.append(found)
    expected = _json(spec.expect_tool_args)
    detail = "; ".join(mismatches)
    fail(
        "expect_tool_args",
        f"no {spec.expect_tool} call has arguments containing {expected} ({detail})",
    )


def _check_regex(
    fail: Any, expectation: str, pattern: str | None, text: str | None, whose: str
) -> None:
    if pattern is None:
        return
    if text is None:
        fail(expectation, f"no {whose} transcript (expected /{pattern}/)")
    elif re.search(pattern, text, re.IGNORECASE) is None:
        fail(expectation, f"{whose} transcript {_excerpt(text)} does not match /{pattern}/")
