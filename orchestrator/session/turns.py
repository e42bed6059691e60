"""The typed handle of one user turn: what the driver gets back from ``say_*``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs
import trio

from orchestrator.metrics.records import ErrorRecord, TurnRecord

from .state import ToolCall
from .timing import TurnTimer

if TYPE_CHECKING:
    from .actor import Session

__all__ = ["Turn", "TurnStatus"]

TurnStatus = Literal["open", "completed", "interrupted", "failed", "cancelled"]


@attrs.define(eq=False)
class Turn:
    """One user turn and the assistant response(s) it caused (tool follow-ups included).

    ``status``: ``open`` until its final ``response.done``; then ``completed``,
    ``interrupted`` (cancelled by a barge-in), ``failed`` (failed response, lost
    connection) or ``cancelled`` (the session closed first). ``reason`` says why when
    not completed. ``record`` is the :class:`TurnRecord` (final once not open).
    """

    session: Session
    index: int
    mode: Literal["audio", "text", "manual"]
    timer: TurnTimer
    label: str | None = None
    status: TurnStatus = "open"
    reason: str | None = None
    awaiting_followup: bool = False
    interrupts: str | None = None  # response id this turn barged in on
    user_item_id: str | None = None
    _done: trio.Event = attrs.field(factory=trio.Event)
    _record: TurnRecord | None = None
    _transcript: str | None = None
    _user_text: str | None = None

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
        return self.session._assistant_text(self.response_ids)

    @property
    def user_transcript(self) -> str | None:
        """The server's transcription of the user audio when it produced one, else the
        text the user sent (text turns); None when neither is known."""
        st = self.session.state.items.get(self.user_item_id or "")
        if st is not None and st.input_transcript is not None:
            return st.input_transcript
        return self._user_text

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Function calls the model made in this turn, in order."""
        out: list[ToolCall] = []
        for rid in self.response_ids:
            resp = self.session.state.responses.get(rid)
            if resp is not None:
                out.extend(resp.function_calls)
        return out

    @property
    def errors(self) -> list[ErrorRecord]:
        return list(self.timer.errors)

    @property
    def record(self) -> TurnRecord:
        """The turn's metrics as one ``TurnRecord`` (a snapshot while still open)."""
        if self._record is not None:
            return self._record
        return self.session._turn_record(self)

    async def wait(self) -> Turn:
        """Wait until the turn is over and return it.

        Cancellation: raises ``Cancelled``; the turn itself goes on.
        """
        await self._done.wait()
        return self

    def _finish(self, status: TurnStatus, reason: str | None, t: float) -> None:
        if self.status != "open":
            return
        self.status = status
        self.reason = reason
        if self.timer.closed_at is None:
            self.timer.closed_at = t
        self._transcript = self.session._assistant_text(self.response_ids)
        self._record = self.session._turn_record(self)
        self._done.set()
