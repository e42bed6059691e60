"""The receiver task: socket -> decode -> state, turn timers, waiters, subscribers.

Hot path: per event one decode, one dict dispatch in the state, one in the turn timer,
one here for the few events the actor reacts to, and a short loop over the (usually
empty) waiter and subscriber lists. It never awaits anything but ``receive``: work that
must send (truncate, cancel, tool outputs) is started as a task, and subscribers that
fall behind lose events (counted) instead of stalling the socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from orchestrator import protocol as P
from orchestrator.metrics.records import ErrorRecord
from orchestrator.transport import TransportError

from .errors import RequestRejected, SessionFailure
from .reconnect import is_fatal_code
from .spec import ConnectionLike
from .tool_exec import Batch
from .turns import Turn

if TYPE_CHECKING:
    from .actor import Session

__all__ = ["ReceiverMixin"]


class ReceiverMixin:
    """Receiving half of :class:`~orchestrator.session.actor.Session`."""

    def _handler_table(self: Session) -> dict[type, Any]:
        return {
            P.ErrorEvent: self._on_error,
            P.SessionCreated: self._on_session_created,
            P.InputAudioBufferSpeechStarted: self._on_speech_started,
            P.InputAudioBufferSpeechStopped: self._on_speech_stopped,
            P.InputAudioBufferCommitted: self._on_committed,
            P.ResponseOutputAudioDelta: self._on_audio_delta,
            P.ResponseFunctionCallArgumentsDone: self._on_arguments_done,
            P.ResponseDone: self._on_response_done,
        }

    async def _receiver(self: Session, conn: ConnectionLike) -> None:
        decode = P.decode_server_event
        dialect = self.dialect
        on_event = self._on_event
        try:
            while True:
                text = await conn.receive()
                t = trio.current_time()
                try:
                    event = decode(text, dialect)
                except P.ProtocolError as exc:
                    self._on_protocol_error(exc, t)
                    continue
                on_event(event, t)
        except TransportError as exc:
            self._link_lost(exc)

    def _link_lost(self: Session, exc: BaseException) -> None:
        if self._lost is None:
            self._lost = exc
        if self._link_scope is not None:
            self._link_scope.cancel()

    def _on_event(self: Session, event: Any, t: float) -> None:
        """Everything the receiver does with one decoded event (synchronous)."""
        self.events_received += 1
        self.state.apply(event)
        turn = self._route(event)
        if turn is not None:
            turn.timer.on_event(event, t)
        else:
            counts = self.idle_event_counts
            counts[event.type] = counts.get(event.type, 0) + 1
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event, t, turn)
        if self._waiters:
            for waiter in self._waiters:
                if waiter.result is None and waiter.error is None and waiter.match(event):
                    waiter.result = event
                    waiter.event.set()
        if self._subs:
            is_audio = type(event) is P.ResponseOutputAudioDelta
            for sub in self._subs:
                sub.offer(event, is_audio)

    def _route(self: Session, event: Any) -> Turn | None:
        rid = getattr(event, "response_id", None)
        if rid is None:
            response = getattr(event, "response", None)
            if response is not None:
                rid = response.id
        if rid is not None:
            turn = self._resp_turn.get(rid)
            if turn is None and type(event) is P.ResponseCreated:
                turn = self._claim_turn(rid)
            return turn if turn is not None and turn.status == "open" else None
        cur = self._current
        return cur if cur is not None and cur.status == "open" else None

    def _claim_turn(self: Session, rid: str) -> Turn:
        turn: Turn | None = None
        while self._claims:
            _, claimed = self._claims.popleft()
            if claimed.status == "open":
                turn = claimed
                break
        if turn is None:
            cur = self._current
            if cur is not None and cur.status == "open" and not cur.response_ids:
                turn = cur
            else:
                turn = self._open_turn("audio" if self._server_vad() else "text", "server")
        self._resp_turn[rid] = turn
        return turn

    def _on_protocol_error(self: Session, exc: P.ProtocolError, t: float) -> None:
        self.protocol_errors += 1
        record = ErrorRecord(
            code="protocol_error",
            message=str(exc)[:500],
            event_type=exc.event_type,
            t_s=t - self._run_t0,
        )
        self._add_error(record, self._current)
        if self.protocol_errors > self.spec.max_protocol_errors:
            self._fail(
                SessionFailure(
                    f"{self.protocol_errors} undecodable server events "
                    f"(limit {self.spec.max_protocol_errors}); last: {exc}"
                )
            )

    def _add_error(self: Session, record: ErrorRecord, turn: Turn | None) -> None:
        self.errors_total += 1
        if turn is not None and turn.status == "open":
            turn.timer.add_error(record)
        else:
            self.session_errors.append(record)

    def _fail(self: Session, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        if self._run_scope is not None:
            self._run_scope.cancel()

    def _on_error(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        err = event.error
        code = err.code
        eid = err.event_id
        if eid is not None:
            for waiter in self._waiters:
                if waiter.event_id == eid and waiter.result is None:
                    waiter.error = RequestRejected(waiter.event_type, code, err.message)
                    waiter.event.set()
            for claim in list(self._claims):
                if claim[0] == eid:
                    self._claims.remove(claim)
        if code == "response_cancel_not_active":
            return  # we only cancel when a response looked active: a benign race
        if code == "conversation_already_has_active_response" and eid is None and self._claims:
            self._claims.pop()
        self._add_error(
            ErrorRecord(
                code=code, message=err.message or "", event_type="error", t_s=t - self._run_t0
            ),
            turn,
        )
        if is_fatal_code(code) or err.type == "authentication_error":
            self._fatal_seen = True
            self._fail(SessionFailure(f"{err.type}.{code}: {err.message}"))

    def _on_session_created(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        self._session_created.set()

    def _on_speech_started(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        self._on_committed(event, t, turn)  # the same user item id
        if self.playback.playing(t) or self.state.active_response_id is not None:
            self._interrupt(t, by_server=True)

    def _on_speech_stopped(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        if self._tail_stop is not None:
            self._tail_stop.set()

    def _on_committed(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        if turn is not None and turn.user_item_id is None and turn.mode != "text":
            turn.user_item_id = event.item_id

    def _on_audio_delta(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        ms = self.state.last_delta_bytes / self.state.bytes_per_ms  # counted by the state
        self.playback.on_audio(event.item_id, ms, t)
        self._last_audio_at = t
        if self._barge is not None and self._barge[1] == event.response_id:
            self._barge_last_delta = t

    def _on_arguments_done(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        if self.spec.tools is None or turn is None:
            return
        rid = event.response_id
        batch = self._batches.get(rid)
        if batch is None:
            batch = self._batches[rid] = Batch(turn=turn)
        call = self.state.calls_in_flight.get(event.call_id)
        if call is None:
            return
        batch.pending += 1
        try:
            self._tool_tx.send_nowait((call, turn))
        except trio.WouldBlock:
            batch.pending -= 1
            self._add_error(
                ErrorRecord(
                    code="tool_queue_full",
                    message=f"too many tool calls in flight; {call.name} not run",
                    event_type="tool",
                    t_s=t - self._run_t0,
                ),
                turn,
            )

    def _on_response_done(self: Session, event: Any, t: float, turn: Turn | None) -> None:
        r = event.response
        rid = r.id
        status = r.status or "completed"
        self._link_progress = True
        if self._barge is not None and self._barge[1] == rid:
            barger = self._barge[0]
            stop = t if status == "cancelled" else (self._barge_last_delta or t)
            barger.timer.mark_barge_in_stop(stop)
            self._barge = None
        error = getattr(r.status_details, "error", None) if r.status_details else None
        if status == "failed" and error is not None:
            code = getattr(error, "code", None)
            self._add_error(
                ErrorRecord(
                    code=code,
                    message=getattr(error, "message", None) or "",
                    event_type="response.done",
                    t_s=t - self._run_t0,
                ),
                turn,
            )
            if is_fatal_code(code):
                self._fatal_seen = True
                self._fail(SessionFailure(f"response failed: {code}: {error.message}"))
        if turn is None or turn.status != "open":
            return
        resp = self.state.responses.get(rid)
        if (
            resp is not None
            and resp.function_calls
            and self.spec.tools is not None
            and status == "completed"
        ):
            batch = self._batches.get(rid)
            if batch is not None:
                batch.response_done = True
                self._maybe_followup(rid)
                return
        if turn.response_ids and rid != turn.response_ids[-1]:
            return  # an earlier response of this turn; a later one decides
        mapped = {"completed": "completed", "incomplete": "completed", "cancelled": "interrupted"}
        final = mapped.get(status, "failed")
        self._finish_turn(turn, final, turn.timer.status_reason, t)  # type: ignore[arg-type]
