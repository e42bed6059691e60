"""The session actor: one conversation, one nursery, parts that own their state.

::

     driver ─► utter ─► audio-in ─┐
     driver ──────────────────────┼─► out ─► link ─► websocket
     SessionCore ─► calls ─► tools ┤
     SessionCore ─► actions ─► effects┘
     websocket ─► link ─► SessionCore.on_frame (decode, state, timing marks, waiters,
                                                subscribers)

- :class:`~.core.SessionCore` (synchronous, no I/O): conversation state, turn book,
  playback clock, waiters, utterances, subscriptions, counters;
- :class:`~.audio_in.AudioIn`, :class:`~.tool_task.ToolTask`, :class:`~.effects.Effects`:
  one task each, each with its own ``clone()`` of ``out``;
- :class:`~.link.Link`: connections, reconnects, rollover; returns one ``LinkOutcome``;
- :class:`Session` (this module): the public driver API, the nursery, the channels, and
  the one value that says how the session ended (:class:`SessionEnd`).

Every driver method either completes or raises; none takes a timeout (wrap calls in
``trio.fail_after`` / ``move_on_after``). Common promises:

- **Cancellation**: a cancelled call raises ``Cancelled``. If its client event was
  already queued it is still sent and the server still acts on it; the session itself
  is unaffected (cancelling a ``say_*`` call does not cancel the turn: ``turn.wait()``
  later still works; a manual-commit audio turn cancelled before its commit stays
  uncommitted and ends when the next turn starts).
- **Turn checks**: ``say_*`` / ``start_*_turn`` take ``check=fn`` (``fn(turn) ->
  Sequence[str]``), run once when the turn is finalized, before its record is emitted;
  its failure messages land on ``turn.expectation_failures`` and as
  ``expectation_failed`` errors on the record. Once the turn is opened it runs even if
  the call that started it is cancelled, and for every final status; an exception in it
  becomes a failure message. See :class:`~orchestrator.session.turns.Turn`.
- **Errors**: a server ``error`` echoing the request's ``event_id`` raises
  :class:`RequestRejected`; a connection drop while waiting raises :class:`LinkLost`; a
  call on (or during the end of) a finished session raises :class:`SessionEnded`.
- **The end**: when the session ends, for whatever reason, every call in progress
  returns or raises (waiters, turns, utterances and subscriptions are all released).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.metrics.failure import Failure, first_error
from orchestrator.metrics.records import USAGE_FIELDS, SessionResult, TurnRecord

from .audio_in import AudioIn
from .core import SessionCore
from .effects import Effects
from .errors import RequestRejected, SessionEnded
from .link import Link
from .messages import Action, LocalInterrupt, Out, ToolJob, Utterance
from .pacer import SleepPacer
from .playback import PlaybackClock
from .sources import as_source
from .spec import SessionSpec
from .state import ConversationState, text_message
from .subscription import Subscription
from .tool_task import ToolTask
from .transcribe import session_update
from .turns import Turn, TurnCheck
from .waiters import Waiter, await_waiter

__all__ = ["Session", "SessionEnd", "open_session", "run_session"]

log = logging.getLogger(__name__)

_OUT_CAPACITY = 64
#: how long ``close`` waits for the ``rate_limits.updated`` after a last ``response.done``
RATE_LIMITS_LINGER_S = 0.25
_UTTER_CAPACITY = 4
_CALLS_CAPACITY = 32
_ACTIONS_CAPACITY = 32

Status = Literal["completed", "failed", "cancelled"]


@attrs.frozen
class SessionEnd:
    """How a session ended: ``status`` and, when it failed, the ``failure``."""

    status: Status
    failure: Failure | None = None


class Session:
    """One conversation actor. Create it with :func:`open_session` or start
    :func:`run_session` in a nursery; drive it with its methods.

    Public state: ``spec``, ``state`` (:class:`ConversationState`), ``playback``
    (:class:`PlaybackClock`), ``turns`` (every :class:`Turn`), ``result`` (the
    :class:`SessionResult` once ended, else None), ``end`` (the :class:`SessionEnd`
    once decided), counters ``events_received``, ``reconnects``, ``rollovers``,
    ``protocol_errors``, ``frames_dropped`` (stale input audio frames not sent after a
    reconnect; ``audio_frames_dropped`` in the result), ``idle_event_counts``.
    """

    def __init__(self, spec: SessionSpec) -> None:
        self.spec = spec
        self.result: SessionResult | None = None
        self.end: SessionEnd | None = None
        out_tx, out_rx = trio.open_memory_channel[Out](_OUT_CAPACITY)
        utter_tx, utter_rx = trio.open_memory_channel[Utterance](_UTTER_CAPACITY)
        calls_tx, calls_rx = trio.open_memory_channel[ToolJob](_CALLS_CAPACITY)
        actions_tx, actions_rx = trio.open_memory_channel[Action](_ACTIONS_CAPACITY)
        core = self._core = SessionCore(spec, calls=calls_tx, actions=actions_tx, stop=self._fail)
        pacer = spec.pacing.pacer or SleepPacer()
        self._audio = AudioIn(core, utter_rx, out_tx.clone(), pacer)
        self._tools = ToolTask(core, spec.tools, calls_rx, out_tx.clone())
        self._effects = Effects(core, actions_rx, out_tx.clone())
        self._link = Link(spec, core, out_rx, stop=self._fail)
        self._out = out_tx
        self._out_rx = out_rx
        self._utter = utter_tx
        self._run_scope = trio.CancelScope()
        self._driver_scope = trio.CancelScope()
        self._finished = trio.Event()
        self._task_status: Any = None
        self._t_start = 0.0
        self._planned = 0.0

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> ConversationState:
        return self._core.state

    @property
    def playback(self) -> PlaybackClock:
        return self._core.playback

    @property
    def turns(self) -> list[Turn]:
        return self._core.book.turns

    @property
    def turn_records(self) -> list[TurnRecord]:
        """Every turn's record so far, in order (final for finished turns)."""
        return [turn.record for turn in self.turns]

    @property
    def events_received(self) -> int:
        return self._core.events_received

    @property
    def protocol_errors(self) -> int:
        return self._core.protocol_errors

    @property
    def frames_dropped(self) -> int:
        return self._core.frames_dropped

    @property
    def idle_event_counts(self) -> dict[str, int]:
        return self._core.idle_event_counts

    @property
    def reconnects(self) -> int:
        return self._link.reconnects

    @property
    def rollovers(self) -> int:
        return self._link.rollovers

    # ================================================================ lifecycle
    async def run(
        self, *, task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED
    ) -> SessionResult:
        """Run the actor until it is closed, fails, or is cancelled; return its result.

        ``task_status.started(self)`` is called once the first connection is ready
        (configured), or when the session ends before that (then ``self.result`` says
        why), so ``await nursery.start(session.run)`` never hangs on a dead target.

        Resource handling: every task, channel and socket of the session is closed when
        this returns, and everything a driver may wait on is released. Error handling:
        connection, protocol and server failures end the session as data
        (``result.status == "failed"``, ``result.reason``, ``result.failure``), never as
        an exception; bugs in its tasks are recorded the same way. Cancellation: the
        result gets status ``cancelled`` (``failed`` if the session had failed, or was
        aborted with an error: see :meth:`abort`) and ``Cancelled`` always propagates.
        """
        spec = self.spec
        now = trio.current_time()
        self._t_start = now
        self._planned = spec.planned_start if spec.planned_start is not None else now
        self._core.book.run_t0 = spec.run_t0 if spec.run_t0 is not None else self._planned
        self._task_status = task_status
        try:
            with self._run_scope as scope:
                if spec.max_duration is not None:
                    scope.deadline = self._planned + spec.max_duration
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard, "audio-in", self._audio.run)
                    nursery.start_soon(self._guard, "tool", self._tools.run)
                    nursery.start_soon(self._guard, "effects", self._effects.run)
                    outcome = await self._link.run(self._planned, self._started)
                    nursery.cancel_scope.cancel()
                if outcome.failure is not None:
                    self._decide(SessionEnd("failed", outcome.failure))
            if scope.cancelled_caught and not self._core.closing:
                max_s = spec.max_duration
                self._decide(
                    SessionEnd(
                        "failed",
                        Failure(
                            type="MaxDurationExceeded",
                            message=f"session ran past max_duration={max_s}s",
                            where="session",
                        ),
                    )
                )
            self._decide(SessionEnd("completed"))
        except BaseException as exc:
            error = first_error(exc)
            if error is not None:
                log.debug("session %s crashed", spec.session_id, exc_info=error)
                self._decide(SessionEnd("failed", Failure.from_exception(error, "session")))
            else:
                # cancelled from outside: the result is final (failed if the session or
                # the caller's abort(cause) said so) and Cancelled is never swallowed
                self._decide(SessionEnd("cancelled"))
                self._finalize()
                raise
        finally:
            if self.result is None:
                self._finalize()
        assert self.result is not None
        return self.result

    async def close(self) -> None:
        """End the session normally: close the websocket (code 1000) and stop all tasks.
        Open turns end as ``cancelled``. Idempotent; returns when the actor has ended.

        Cancellation: if cancelled while waiting, the actor is stopped at once (its
        socket closed without handshake) and ``Cancelled`` propagates.
        """
        try:
            pending = self._core.rate_limits_pending
            if pending is not None and not self._finished.is_set():
                # the service sends it ~43 ms after response.done
                with trio.move_on_after(RATE_LIMITS_LINGER_S):
                    await pending.wait()
            self._core.closing = True
            self._link.close()
            await self._finished.wait()
        except trio.Cancelled:
            self.abort()
            raise

    def abort(self, cause: BaseException | None = None) -> None:
        """Stop the actor now (no close handshake).

        ``cause`` is why the caller gave up on the session (``open_session`` passes the
        exception leaving its block). If it is an error (an ``Exception``, or a group
        holding one: e.g. the driver raised), the result is ``failed`` with that error
        as its failure (the first one of a group; reason ``"TypeName: message"``).
        Otherwise (no cause, ``Cancelled``, ``KeyboardInterrupt``) the result is
        ``cancelled``. A session whose end was already decided keeps it."""
        error = first_error(cause) if cause is not None else None
        if error is not None:
            log.debug("session %s aborted by its driver", self.spec.session_id, exc_info=error)
            self._decide(SessionEnd("failed", Failure.from_exception(error, "driver")))
        else:
            self._decide(SessionEnd("cancelled"))
        self._core.closing = True
        self._run_scope.cancel()

    def _fail(self, failure: Failure) -> None:
        """A part decided the session cannot go on: end it as failed."""
        self._decide(SessionEnd("failed", failure))
        self._run_scope.cancel()

    def _decide(self, end: SessionEnd) -> None:
        if self.end is None and self.result is None:
            self.end = end

    async def _guard(self, where: str, task: Callable[[], Awaitable[None]]) -> None:
        """Run one of the session's tasks; a bug in it fails the session (with where it
        happened and its traceback) instead of escaping as an exception group."""
        try:
            await task()
        except Exception as exc:
            log.debug("session %s: %s task failed", self.spec.session_id, where, exc_info=exc)
            self._fail(Failure.from_exception(exc, where))

    def _started(self) -> None:
        status, self._task_status = self._task_status, None
        if status is not None:
            status.started(self)

    def _finalize(self) -> None:
        end = self.end or SessionEnd("cancelled")
        t = trio.current_time()
        self._core.finish(end.status, end.failure, t)
        self.result = self._build_result(end, t)
        ended = SessionEnded(self.result, self)
        self._core.release(ended)
        self._out.close()
        self._out_rx.close()
        self._utter.close()
        self._finished.set()
        if end.status != "completed":
            grace = t + self.spec.driver_grace
            self._driver_scope.deadline = min(self._driver_scope.deadline, grace)
        self._started()  # a session that ended before it was ready still starts

    def _build_result(self, end: SessionEnd, t: float) -> SessionResult:
        core, link = self._core, self._link
        totals: dict[str, int] = {}
        for turn in self.turns:
            for key, value in turn.timer.usage.items():
                totals[key] = totals.get(key, 0) + value
        usage = {key: totals.get(key) for key in USAGE_FIELDS}
        lateness = core.lateness
        run_t0 = core.book.run_t0
        return SessionResult(
            session_id=self.spec.session_id,
            status=end.status,
            reason=None if end.failure is None else str(end.failure),
            failure=end.failure,
            label=self.spec.label,
            scenario=self.spec.label,
            tags=dict(self.spec.tags) or None,
            attempt=self.spec.attempt,
            planned_start_s=self._planned - run_t0,
            late_start_ms=(self._t_start - self._planned) * 1000.0,
            connect_ms=link.connect_ms,
            session_ready_ms=link.session_ready_ms,
            t_end_s=t - run_t0,
            turns=len(self.turns),
            connect_attempts=link.connect_attempts,
            connect_failed=link.connect_failed,
            refused_by_status=dict(link.refused_by_status) or None,
            reconnects=link.reconnects,
            rollovers=link.rollovers,
            gap_ms_total=link.gap_ms_total,
            errors=core.errors_total,
            protocol_errors=core.protocol_errors,
            audio_frames_dropped=core.frames_dropped,
            events_received=core.events_received,
            notifications_dropped=core.dropped_notifications,
            greeting_ms=core.greeting.ms_after(core.ready_at),
            pacer_lateness_p50_ms=lateness.percentile(50),
            pacer_lateness_p99_ms=lateness.percentile(99),
            pacer_lateness_max_ms=lateness.max,
            rate_limited=core.rate_limited,
            rate_limits=dict(core.rate_limits) or None,
            **usage,
        )

    # ================================================================ plumbing
    def _check_alive(self) -> None:
        if self.result is not None:
            raise SessionEnded(self.result, self)

    def _ended(self) -> SessionEnded:
        return SessionEnded(self.result, self)

    async def _enqueue(self, event: Any, turn: Turn | None) -> None:
        try:
            await self._out.send(Out(event, turn))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._ended() from None

    async def _await_waiter(
        self, waiter: Waiter, send: Callable[[], Awaitable[object]] | None = None
    ) -> Any:
        """Register ``waiter``, run ``send`` (if any), wait for the waiter to be resolved
        and unregister it; raise its error or return its result. Cancellation: the waiter
        is unregistered; whatever ``send`` already sent stays sent."""
        self._check_alive()
        return await await_waiter(self._core, waiter, send)

    async def _request(
        self, event: Any, match: Callable[[Any], bool], turn: Turn | None = None
    ) -> Any:
        waiter = Waiter(match, event.event_id, event.type)
        return await self._await_waiter(waiter, lambda: self._enqueue(event, turn))

    async def _speak(self, utt: Utterance) -> None:
        """Queue ``utt`` for the audio-in task and wait until its last frame is queued."""
        self._check_alive()
        self._core.add_utterance(utt)
        try:
            await self._utter.send(utt)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._ended() from None
        await utt.wait()

    # ================================================================ configuration
    async def configure(self, config: Any) -> Any:
        """Send ``session.update`` with ``config`` (a ``SessionConfig``; partial configs
        merge server-side) and return the ``session`` of the ``session.updated`` answer.
        The config is re-sent after every reconnect."""
        event, answered = session_update(config, self._core.dialect)
        result = await self._request(event, answered)
        self._core.configs.append(config)
        return result.session

    # ================================================================ input
    async def send_audio(self, source: Any, *, start_at: float | None = None) -> None:
        """Stream ``source`` (an ``AudioSource``, WAV path or numpy array) to the input
        buffer on the pacing deadlines, starting at trio time ``start_at`` (default:
        now). Returns when the last frame is queued for sending. No commit, no turn."""
        await self._speak(
            Utterance(source=as_source(source), turn=None, start_at=start_at, tail=False)
        )

    async def send_text(self, text: str, *, role: str = "user", item_id: str | None = None) -> str:
        """Add a text message item (``input_text``; ``output_text`` for the assistant)
        and return its id once the server has added it. No response is requested."""
        item = text_message(role, text, item_id)
        event = P.ConversationItemCreate(item=item, event_id=P.new_id("event_"))
        await self._request(event, _added(item.id))
        return item.id

    async def seed_history(self, items: Iterable[Any]) -> list[str]:
        """Add prior conversation items in order: protocol items, or ``(role, text)``
        pairs. Returns their ids once the last one was added."""
        made = [
            text_message(it[0], it[1]) if isinstance(it, tuple) else _with_id(it) for it in items
        ]
        if not made:
            return []
        self._check_alive()
        for item in made[:-1]:
            await self._enqueue(P.ConversationItemCreate(item=item), None)
        last = made[-1]
        event = P.ConversationItemCreate(item=last, event_id=P.new_id("event_"))
        await self._request(event, _added(last.id))
        return [item.id for item in made]

    async def send_tool_output(self, call_id: str, output: str) -> str:
        """Send a ``function_call_output`` for ``call_id`` (for drivers that run tools
        themselves); returns the new item's id once added. No response is requested."""
        item = P.FunctionCallOutputItem(id=P.new_id("item_"), call_id=call_id, output=output)
        event = P.ConversationItemCreate(item=item, event_id=P.new_id("event_"))
        await self._request(event, _added(item.id))
        return item.id or ""

    async def commit(self) -> str:
        """Commit the input audio buffer; returns the user item id from
        ``input_audio_buffer.committed``."""
        event = P.InputAudioBufferCommit(event_id=P.new_id("event_"))
        result = await self._request(event, lambda ev: type(ev) is P.InputAudioBufferCommitted)
        return result.item_id

    async def clear_audio(self) -> None:
        """Discard the input audio buffer (waits for ``input_audio_buffer.cleared``)."""
        event = P.InputAudioBufferClear(event_id=P.new_id("event_"))
        await self._request(event, lambda ev: type(ev) is P.InputAudioBufferCleared)

    # ================================================================ responses
    async def create_response(self, params: Any = None) -> str:
        """Send ``response.create`` (``params``: ``ResponseParams`` overrides) and return
        the response id from ``response.created``. The response belongs to the open turn
        that has none yet, else to a new turn."""
        self._check_alive()
        book = self._core.book
        turn = book.waiting_turn() or book.open("text", None, trio.current_time())
        event = self._core.response_create(turn, params)
        result = await self._request(
            event,
            lambda ev: type(ev) is P.ResponseCreated and book.turn_of(ev.response.id) is turn,
            turn,
        )
        return result.response.id

    async def cancel_response(self) -> bool:
        """Cancel the active response, if there is one. Returns True once its
        ``response.done`` arrived, False when nothing was active (nothing is sent then,
        and a ``response_cancel_not_active`` race is tolerated)."""
        rid = self.state.active_response_id
        if rid is None:
            return False
        event = P.ResponseCancel(event_id=P.new_id("event_"))
        try:
            await self._request(
                event,
                lambda ev: type(ev) is P.ResponseDone and ev.response.id == rid,
                self._core.book.turn_of(rid),
            )
        except RequestRejected as exc:
            if exc.code == "response_cancel_not_active":
                return False
            raise
        return True

    # ================================================================ items
    async def truncate(self, item_id: str, audio_end_ms: int, *, content_index: int = 0) -> int:
        """Truncate an assistant audio item at ``audio_end_ms`` (sent as given; see
        ``state.truncate_point`` for a value the server cannot reject). Returns the
        ``audio_end_ms`` the server confirmed."""
        event = P.ConversationItemTruncate(
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=audio_end_ms,
            event_id=P.new_id("event_"),
        )
        result = await self._request(
            event, lambda ev: type(ev) is P.ConversationItemTruncated and ev.item_id == item_id
        )
        return result.audio_end_ms

    async def delete_item(self, item_id: str) -> None:
        """Delete an item; returns when ``conversation.item.deleted`` arrived."""
        event = P.ConversationItemDelete(item_id=item_id, event_id=P.new_id("event_"))
        await self._request(
            event, lambda ev: type(ev) is P.ConversationItemDeleted and ev.item_id == item_id
        )

    async def retrieve_item(self, item_id: str) -> Any:
        """The server's copy of an item (``conversation.item.retrieved``)."""
        event = P.ConversationItemRetrieve(item_id=item_id, event_id=P.new_id("event_"))
        result = await self._request(
            event,
            lambda ev: (
                type(ev) is P.ConversationItemRetrieved and getattr(ev.item, "id", None) == item_id
            ),
        )
        return result.item

    # ================================================================ observing
    async def wait_for_greeting(self, timeout: float) -> bool:  # noqa: ASYNC109 - a question, see below
        """Wait for the assistant to speak first: True once its unprompted first response
        (the greeting: the first response of the session, created before any request or
        committed user input of ours; it belongs to no turn) has finished
        (``response.done``) within ``timeout`` seconds; False when none came by then, when
        none can come any more (another response or the caller's input came first, the
        connection was lost mid-greeting) or when the session ends. On a session that
        already ended it answers at once. ``greeting_ms`` in the result says when the
        caller heard it. The caller may still be hearing it on return (the server sends
        audio faster than it plays): ``session.playback.ends_at`` says when it has played,
        and a spoken turn that starts earlier talks over it (a barge-in).

        ``timeout`` is part of the question (did the agent greet within it?), not a
        deadline on an operation: running out is an answer, never an error.

        Cancellation: raises ``Cancelled``; nothing is sent and nothing changes."""
        greeting = self._core.greeting
        with trio.move_on_after(timeout):
            await greeting.wait()
        return greeting.done

    async def wait_for(self, predicate: Callable[[Any], bool]) -> Any:
        """Wait for the next server event for which ``predicate(event)`` is true and
        return it. Only events received after the call count; waiting goes on across
        reconnects (no ``LinkLost``). The predicate runs on the receive path: keep it
        cheap and never let it raise."""
        return await self._await_waiter(Waiter(predicate, None, "wait_for"))

    @asynccontextmanager
    async def events(self, capacity: int | None = None) -> AsyncIterator[Subscription]:
        """Subscribe to every server event from now on (``async for ev in sub``).

        The receive path never waits for a subscriber: when the buffer (``capacity``,
        default ``spec.event_buffer``) is half full, audio deltas are dropped; when it is
        full, any event is dropped; both are counted (``sub.dropped_audio``,
        ``sub.dropped_other``). Iteration ends when the session ends. Leaving the block
        unsubscribes.
        """
        sub = Subscription(capacity or self.spec.event_buffer)
        if self.result is not None:
            sub.close()
        self._core.add_subscription(sub)
        try:
            yield sub
        finally:
            self._core.remove_subscription(sub)

    # ================================================================ turns
    async def say_text(
        self,
        text: str,
        *,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """One text turn: add a user ``input_text`` item, request a response, wait for
        the turn to finish (tool rounds included) and return it.

        ``check``: judged when the turn is finalized, before its record is emitted (see
        :class:`Turn`); its failures are in ``turn.expectation_failures`` on return.
        Cancellation: raises ``Cancelled``; the turn goes on and ``check`` still runs
        when it ends."""
        turn = await self.start_text_turn(text, response=response, label=label, check=check)
        return await turn.wait()

    async def start_text_turn(
        self,
        text: str,
        *,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """Like :meth:`say_text` but returns as soon as the request is queued."""
        self._check_alive()
        await self._maybe_rollover()
        core = self._core
        turn = core.book.open("text", label, trio.current_time(), user_text=text, check=check)
        item = text_message("user", text)
        turn.user_item_id = item.id
        await self._enqueue(P.ConversationItemCreate(item=item, event_id=P.new_id("event_")), turn)
        await self._enqueue(core.response_create(turn, response), turn)
        return turn

    async def say_audio(
        self,
        source: Any,
        *,
        commit: Literal["auto", "vad", "manual"] = "auto",
        barge_in_at_ms: float | None = None,
        during: Turn | None = None,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """One spoken turn; waits for it to finish and returns it. See
        :meth:`start_audio_turn` for the parameters.

        Cancellation: raises ``Cancelled``; the turn goes on (see the module docstring)
        and ``check`` still runs when it ends."""
        turn = await self.start_audio_turn(
            source,
            commit=commit,
            barge_in_at_ms=barge_in_at_ms,
            during=during,
            response=response,
            label=label,
            check=check,
        )
        return await turn.wait()

    async def start_audio_turn(
        self,
        source: Any,
        *,
        commit: Literal["auto", "vad", "manual"] = "auto",
        barge_in_at_ms: float | None = None,
        during: Turn | None = None,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """Start a spoken turn and return it once its audio is queued (and, without
        server VAD, committed and the response requested).

        ``commit``: ``"vad"`` lets the server's turn detection end the turn (silence keeps
        flowing after the source until ``speech_stopped``); ``"manual"`` commits and sends
        ``response.create`` (with ``response`` overrides) after the last frame; ``"auto"``
        picks ``vad`` when the session has server/semantic VAD.

        ``barge_in_at_ms``: start speaking when the simulated playback of the assistant
        audio of ``during`` (default: the latest turn) reaches that offset. That planned
        instant anchors ``barge_in_stop_ms``; the client then stops playback, truncates
        the assistant item at the played position (never past the audio received, never
        at 0) and cancels the response unless server VAD does.

        ``check``: ``fn(turn) -> Sequence[str]``, run once when the turn is finalized and
        before its record is emitted (see :class:`Turn`). The turn (and so the check) only
        exists once this call got past a barge-in wait and the rollover check: cancelled
        before that, no turn is opened and ``check`` never runs.

        If the session ends while the audio is being sent, raises :class:`SessionEnded`
        (the turn is finished by then, failed or cancelled).
        """
        self._check_alive()
        core = self._core
        src = as_source(source)
        vad = core.server_vad() if commit == "auto" else commit == "vad"
        start_at = None
        if barge_in_at_ms is not None:
            target = during if during is not None else core.book.current
            start_at = await self._barge_in_time(target, barge_in_at_ms)
        else:
            await self._maybe_rollover()
        turn = core.book.open("audio" if vad else "manual", label, trio.current_time(), check=check)
        if start_at is not None:
            turn.timer.planned_barge_in = start_at
            if not vad:
                core.act(LocalInterrupt(start_at), turn, None)
        await self._speak(Utterance(source=src, turn=turn, start_at=start_at, tail=vad))
        if not vad:
            event = P.InputAudioBufferCommit(event_id=P.new_id("event_"))
            committed = await self._request(
                event, lambda ev: type(ev) is P.InputAudioBufferCommitted, turn
            )
            turn.user_item_id = committed.item_id
            await self._enqueue(core.response_create(turn, response), turn)
        return turn

    # ================================================================ internals
    async def _barge_in_time(self, target: Turn | None, offset_ms: float) -> float:
        """When the playback of ``target``'s assistant audio reaches ``offset_ms``
        (waiting for that audio to arrive); the end of its audio if it is shorter."""
        while True:
            found = self._turn_audio_item(target)
            if found is not None:
                item_id, resp = found
                at = self.playback.time_at(item_id, offset_ms)
                if at is not None:
                    return at
                if resp.done:
                    end = self.playback.ends_at
                    return end if end is not None else trio.current_time()
            elif target is None or target.done:
                return trio.current_time()
            await self.wait_for(lambda ev: type(ev) in (P.ResponseOutputAudioDelta, P.ResponseDone))

    def _turn_audio_item(self, turn: Turn | None) -> tuple[str, Any] | None:
        if turn is None:
            return None
        found = self.state.output_items(turn.response_ids)
        return next(((st.id, resp) for resp, st in found if st.audio_bytes), None)

    async def _maybe_rollover(self) -> None:
        """At a turn boundary: move to a fresh connection if this one is too old or
        about to expire (``expires_at``, converted to the trio clock when it arrived),
        and wait until it is ready."""
        link = self._link
        started = link.started_at
        if started is None or not link.ready:
            return
        now = trio.current_time()
        spec = self.spec
        due = spec.rollover_after is not None and now - started >= spec.rollover_after
        deadline = self._core.expires_deadline
        if deadline is not None and now >= deadline - spec.expiry_margin:
            due = True
        if not due:
            return
        gen = link.ready_gen
        link.rollover()
        await link.wait_ready_after(gen)
        self._check_alive()


def _with_id(item: Any) -> Any:
    if getattr(item, "id", None):
        return item
    return attrs.evolve(item, id=P.new_id("item_"))


def _added(item_id: str | None) -> Callable[[Any], bool]:
    return lambda ev: (
        type(ev) is P.ConversationItemAdded and getattr(ev.item, "id", None) == item_id
    )


@asynccontextmanager
async def open_session(spec: SessionSpec) -> AsyncIterator[Session]:
    """Run a session actor for the duration of the block and yield its handle.

    Entering waits until the first connection is configured (or the session failed to
    start: then every driver call raises :class:`SessionEnded` and ``session.result``
    says why). Leaving the block normally closes the session (websocket close 1000);
    leaving it with an exception aborts it: the result is ``failed`` with that exception
    as its failure (the driver's error; see :meth:`Session.abort`) unless the session
    had failed first, and the exception propagates. ``SessionEnded`` raised by this
    session's own driver calls is suppressed at exit, so a failed session ends the block
    and its ``result`` holds status, reason and every turn record so far.

    The block is bounded by its session: once the session ended by itself (failed,
    ``max_duration``), code still running in the block ``spec.driver_grace`` seconds
    later is cancelled and the block exits normally.

    Cancellation: cancelling the block aborts the actor; ``session.result`` is set
    (status ``cancelled``) before ``Cancelled`` propagates.
    """
    session = Session(spec)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run)
            with session._driver_scope:
                try:
                    yield session
                    await session.close()
                except BaseException as exc:
                    session.abort(exc)
                    raise
    except* SessionEnded as group:
        foreign = group.subgroup(lambda e: getattr(e, "session", None) is not session)
        if foreign is not None:
            raise foreign from None


async def run_session(
    spec: SessionSpec, *, task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED
) -> SessionResult:
    """Supervisor form: ``session = await nursery.start(run_session, spec)``.

    Starts when the session is ready (or has already ended); returns the
    :class:`SessionResult` when the session is closed (``await session.close()``),
    fails or reaches ``max_duration``. See :meth:`Session.run`.
    """
    return await Session(spec).run(task_status=task_status)
