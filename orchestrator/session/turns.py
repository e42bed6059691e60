"""The typed handle of one user turn: what the driver gets back from ``say_*``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.metrics.failure import Failure
from orchestrator.metrics.records import ErrorRecord, McpCallRecord, TurnRecord

from .state import McpCall, ToolCall
from .timing import TurnTimer

if TYPE_CHECKING:
    from .state import ConversationState


class TurnOwner(Protocol):
    """What a turn asks of the book it belongs to (``TurnBook``)."""

    state: ConversationState
    run_t0: float

    def assistant_text(self, response_ids: list[str]) -> str: ...

    def record_of(self, turn: Turn) -> TurnRecord: ...


__all__ = ["EXPECTATION_FAILED", "Turn", "TurnCheck", "TurnStatus"]

TurnStatus = Literal["open", "completed", "interrupted", "failed", "cancelled"]

#: A driver's check of a finished turn: failure messages (empty = passed). See
#: :attr:`Turn.check` for when it runs and what becomes of its answer.
TurnCheck = Callable[["Turn"], Sequence[str]]

#: ``ErrorRecord.code`` of a failure reported by a turn's check.
EXPECTATION_FAILED = "expectation_failed"


@attrs.define(eq=False)
class Turn:
    """One user turn and the assistant response(s) it caused (tool follow-ups included).

    ``status``: ``open`` until its final ``response.done``; then ``completed``,
    ``interrupted`` (cancelled by a barge-in), ``failed`` (failed response, lost
    connection) or ``cancelled`` (the session closed first). ``reason`` says why when
    not completed; ``failure`` is the same as a value (type, message, where, traceback
    excerpt) when an error caused it. ``record`` is the :class:`TurnRecord` (final once
    not open). ``book`` is the :class:`~orchestrator.session.book.TurnBook` the turn
    belongs to: it answers the questions that need the conversation state.

    ``check`` (given to ``say_*`` / ``start_*_turn``): called once, synchronously, with
    this turn when it is finalized, whatever its final status (also ``failed`` on a lost
    connection, ``cancelled`` when the session closed, was aborted or cancelled first),
    after ``status``, ``reason`` and ``transcript`` are final and before the final
    ``record`` is built, ``on_turn`` is called and waiters of :meth:`wait` wake. It runs
    in whichever task ends the turn (usually the receiver), so it must be pure and fast:
    no awaiting, no blocking, no driver calls; ``record`` read inside it is the final
    record minus the check's own failures. It returns failure messages; each becomes an entry
    of ``expectation_failures`` and an ``ErrorRecord(code="expectation_failed",
    message=..., event_type=None)`` in ``errors`` and on the record (so
    ``record.failed`` is true; ``status`` and ``reason`` are unchanged). An
    ``Exception`` raised by it (or while reading its answer) becomes the single failure
    ``"check raised TypeName: message"``, never a session error; other
    ``BaseException`` types propagate. Cancelling the ``say_*`` call does not cancel the
    turn, nor its check.
    """

    book: TurnOwner
    index: int
    mode: Literal["audio", "text", "manual"]
    timer: TurnTimer
    label: str | None = None
    status: TurnStatus = "open"
    reason: str | None = None
    failure: Failure | None = None
    interrupts: str | None = None  # response id this turn barged in on
    user_item_id: str | None = None
    check: TurnCheck | None = None
    expectation_failures: tuple[str, ...] = ()
    _done: trio.Event = attrs.field(factory=trio.Event)
    _record: TurnRecord | None = None
    _transcript: str | None = None
    _user_text: str | None = None
    _mcp_started: dict[str, float] = attrs.field(factory=dict)
    _mcp_ms: dict[str, float] = attrs.field(factory=dict)

    @property
    def done(self) -> bool:
        return self.status != "open"

    @property
    def response_ids(self) -> list[str]:
        return self.timer.response_ids

    @property
    def transcript(self) -> str:
        """The assistant's transcript (audio) or text of this turn, as far as heard."""
        if self._transcript is not None:
            return self._transcript
        return self.book.assistant_text(self.response_ids)

    @property
    def user_transcript(self) -> str | None:
        """The server's transcription of the user audio when it produced one, else the
        text the user sent (text turns); None when neither is known."""
        st = self.book.state.items.get(self.user_item_id or "")
        if st is not None and st.input_transcript is not None:
            return st.input_transcript
        return self._user_text

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Function calls the model made in this turn, in order."""
        out: list[ToolCall] = []
        for rid in self.response_ids:
            resp = self.book.state.responses.get(rid)
            if resp is not None:
                out.extend(c for c in resp.function_calls if c.kind == "function")
        return out

    @property
    def mcp_calls(self) -> list[McpCall]:
        """MCP calls the server made in this turn (and approval requests), in order."""
        out: list[McpCall] = []
        for rid in self.response_ids:
            resp = self.book.state.responses.get(rid)
            if resp is not None:
                out.extend(resp.mcp_calls)
        return out

    def mcp_call_event(self, event: Any, t: float) -> None:
        """``response.mcp_call.in_progress`` / ``.completed`` / ``.failed`` of this turn
        received at ``t`` (fed by the core): the call's ``mcp_call_ms``."""
        if type(event) is P.ResponseMcpCallInProgress:
            self._mcp_started.setdefault(event.item_id, t)
        elif event.item_id in self._mcp_started and event.item_id not in self._mcp_ms:
            self._mcp_ms[event.item_id] = (t - self._mcp_started[event.item_id]) * 1000.0

    def _with_mcp(self, record: TurnRecord) -> TurnRecord:
        """``record`` with this turn's MCP calls (none: unchanged)."""
        calls = self.mcp_calls
        if not calls:
            return record
        # a call carrying out an approved request shows that request's answer
        asked = {c.item_id: c.approve for c in calls if c.status == "approval_requested"}
        entries = []
        for c in calls:
            approve = c.approve if c.approve is not None else asked.get(c.approval_request_id or "")
            entries.append(
                McpCallRecord(
                    name=c.name,
                    server_label=c.server_label,
                    status=c.status,
                    approval=None if approve is None else "approved" if approve else "denied",
                    duration_ms=self._mcp_ms.get(c.item_id),
                )
            )
        durations = list(self._mcp_ms.values())
        return attrs.evolve(
            record, mcp_calls=entries, mcp_call_ms=max(durations) if durations else None
        )

    @property
    def errors(self) -> list[ErrorRecord]:
        return list(self.timer.errors)

    @property
    def record(self) -> TurnRecord:
        """The turn's metrics as one ``TurnRecord`` (a snapshot while still open)."""
        if self._record is not None:
            return self._record
        return self._with_mcp(self.book.record_of(self))

    async def wait(self) -> Turn:
        """Wait until the turn is over and return it.

        Cancellation: raises ``Cancelled``; the turn itself goes on.
        """
        await self._done.wait()
        return self

    def finish(
        self, status: TurnStatus, reason: str | None, t: float, failure: Failure | None = None
    ) -> bool:
        """End the turn (once; later calls do nothing and return False): set its status,
        run its check, freeze its record and wake :meth:`wait`. Called by its book."""
        if self.status != "open":
            return False
        self.status = status
        self.reason = reason
        self.failure = failure
        if self.timer.closed_at is None:
            self.timer.closed_at = t
        self._transcript = self.book.assistant_text(self.response_ids)
        self._run_check(t)
        self._record = self._with_mcp(self.book.record_of(self))
        self._done.set()
        return True

    def _run_check(self, t: float) -> None:
        """Run ``check`` (once) and file its failures on the turn and its timer."""
        check = self.check
        if check is None:
            return
        try:
            found = check(self)
            messages = (found,) if isinstance(found, str) else tuple(str(m) for m in found)
        except Exception as exc:  # noqa: BLE001 - a broken check is a failed expectation
            messages = (f"check raised {type(exc).__name__}: {exc}",)
        self.expectation_failures = messages
        t_s = t - self.book.run_t0
        for message in messages:
            self.timer.add_error(
                ErrorRecord(code=EXPECTATION_FAILED, message=message, event_type=None, t_s=t_s)
            )
