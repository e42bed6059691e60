"""Errors of the scenario layer: a bad scenario file, a conversation that went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .expect import ExpectationFailure

__all__ = ["ScenarioError", "ScenarioFailed"]


class ScenarioError(ValueError):
    """A scenario file is invalid. The message names the file, the field path of each
    problem (``turns[2].expect_tool_args``) and what is wrong with it, one per line.

    ``source`` is the file (or ``"<scenario>"``); ``problems`` the ``(path, message)``
    pairs (an empty path means the whole file).
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.problems]
        if len(lines) == 1:
            text = f"scenario {source}: {lines[0]}"
        else:
            text = f"scenario {source}: {len(lines)} problems:\n" + "\n".join(
                f"  {line}" for line in lines
            )
        super().__init__(text)


class ScenarioFailed(Exception):
    """The conversation did not go as scripted (no answer, a failed expectation); the
    message says which turn and why. Raised by drivers; the supervisor records it as the
    session's failure (``reason = "ScenarioFailed: <message>"``).

    ``failures``: the failed expectations (empty when the failure is not one, e.g. the
    built-in conversation's unanswered turn).
    """

    def __init__(self, message: str, failures: Sequence[ExpectationFailure] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)
