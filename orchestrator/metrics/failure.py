"""Failures as values (pure): why a session or a turn failed, packed as data.

Like tractor's packed errors, an exception leaves the actor as a :class:`Failure`:
its type name, message, where it happened and a short excerpt of its traceback, never
as a bare ``"Type: message"`` string that must be parsed back, and never as an exception
thrown across the supervisor. Records carry it (``SessionResult.failure``,
``TurnRecord.failure``); the summary groups failures by ``type``.

:func:`first_error` is the one place that picks "the" error out of an exception group
(the first ``Exception`` leaf, depth first; cancellation and other ``BaseException``
leaves are not errors).
"""

from __future__ import annotations

import traceback
from typing import Final

import attrs

__all__ = ["TRACEBACK_LINES", "Failure", "first_error"]

#: How many lines of the formatted traceback a :class:`Failure` keeps (the innermost).
TRACEBACK_LINES: Final = 12
_MESSAGE_CHARS: Final = 500


@attrs.frozen(kw_only=True)
class Failure:
    """Why something failed: ``type`` (exception class name or a code such as
    ``max_duration``), ``message``, ``where`` (the part that saw it: ``link``,
    ``driver``, ``tool``, ``server``, ``supervisor``…) and ``traceback`` (the innermost
    lines of the formatted traceback, None when there was none: a server-reported
    failure)."""

    type: str
    message: str = ""
    where: str | None = None
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, where: str | None = None) -> Failure:
        """Pack ``exc`` (the first error of a group, see :func:`first_error`)."""
        error = first_error(exc) or exc
        excerpt = None
        if error.__traceback__ is not None:
            lines = "".join(traceback.format_exception(error)).rstrip().splitlines()
            excerpt = "\n".join(lines[-TRACEBACK_LINES:])
        return cls(
            type=type(error).__name__,
            message=str(error)[:_MESSAGE_CHARS],
            where=where,
            traceback=excerpt,
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
