"""``SessionCore``: everything a session knows, changed synchronously, with no I/O.

It owns the conversation state, the turn book, the simulated playback, the waiters of
driver calls, the utterances being spoken, the event subscriptions, the greeting, and
the session's counters. The link feeds it (:meth:`SessionCore.on_frame` for every received text
frame, :meth:`SessionCore.on_sent` for every event written); the audio-in task marks
the plan of a spoken turn (:meth:`SessionCore.on_planned`).

Audible latency: for each response's audio the core feeds the leading deltas to an
:class:`~.audible.OnsetDetector` until the first audible sample is found (decoding
stops there: the rest of the answer costs one dict lookup per delta), asks the
playback when that sample plays, and marks it on the turn (``ttfa_ms``) or on the
greeting (``greeting_ms``); every later chunk of an answer that finds the playback run
dry adds the silent time to the turn's ``playback_underrun_ms``. It never awaits: work that
must send is put on a bounded channel with ``send_nowait``: tool calls on ``calls``
(the tool task), truncate / cancel / follow-up ``response.create`` on ``actions`` (the
effects task). When it decides the session cannot go on (a fatal server error, too
many undecodable frames) it calls ``stop(failure)``; the actor ends the session.

:meth:`SessionCore.finish` and :meth:`SessionCore.release` end the session's state:
every open turn is finished and everything anyone can await (waiters, utterances,
subscriptions) is released, so no driver call can outlive its session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.metrics.failure import Failure
from orchestrator.metrics.histogram import LogHistogram
from orchestrator.metrics.records import ErrorRecord

from .audible import OnsetDetector
from .book import TurnBook
from .errors import LinkLost, RequestRejected
from .greeting import Greeting
from .interrupt import plan_cut, server_interrupts, server_vad
from .messages import Action, FollowUp, Out, ToolJob, Utterance
from .playback import PlaybackClock
from .reconnect import is_fatal_code
from .spec import SessionSpec
from .state import ConversationState
from .subscription import Subscription
from .transcribe import on_transcription_completed, on_transcription_failed
from .turns import Turn, TurnStatus
from .waiters import Waiter

__all__ = ["SessionCore"]

log = logging.getLogger(__name__)

Status = Literal["completed", "failed", "cancelled"]


@attrs.define(eq=False)
class _Batch:
    """Function calls of one response: outputs still to send, response done."""

    turn: Turn
    pending: int = 0
    response_done: bool = False


@attrs.define(slots=True, eq=False)
class _Answer:
    """The audio of one response so far: who gets its marks (``turn``; None: the
    greeting, or nobody when ``onset`` is None from the start), the item being scanned
    and its onset detector (None once the first audible sample was found)."""

    turn: Turn | None
    item_id: str
    onset: OnsetDetector | None


class SessionCore:
    """See the module docstring.

    Public state: ``spec``, ``state``, ``playback``, ``book``, ``configs`` (the session
    configs sent on every connection, in order), ``epoch`` (the connection generation:
    +1 when a connection is lost), counters (``events_received``, ``protocol_errors``,
    ``errors_total``, ``frames_dropped``, ``idle_event_counts``), ``session_errors``
    (errors outside any turn), ``lateness`` (bounded histogram of every audio frame's
    pacer lateness), ``fatal`` (a server failure after which reconnecting cannot help),
    ``expires_deadline`` (the server's ``expires_at`` on the trio clock),
    ``link_progress`` (a response finished on the current connection), ``greeting``
    (the assistant speaking first: :class:`~.greeting.Greeting`), ``ready_at`` (trio
    time the first connection became ready; set by the link).
    """

    def __init__(
        self,
        spec: SessionSpec,
        *,
        calls: trio.MemorySendChannel[ToolJob],
        actions: trio.MemorySendChannel[Action],
        stop: Callable[[Failure], None],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.dialect = spec.wire_dialect
        self.state = ConversationState()
        self.playback = PlaybackClock(start_delay=spec.playback_delay)
        self.book = TurnBook(
            state=self.state,
            session_id=spec.session_id,
            run_t0=0.0,
            server_mode=lambda: "audio" if self.server_vad() else "text",
            on_turn=spec.on_turn,
            unprompted=self._unprompted,
            scenario=spec.label,
            tags=dict(spec.tags) or None,
        )
        self.configs: list[Any] = []
        if spec.config is not None:
            config = spec.config
            if spec.tools is not None and spec.tools.tools and config.tools is None:
                config = attrs.evolve(config, tools=spec.tools.function_tools())
            self.configs.append(config)
        self.epoch = 0
        self.closing = False
        self.events_received = 0
        self.protocol_errors = 0
        self.errors_total = 0
        self.frames_dropped = 0
        self.session_errors: list[ErrorRecord] = []
        self.idle_event_counts: dict[str, int] = {}
        #: the last ``rate_limits.updated``, flat: ``tokens_remaining``, ``tokens_limit``,
        #: ``tokens_reset_s`` (and ``requests_*``); ``rate_limited``: refused responses
        self.rate_limits: dict[str, float] = {}
        self.rate_limited = 0
        #: with a rate-limit observer: set when the ``rate_limits.updated`` that follows a
        #: ``response.done`` (GA) arrives; ``close`` waits briefly for it
        self.rate_limits_pending: trio.Event | None = None
        self._rate_limits_seen = False
        self.lateness = LogHistogram()
        self.fatal: Failure | None = None
        self.expires_deadline: float | None = None
        self.link_progress = False
        self.session_created = trio.Event()
        self.greeting = Greeting()
        self.ready_at: float | None = None
        self.tail_stop: trio.Event | None = None  # the utterance waiting for speech_stopped
        self._calls = calls
        self._actions = actions
        self._stop = stop
        self._wall_clock = wall_clock
        self._waiters: list[Waiter] = []
        self._utterances: set[Utterance] = set()
        self._subs: list[Subscription] = []
        self._dropped_closed = 0
        self._batches: dict[str, _Batch] = {}
        self._barge: tuple[Turn, str] | None = None
        self._barge_last_delta: float | None = None
        self._last_audio_at: float | None = None
        self._answers: dict[str, _Answer] = {}
        self._quiet = True  # nothing answered, committed or added yet on this connection

    # ================================================================ inputs
    def on_frame(self, text: str, t: float) -> None:
        """One text frame received at ``t``: decode it and apply it (or count it as a
        protocol error; too many of them fail the session)."""
        try:
            event = P.decode_server_event(text, self.dialect)
        except P.ProtocolError as exc:
            self._on_protocol_error(exc, t)
            return
        self.on_event(event, t)

    def on_event(self, event: Any, t: float) -> None:
        """Everything the session does with one decoded server event (synchronous)."""
        self.events_received += 1
        self.state.apply(event)
        turn = self.book.route(event, t)
        if turn is not None:
            turn.timer.on_event(event, t)
        else:
            counts = self.idle_event_counts
            counts[event.type] = counts.get(event.type, 0) + 1
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, t, turn)
        if self._waiters:
            for waiter in self._waiters:
                if waiter.result is None and waiter.error is None and waiter.match(event):
                    waiter.result = event
                    waiter.event.set()
        if self._subs:
            is_audio = type(event) is P.ResponseOutputAudioDelta
            for sub in self._subs:
                sub.offer(event, is_audio)

    def on_sent(self, out: Out, t: float) -> None:
        """``out`` was written to the socket at ``t``: stamp lateness or turn anchors."""
        turn = out.turn
        if out.audio:
            if out.planned is not None:
                late = (t - out.planned) * 1000.0
                self.lateness.add(late)
                if turn is not None:
                    turn.timer.add_lateness(late)
            return
        if turn is not None:
            turn.timer.on_sent(out.event, t)

    def on_planned(self, turn: Turn, speech_start: float, speech_end: float | None) -> None:
        """The audio-in task planned ``turn``'s speech: its first and last speech frame
        are due at these trio times (the anchors of ``voice_to_voice_ms``)."""
        turn.timer.planned_speech_start = speech_start
        if speech_end is not None:
            turn.timer.planned_speech_end = speech_end

    # ================================================================ queries
    def server_vad(self) -> bool:
        """True when the server ends user turns (server or semantic VAD)."""
        return server_vad(self.state.session, self.configs)

    def input_format_source(self) -> Any:
        """The session config that says the input audio format (server's, else ours)."""
        return self.state.session or (self.configs[-1] if self.configs else None)

    @property
    def dropped_notifications(self) -> int:
        return sum(s.dropped_total for s in self._subs) + self._dropped_closed

    # ================================================================ requests
    def add_waiter(self, waiter: Waiter) -> None:
        self._waiters.append(waiter)

    def remove_waiter(self, waiter: Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def add_utterance(self, utt: Utterance) -> None:
        """``utt`` is queued for the audio-in task; it is failed by :meth:`release` if
        the session ends first."""
        self._utterances.add(utt)

    def utterance_done(self, utt: Utterance) -> None:
        """The audio-in task queued ``utt``'s last frame."""
        self._utterances.discard(utt)
        utt.finish()

    def response_create(self, turn: Turn, params: Any) -> Any:
        """A ``response.create`` for ``turn``, its claim registered (send it next)."""
        event = P.ResponseCreate(response=params, event_id=P.new_id("event_"))
        self.book.claim(event.event_id, turn)
        return event

    def add_subscription(self, sub: Subscription) -> None:
        self._subs.append(sub)

    def remove_subscription(self, sub: Subscription) -> None:
        self._subs.remove(sub)
        self._dropped_closed += sub.dropped_total
        sub.close()

    # ================================================================ link
    def link_started(self) -> None:
        """A fresh connection is open: nothing has been heard on it yet."""
        self.session_created = trio.Event()
        self.link_progress = False
        self._quiet = True

    def link_lost(self, reason: str, t: float, failure: Failure | None, was_ready: bool) -> None:
        """The connection is gone at ``t``. Per-connection state is dropped; open turns
        fail with ``failure`` (None: a planned move, only turns with a response in flight
        fail); waiting requests fail with ``LinkLost`` (``wait_for`` observers keep
        watching the next connection). A gap without connection starts when a ready
        connection is lost."""
        self.epoch += 1
        self.expires_deadline = None
        self.state.reset_connection()
        self._playback_stopped(t)
        self.playback.reset()
        self._answers.clear()
        if self.greeting.response_id is not None:
            self.greeting.release()  # started on this connection, will never finish
        self.book.forget_connection()
        if was_ready and self.book.gap_start is None:
            self.book.gap_start = t
        self._batches.clear()
        self._barge = None
        if self.tail_stop is not None:
            self.tail_stop.set()
        for turn in self.book.open_turns():
            if failure is not None:
                turn.timer.add_error(
                    ErrorRecord(
                        code="connection_lost",
                        message=reason,
                        event_type="transport",
                        t_s=t - self.book.run_t0,
                    )
                )
                self.book.finish(turn, "failed", f"connection lost: {reason}", t, failure)
            elif turn.response_ids:
                self.book.finish(turn, "failed", reason, t)
        for waiter in list(self._waiters):
            if waiter.event_type == "wait_for":
                continue
            waiter.error = LinkLost(f"connection lost while waiting for a reply: {reason}")
            waiter.event.set()

    def link_restored(self, t: float) -> float:
        """A fresh connection is ready at ``t`` after a loss: count the gap on the open
        turns and return it (ms)."""
        start = self.book.gap_start
        self.book.gap_start = None
        if start is None:
            return 0.0
        for turn in self.book.open_turns():
            turn.timer.add_gap(start, t)
        return (t - start) * 1000.0

    # ================================================================ barge-in
    def interrupt(self, t: float, *, by_server: bool) -> None:
        """The user talks over the assistant at ``t``: stop playback, truncate what was
        not heard, cancel the response unless the server will (see :mod:`.interrupt`)."""
        cur = self.book.current
        barging = cur is not None and cur.timer.planned_barge_in is not None
        cut, target = plan_cut(
            self.state,
            self.playback,
            t,
            cancel=not (by_server and server_interrupts(self.state.session)),
        )
        if barging and cur is not None and cur.interrupts is None and target is not None:
            cur.interrupts = target
            resp = self.state.responses.get(target)
            if resp is not None and resp.done:
                last_at = self._last_audio_at
                audio_was_target = self.state.audio_response_id == target
                cur.timer.mark_barge_in_stop(
                    last_at if last_at is not None and audio_was_target else t
                )
            else:
                self._barge = (cur, target)
                self._barge_last_delta = None
        self._playback_stopped(t)
        if cut is not None:
            self.act(attrs.evolve(cut, turn=cur), cur, t)

    # ================================================================ tools
    def tool_output_sent(self, job: ToolJob) -> None:
        """The tool task sent ``job``'s output: request the follow-up response once the
        response is done and all its outputs are out."""
        if job.epoch != self.epoch:
            return
        rid = job.call.response_id or ""
        batch = self._batches.get(rid)
        if batch is not None:
            batch.pending -= 1
            self._maybe_follow_up(rid)

    def _maybe_follow_up(self, rid: str) -> None:
        batch = self._batches.get(rid)
        if batch is None or not batch.response_done or batch.pending:
            return
        del self._batches[rid]
        if batch.turn.status == "open" and not self.closing:
            self.act(FollowUp(batch.turn), batch.turn, None)

    # ================================================================ errors
    def add_error(self, record: ErrorRecord, turn: Turn | None) -> None:
        """File an error on ``turn`` when open, else on the session."""
        self.errors_total += 1
        if record.code == "rate_limit_exceeded":
            self.rate_limited += 1
            if self.spec.rate_limits is not None:
                t = self.book.run_t0 + (record.t_s or 0.0)
                self.spec.rate_limits.refused(record.message, t)
        if turn is not None and turn.status == "open":
            turn.timer.add_error(record)
        else:
            self.session_errors.append(record)

    def _error(self, code: str | None, message: str, source: str, t: float) -> ErrorRecord:
        return ErrorRecord(code=code, message=message, event_type=source, t_s=t - self.book.run_t0)

    def act(self, action: Action, turn: Turn | None, t: float | None) -> None:
        """Hand ``action`` to the effects task (or file an error when it cannot take it)."""
        try:
            self._actions.send_nowait(action)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            when = trio.current_time() if t is None else t
            message = f"too many pending actions; {type(action).__name__} not done"
            self.add_error(self._error("action_queue_full", message, "client", when), turn)

    def _on_protocol_error(self, exc: P.ProtocolError, t: float) -> None:
        self.protocol_errors += 1
        record = ErrorRecord(
            code="protocol_error",
            message=str(exc)[:500],
            event_type=exc.event_type,
            t_s=t - self.book.run_t0,
        )
        self.add_error(record, self.book.current)
        limit = self.spec.max_protocol_errors
        if self.protocol_errors > limit:
            self._stop(
                Failure(
                    type="SessionFailure",
                    message=f"{self.protocol_errors} undecodable server events "
                    f"(limit {limit}); last: {exc}"[:500],
                    where="receive",
                )
            )

    # ================================================================ handlers
    def _on_error(self, event: Any, t: float, turn: Turn | None) -> None:
        err = event.error
        code = err.code
        eid = err.event_id
        if eid is not None:
            for waiter in self._waiters:
                if waiter.event_id == eid and waiter.result is None:
                    waiter.error = RequestRejected(waiter.event_type, code, err.message)
                    waiter.event.set()
            self.book.drop_claim(eid)
        if code == "response_cancel_not_active":
            return  # we only cancel when a response looked active: a benign race
        if code == "conversation_already_has_active_response" and eid is None:
            self.book.drop_newest_claim()
        self.add_error(self._error(code, err.message or "", "error", t), turn)
        if is_fatal_code(code) or err.type == "authentication_error":
            self._fatal(f"{err.type}.{code}: {err.message}", code)

    def _fatal(self, message: str, code: str | None = None) -> None:
        failure = Failure(type="ServerError", message=message[:500], where="server", code=code)
        if self.fatal is None:
            self.fatal = failure
        self._stop(failure)

    def _on_rate_limits(self, event: Any, t: float, turn: Turn | None) -> None:
        self._rate_limits_seen = True
        if self.rate_limits_pending is not None:
            self.rate_limits_pending.set()
            self.rate_limits_pending = None
        for limit in event.rate_limits:
            for key, value in (
                ("limit", limit.limit),
                ("remaining", limit.remaining),
                ("reset_s", limit.reset_seconds),
            ):
                if limit.name and value is not None:
                    self.rate_limits[f"{limit.name}_{key}"] = value
        if self.spec.rate_limits is not None:
            self.spec.rate_limits.update(event.rate_limits, t)

    def _on_session(self, event: Any, t: float, turn: Turn | None) -> None:
        if type(event) is P.SessionCreated:
            self.session_created.set()
        expires = self.state.expires_at
        if expires is not None:
            # on the trio clock, once: the wall clock is read only here
            self.expires_deadline = t + (expires - self._wall_clock())

    def _on_speech_started(self, event: Any, t: float, turn: Turn | None) -> None:
        self._on_committed(event, t, turn)  # the same user item id
        if self.playback.playing(t) or self.state.active_response_id is not None:
            self.interrupt(t, by_server=True)

    def _on_speech_stopped(self, event: Any, t: float, turn: Turn | None) -> None:
        self._end_quiet()
        if self.tail_stop is not None:
            self.tail_stop.set()

    def _on_committed(self, event: Any, t: float, turn: Turn | None) -> None:
        if type(event) is P.InputAudioBufferCommitted:
            self._end_quiet()
        if turn is not None and turn.user_item_id is None and turn.mode != "text":
            turn.user_item_id = event.item_id

    def _on_transcription_completed(self, event: Any, t: float, turn: Turn | None) -> None:
        on_transcription_completed(self.state, self.book, event, t, turn)

    def _on_transcription_failed(self, event: Any, t: float, turn: Turn | None) -> None:
        on_transcription_failed(self.state, self.book, event, t, turn)

    def _on_audio_delta(self, event: Any, t: float, turn: Turn | None) -> None:
        state = self.state
        ms = state.last_delta_bytes / state.bytes_per_ms  # counted by the state
        dry_ms = self.playback.on_audio(event.item_id, ms, t)
        self._last_audio_at = t
        rid = event.response_id
        if self._barge is not None and self._barge[1] == rid:
            self._barge_last_delta = t
        answer = self._answers.get(rid)
        if answer is None:
            answer = self._answers[rid] = self._new_answer(rid, event.item_id, turn)
        elif dry_ms > 0.0 and answer.turn is not None:
            answer.turn.timer.add_underrun(dry_ms)
        if answer.onset is not None:
            self._listen(answer, event)

    def _new_answer(self, rid: str, item_id: str, turn: Turn | None) -> _Answer:
        """The first audio of response ``rid``: scan it for its onset when a turn or the
        greeting wants it."""
        wanted = turn is not None or rid == self.greeting.response_id
        return _Answer(turn=turn, item_id=item_id, onset=self._detector() if wanted else None)

    def _detector(self) -> OnsetDetector:
        state = self.state
        return OnsetDetector(state.output_rate, self.spec.audible_dbfs, state.output_codec)

    def _listen(self, answer: _Answer, event: Any) -> None:
        """Feed one delta to the answer's onset detector; once the first audible sample
        is in, mark when the playback plays it (nothing when it never plays: muted)."""
        if event.item_id != answer.item_id:  # a further audio item: a stream of its own
            answer.item_id = event.item_id
            answer.onset = self._detector()
        assert answer.onset is not None
        found = answer.onset.feed_delta(event.delta)
        if found is None:
            return
        answer.onset = None
        at = self.playback.time_at(answer.item_id, found * 1000.0 / self.state.output_rate)
        if at is None:
            return
        if answer.turn is not None:
            answer.turn.timer.mark_audible(at)
        else:
            self.greeting.mark_audible(at)

    def _playback_stopped(self, t: float) -> None:
        """The playback stopped (or was dropped) at ``t``: audible marks due later were
        never heard; the answers received so far are muted, so their onset scans stop
        (no more decoding of deltas that will never play)."""
        for turn in self.book.open_turns():
            turn.timer.playback_stopped(t)
        self.greeting.playback_stopped(t)
        for answer in self._answers.values():
            answer.onset = None

    # ================================================================ greeting
    def _unprompted(self, rid: str) -> bool:
        """Asked by the book about a response nobody claimed: the first response of a
        connection, in a still empty conversation, belongs to no turn (the assistant
        speaks first); on the first connection it is the greeting."""
        if not self._quiet:
            return False
        self._quiet = False
        self.greeting.unprompted(rid)
        return True

    def _end_quiet(self) -> None:
        """A response was created, user input committed or an item added on this
        connection: an unclaimed response is an answer from now on."""
        if self._quiet:
            self._quiet = False
            self.greeting.close()

    def _on_response_created(self, event: Any, t: float, turn: Turn | None) -> None:
        self._rate_limits_seen = False  # beta: the update follows response.created
        self._end_quiet()

    def _on_item_added(self, event: Any, t: float, turn: Turn | None) -> None:
        # the conversation has content (seeded history, a message); on a later connection
        # the items are our own replay of the conversation, which an agent greets anyway.
        # An MCP server's tool listing is the server's bookkeeping, not conversation.
        if self.epoch == 0 and getattr(event.item, "type", None) != "mcp_list_tools":
            self._end_quiet()

    def _on_arguments_done(self, event: Any, t: float, turn: Turn | None) -> None:
        self._queue_call(event.response_id, event.call_id, t, turn)

    def _on_output_item_done(self, event: Any, t: float, turn: Turn | None) -> None:
        # an MCP approval request is answered like a function call (see ``state``)
        call = self.state.calls_in_flight.get(getattr(event.item, "id", None) or "")
        if call is not None and call.kind == "mcp_approval":
            self._queue_call(event.response_id, call.call_id, t, turn)

    def _on_mcp_call(self, event: Any, t: float, turn: Turn | None) -> None:
        # the events name only the item: the turn is its response's, not whichever is
        # current (a turn opened while the call ran must not take its end)
        call = self.state.mcp_by_item.get(event.item_id)
        if call is not None:
            owner = self.book.turn_of(call.response_id)
            turn = owner if owner is not None and owner.status == "open" else None
        if turn is not None:
            turn.mcp_call_event(event, t)

    def _queue_call(self, rid: str, call_id: str, t: float, turn: Turn | None) -> None:
        """Hand call ``call_id`` of response ``rid`` to the tool task."""
        if self.spec.tools is None or turn is None:
            return
        batch = self._batches.get(rid)
        if batch is None:
            batch = self._batches[rid] = _Batch(turn=turn)
        call = self.state.calls_in_flight.get(call_id)
        if call is None:
            return
        try:
            self._calls.send_nowait(ToolJob(call, turn, self.epoch))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            message = f"too many tool calls in flight; {call.name} not run"
            self.add_error(self._error("tool_queue_full", message, "tool", t), turn)
        else:
            batch.pending += 1

    def _on_response_done(self, event: Any, t: float, turn: Turn | None) -> None:
        r = event.response
        if self.spec.rate_limits is not None and not self._rate_limits_seen:
            self.rate_limits_pending = trio.Event()
        rid = r.id
        status = r.status or "completed"
        self.link_progress = True
        self._answers.pop(rid, None)
        if rid == self.greeting.response_id:
            self.greeting.finished()
        if self._barge is not None and self._barge[1] == rid:
            barger = self._barge[0]
            stop = t if status == "cancelled" else (self._barge_last_delta or t)
            barger.timer.mark_barge_in_stop(stop)
            self._barge = None
        error = getattr(r.status_details, "error", None) if r.status_details else None
        if status == "failed" and error is not None:
            code = getattr(error, "code", None)
            message = getattr(error, "message", None) or ""
            self.add_error(self._error(code, message, "response.done", t), turn)
            if is_fatal_code(code):
                self._fatal(f"response failed: {code}: {message}", code)
        if turn is None or turn.status != "open":
            return
        resp = self.state.responses.get(rid)
        if resp is not None and resp.function_calls and status == "completed":
            batch = self._batches.get(rid)
            if batch is not None:
                batch.response_done = True
                self._maybe_follow_up(rid)
                return
        if turn.response_ids and rid != turn.response_ids[-1]:
            return  # an earlier response of this turn; a later one decides
        mapped = {"completed": "completed", "incomplete": "completed", "cancelled": "interrupted"}
        final = mapped.get(status, "failed")
        self.book.finish(turn, final, turn.timer.status_reason, t)  # type: ignore[arg-type]

    # ================================================================ the end
    def finish(self, status: Status, failure: Failure | None, t: float) -> None:
        """The session ended at ``t``: finish every open turn (``failed`` with the
        session's failure, else ``cancelled``)."""
        self.closing = True
        reason = str(failure) if failure is not None else f"session {status}"
        for turn in self.book.open_turns():
            turn_status: TurnStatus = "failed" if status == "failed" else "cancelled"
            self.book.finish(turn, turn_status, reason, t, failure)

    def release(self, ended: BaseException) -> None:
        """Wake everything that may be waiting: waiters and utterances fail with
        ``ended`` (``SessionEnded``), subscriptions end, the channels to the tool and
        effects tasks close. Idempotent."""
        for waiter in list(self._waiters):
            waiter.error = ended
            waiter.event.set()
        for utt in list(self._utterances):
            utt.finish(ended)
        self._utterances.clear()
        for sub in self._subs:
            sub.close()
        self.greeting.release()
        if self.rate_limits_pending is not None:  # no update comes on an ended session
            self.rate_limits_pending.set()
            self.rate_limits_pending = None
        if self.tail_stop is not None:
            self.tail_stop.set()
        self._calls.close()
        self._actions.close()


_sc = SessionCore
#: What the core does beyond state and timing for the few events it reacts to (one
#: table for every session: no per-session bound methods).
_HANDLERS: dict[type, Callable[[SessionCore, Any, float, Turn | None], None]] = {
    P.ErrorEvent: _sc._on_error,
    P.SessionCreated: _sc._on_session,
    P.SessionUpdated: _sc._on_session,
    P.InputAudioBufferSpeechStarted: _sc._on_speech_started,
    P.InputAudioBufferSpeechStopped: _sc._on_speech_stopped,
    P.InputAudioBufferCommitted: _sc._on_committed,
    P.ResponseCreated: _sc._on_response_created,
    P.ConversationItemAdded: _sc._on_item_added,
    P.ConversationItemCreated: _sc._on_item_added,
    P.ResponseOutputAudioDelta: _sc._on_audio_delta,
    P.ResponseFunctionCallArgumentsDone: _sc._on_arguments_done,
    P.ResponseOutputItemDone: _sc._on_output_item_done,
    P.ResponseMcpCallInProgress: _sc._on_mcp_call,
    P.ResponseMcpCallCompleted: _sc._on_mcp_call,
    P.ResponseMcpCallFailed: _sc._on_mcp_call,
    P.ResponseDone: _sc._on_response_done,
    P.RateLimitsUpdated: _sc._on_rate_limits,
    P.ConversationItemInputAudioTranscriptionCompleted: _sc._on_transcription_completed,
    P.ConversationItemInputAudioTranscriptionFailed: _sc._on_transcription_failed,
}
