"""The turn book (pure; no I/O): a session's turns, which response belongs to which turn,
and each turn's record.

A response belongs to the turn that claimed it: ``response.create`` registers a claim
(its event id, the turn) before it is sent, and ``response.created`` takes the oldest
open claim. A response nobody claimed (server VAD answering on its own) goes to the open
turn that has no response yet, else to a new turn labelled ``"server"``, unless
``unprompted`` says the assistant is speaking on its own (a greeting): then it belongs to
no turn. Events without a response id belong to the current turn while it is open.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

import attrs

from orchestrator import protocol as P
from orchestrator.metrics.failure import Failure
from orchestrator.metrics.records import TurnRecord

from .state import ConversationState
from .timing import TurnTimer
from .turns import Turn, TurnCheck, TurnStatus

__all__ = ["TurnBook"]

Mode = Literal["audio", "text", "manual"]


@attrs.define(eq=False)
class TurnBook:
    """Turns of one session. ``server_mode`` tells the mode of a turn the server opens
    by itself (``audio`` with server VAD, else ``text``); ``on_turn`` receives every
    final :class:`TurnRecord`; ``unprompted(response_id)`` is asked about a response
    nobody claimed and returns True when it belongs to no turn. ``gap_start`` is when the
    connection was lost (None while connected): a turn that ends while disconnected
    counts the gap so far. ``scenario`` and ``tags`` go on every record (the session's
    scenario name and user tags)."""

    state: ConversationState
    session_id: str
    run_t0: float
    scenario: str | None = attrs.field(default=None, kw_only=True)
    tags: dict[str, str] | None = attrs.field(default=None, kw_only=True)
    server_mode: Callable[[], Mode]
    on_turn: Callable[[TurnRecord], None] | None = None
    unprompted: Callable[[str], bool] | None = None
    turns: list[Turn] = attrs.field(factory=list)
    current: Turn | None = None
    gap_start: float | None = None
    _by_response: dict[str, Turn] = attrs.field(factory=dict)
    _claims: deque[tuple[str | None, Turn]] = attrs.field(factory=deque)

    # ------------------------------------------------------------------ turns
    def open(
        self,
        mode: Mode,
        label: str | None,
        t: float,
        *,
        user_text: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """Open a new current turn; the previous one fails if it never got a response."""
        cur = self.current
        if cur is not None and cur.status == "open" and not cur.response_ids:
            self.finish(cur, "failed", "no response before the next turn", t)
        turn = Turn(
            book=self,
            index=len(self.turns),
            mode=mode,
            timer=TurnTimer(opened_at=t, bytes_per_ms=self.state.bytes_per_ms),
            label=label,
            user_text=user_text,
            check=check,
        )
        self.turns.append(turn)
        self.current = turn
        return turn

    def waiting_turn(self) -> Turn | None:
        """The current turn if it is open and has no response yet."""
        cur = self.current
        if cur is not None and cur.status == "open" and not cur.response_ids:
            return cur
        return None

    def open_turns(self) -> Iterator[Turn]:
        """Turns not finished yet, oldest first (a snapshot: finishing them is safe)."""
        return iter([turn for turn in self.turns if turn.status == "open"])

    def finish(
        self,
        turn: Turn,
        status: TurnStatus,
        reason: str | None,
        t: float,
        failure: Failure | None = None,
    ) -> None:
        """End ``turn`` (no-op when it already ended) and hand its record to ``on_turn``."""
        if turn.status != "open":
            return
        if self.gap_start is not None:  # ending while disconnected: count the gap so far
            turn.timer.add_gap(self.gap_start, t)
        if turn.finish(status, reason, t, failure) and self.on_turn is not None:
            self.on_turn(turn.record)

    # ------------------------------------------------------------------ responses
    def claim(self, event_id: str | None, turn: Turn) -> None:
        """The next ``response.created`` (of the request ``event_id``) is ``turn``'s."""
        self._claims.append((event_id, turn))

    def drop_claim(self, event_id: str) -> None:
        """The request ``event_id`` was rejected: it will create no response."""
        for claim in list(self._claims):
            if claim[0] == event_id:
                self._claims.remove(claim)

    def drop_newest_claim(self) -> None:
        """A ``response.create`` was refused without naming it (the newest one)."""
        if self._claims:
            self._claims.pop()

    def forget_connection(self) -> None:
        """The connection is gone: no claim will be answered."""
        self._claims.clear()

    def turn_of(self, response_id: str | None) -> Turn | None:
        """The turn ``response_id`` belongs to (open or not), if known."""
        return self._by_response.get(response_id or "")

    def route(self, event: Any, t: float) -> Turn | None:
        """The open turn ``event`` belongs to (None: no open turn owns it)."""
        rid = getattr(event, "response_id", None)
        if rid is None:
            response = getattr(event, "response", None)
            if response is not None:
                rid = response.id
        if rid is not None:
            turn = self._by_response.get(rid)
            if turn is None and type(event) is P.ResponseCreated:
                turn = self._assign(rid, t)
            return turn if turn is not None and turn.status == "open" else None
        cur = self.current
        return cur if cur is not None and cur.status == "open" else None

    def _assign(self, rid: str, t: float) -> Turn | None:
        turn: Turn | None = None
        while self._claims:
            _, claimed = self._claims.popleft()
            if claimed.status == "open":
                turn = claimed
                break
        if turn is None:
            if self.unprompted is not None and self.unprompted(rid):
                return None
            turn = self.waiting_turn() or self.open(self.server_mode(), "server", t)
        self._by_response[rid] = turn
        return turn

    # ------------------------------------------------------------------ records
    def assistant_text(self, response_ids: list[str]) -> str:
        """The assistant's text (or audio transcript) of ``response_ids``, as heard."""
        items = self.state.output_items(response_ids)
        return " ".join(st.text for _, st in items if st.type == "message" and st.text)

    def record_of(self, turn: Turn) -> TurnRecord:
        """``turn`` as a :class:`TurnRecord` (a snapshot while it is open)."""
        final = turn.status != "open"
        return turn.timer.record(
            session_id=self.session_id,
            turn_index=turn.index,
            mode=turn.mode,
            run_t0=self.run_t0,
            label=turn.label,
            scenario=self.scenario,
            tags=self.tags,
            transcript=turn.transcript,
            status=turn.status if final else None,
            reason=None if turn.status in ("open", "completed") else turn.reason,
            failure=turn.failure,
            user_transcript=turn.user_transcript,
        )
