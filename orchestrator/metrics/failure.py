"""Failures as values (pure): why a session or a turn failed, packed as data.

Like tractor's packed errors, an exception leaves the actor as a :class:`Failure`:
its type name, message, where it happened and a short excerpt of its traceback, never
as a bare ``"Type: message"`` string that must be parsed back, and never as an exception
thrown across the supervisor. Records carry it (``SessionResult.failure``,
``TurnRecord.failure``); the summary groups failures by ``type``, ``code`` and the
:func:`failure_template` of their text (:func:`group_failures`).

:func:`first_error` is the one place that picks "the" error out of an exception group
(the first ``Exception`` leaf, depth first; cancellation and other ``BaseException``
leaves are not errors).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from typing import Any, Final

import attrs

__all__ = [
    "TRACEBACK_LINES",
    "Failure",
    "FailureGroup",
    "failure_template",
    "first_error",
    "group_failures",
    "turn_failure_kind",
]

#: How many lines of the formatted traceback a :class:`Failure` keeps (the innermost).
TRACEBACK_LINES: Final = 12
_MESSAGE_CHARS: Final = 500


@attrs.frozen(kw_only=True)
class Failure:
    """Why something failed: ``type`` (exception class name or a code such as
    ``max_duration``), ``message``, ``where`` (the part that saw it: ``link``,
    ``driver``, ``tool``, ``server``, ``supervisor``…) and ``traceback`` (the innermost
    lines of the formatted traceback, None when there was none: a server-reported
    failure); ``code`` (optional) the machine-readable code that came with it: a server
    error code, an HTTP status of a refused handshake, a websocket close code."""

    type: str
    message: str = ""
    where: str | None = None
    traceback: str | None = None
    code: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, where: str | None = None) -> Failure:
        """Pack ``exc`` (the first error of a group, see :func:`first_error`).

        ``type`` is the exception's class name unless the exception names its own
        failure type in a ``failure_type`` string attribute (a scenario's unanswered
        turn reports the turn's own failure); ``code`` is its ``failure_code``, else its
        ``status_code`` (HTTP) or ``code`` (server error, close code) attribute."""
        error = first_error(exc) or exc
        excerpt = None
        if error.__traceback__ is not None:
            lines = "".join(traceback.format_exception(error)).rstrip().splitlines()
            excerpt = "\n".join(lines[-TRACEBACK_LINES:])
        own_type = getattr(error, "failure_type", None)
        return cls(
            type=own_type if isinstance(own_type, str) and own_type else type(error).__name__,
            message=str(error)[:_MESSAGE_CHARS],
            where=where,
            traceback=excerpt,
            code=_code_of(error),
        )

    def __str__(self) -> str:
        """``"Type: message"`` (the ``reason`` string of records)."""
        return f"{self.type}: {self.message}" if self.message else self.type


def first_error(exc: BaseException) -> BaseException | None:
    """The first ``Exception`` in ``exc``: itself, or the first such leaf of a (nested)
    group, depth first. None when it holds only ``BaseException`` s that are not errors
    (``Cancelled``, ``KeyboardInterrupt``)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_error(inner)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, Exception) else None


def _code_of(error: BaseException) -> str | None:
    for name in ("failure_code", "status_code", "code"):
        value = getattr(error, name, None)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


#: Failure types of a turn's first error, by the event that carried it.
_ERROR_TYPES: Final = {"error": "ServerError", "response.done": "ResponseFailed"}


def turn_failure_kind(record: Any) -> tuple[str, str | None]:
    """``(type, code)`` of a turn record (a :class:`~.records.TurnRecord`) that did not
    complete: its ``failure``'s; else its first error's (``ServerError`` for an ``error``
    event, ``ResponseFailed`` for a failed ``response.done``, else the local source:
    ``tool``, ``timeout``…, with the error's code); else ``ResponseFailed`` with the
    response's ``status_reason`` when the response failed; else ``turn_<status>``
    (``turn_interrupted``)."""
    failure, status = record.failure, record.status
    first = record.errors[0] if record.errors else None
    error_event = None if first is None else first.event_type or "error"
    error_code = None if first is None else first.code
    response_status, status_reason = record.response_status, record.status_reason
    if failure is not None:
        return failure.type, failure.code
    if error_event is not None or error_code is not None:
        kind = _ERROR_TYPES.get(error_event or "error", error_event or "ServerError")
        return kind, error_code
    if response_status == "failed":
        return "ResponseFailed", status_reason
    return f"turn_{status or 'failed'}", None


# What a failure text carries that differs from one occurrence to the next. Order
# matters: quoted text first (a transcript may contain ids and numbers), then ids, uuids
# and hex runs, then any other number.
_TEMPLATE_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r'\{\s*"(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}'), "{…}"),  # a JSON body
    (
        re.compile(r"'(?:[^'\\\n]|\\.){0,2000}'|\"(?:[^\"\\\n]|\\.){0,2000}\"|“[^”\n]{0,2000}”"),
        "'…'",
    ),
    (re.compile(r"\b(resp|item|call|sess|event|conv|rs|msg|fc|evt)_[A-Za-z0-9]+"), r"\1_…"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)
_TEMPLATE_CHARS: Final = 300


def failure_template(text: str) -> str:
    """``text`` with what differs between occurrences of the same failure replaced:
    JSON objects (response bodies) by ``{…}``, quoted text (transcripts, arguments) by
    ``'…'``, protocol ids (``resp_…``,
    ``item_…``, ``call_…``, ``sess_…``, ``event_…``), uuids (``<uuid>``), hex runs of 8+
    digits (``<hex>``) and numbers (``<n>``); whitespace collapsed, at most 300
    characters. Pure; the same failure always gives the same template."""
    out = text
    for pattern, replacement in _TEMPLATE_RULES:
        out = pattern.sub(replacement, out)
    out = " ".join(out.split())
    return out if len(out) <= _TEMPLATE_CHARS else out[: _TEMPLATE_CHARS - 1] + "…"


@attrs.frozen(kw_only=True)
class FailureGroup:
    """Failures of one ``scope`` (``"session"`` or ``"turn"``) with the same ``type``,
    ``code`` and ``template``: how many (``count``), the first one's full text
    (``example``) and how many different full texts the group holds (``distinct``; 1:
    every failure of the group said exactly ``example``)."""

    scope: str
    type: str
    code: str | None
    template: str
    count: int
    example: str
    distinct: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for ``summary.json``)."""
        return attrs.asdict(self)


def group_failures(
    failures: Iterable[tuple[str, str, str | None, str]], top: int | None = None
) -> list[FailureGroup]:
    """Group ``(scope, type, code, text)`` failures by scope, type, code and
    :func:`failure_template` of the text (without a leading ``"TYPE: "``, as in a
    ``reason``); largest group first (ties: first seen first), at most ``top`` groups
    (None: all)."""
    groups: dict[tuple[str, str, str | None, str], list[Any]] = {}
    for scope, kind, code, text in failures:
        key = (scope, kind, code, failure_template(text.removeprefix(f"{kind}: ")))
        entry = groups.get(key)
        if entry is None:
            groups[key] = [1, text, {text}]
        else:
            entry[0] += 1
            entry[2].add(text)
    ranked = sorted(groups.items(), key=lambda item: -item[1][0])
    return [
        FailureGroup(
            scope=s, type=t, code=c, template=tpl, count=n, example=ex, distinct=len(texts)
        )
        for (s, t, c, tpl), (n, ex, texts) in ranked[:top]
    ]
