"""The session actor: one conversation, one nursery, a few tasks, failures as data.

Tasks (all in the session's nursery; every channel bounded)::

    driver ──► send channel ──► sender ──► websocket      (stamps send times)
    audio_in ─┘  (paced frames)                 │
    tool_exec ┘  (function_call_output, follow-up response.create)
    receiver ◄── websocket: decode → ConversationState + turn timers → waiters,
                 subscriptions (never blocks: slow subscribers lose audio deltas first)

The link loop owns connections: connect, (re)send the session config, replay the
conversation after a reconnect, run sender + receiver until the socket ends, then either
reconnect (recoverable close, bounded backoff with jitter) or end the session as failed.
A planned rollover (connection age / ``expires_at``) closes the socket at a turn
boundary and reconnects the same way.

Everything the receiver does per event is synchronous and allocation-light: dict
dispatch on the event class, a few attribute updates; anything that must send (truncate,
cancel, tool outputs) is handed to a short task so reading never waits on writing.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.metrics.records import USAGE_FIELDS, ErrorRecord, SessionResult, TurnRecord
from orchestrator.metrics.stats import percentile
from orchestrator.transport import TransportError

from .audio_in import AudioInMixin, Utterance
from .bargein import BargeInMixin
from .driver import SessionDriver
from .errors import LinkLost, MaxDurationExceeded, RequestRejected, SessionEnded, SessionFailure
from .pacer import SleepPacer
from .playback import PlaybackClock
from .receiver import ReceiverMixin
from .reconnect import FINAL_CLOSE_CODES, RolloverRequested
from .sender import Out, SenderMixin
from .spec import ConnectionLike, SessionSpec
from .state import ConversationState
from .subscription import Subscription
from .timing import TurnTimer
from .tool_exec import Batch, ToolExecMixin
from .turns import Turn, TurnCheck
from .waiters import Waiter

__all__ = ["Session", "open_session", "run_session"]

_SEND_CAPACITY = 64
_TOOL_CAPACITY = 32


class Session(SessionDriver, ReceiverMixin, SenderMixin, ToolExecMixin, AudioInMixin, BargeInMixin):
    """One conversation actor. Create it with :func:`open_session` or start
    :func:`run_session` in a nursery; drive it with the methods of
    :class:`~orchestrator.session.driver.SessionDriver`.

    Public state: ``spec``, ``state`` (:class:`ConversationState`), ``playback``
    (:class:`PlaybackClock`), ``turns`` (every :class:`Turn`), ``result`` (the
    :class:`SessionResult` once ended, else None), counters ``events_received``,
    ``reconnects``, ``rollovers``, ``protocol_errors``, ``frames_dropped`` (stale input
    audio frames not sent after a reconnect; ``audio_frames_dropped`` in the result).
    """

    def __init__(self, spec: SessionSpec) -> None:
        self.spec = spec
        self.dialect = spec.wire_dialect
        self.state = ConversationState()
        self.playback = PlaybackClock(start_delay=spec.playback_delay)
        self.turns: list[Turn] = []
        self.result: SessionResult | None = None
        self.events_received = 0
        self.reconnects = 0
        self.rollovers = 0
        self.protocol_errors = 0
        self.frames_dropped = 0
        self.gap_ms_total = 0.0
        self.connect_ms: float | None = None
        self.session_ready_ms: float | None = None
        self.session_errors: list[ErrorRecord] = []
        self.errors_total = 0
        self.lateness_ms: list[float] = []
        self.idle_event_counts: dict[str, int] = {}

        self._pacer = spec.pacing.pacer or SleepPacer()
        self._send_tx, self._send_rx = trio.open_memory_channel[Out](_SEND_CAPACITY)
        self._utter_tx, self._utter_rx = trio.open_memory_channel[Utterance](4)
        self._tool_tx, self._tool_rx = trio.open_memory_channel[tuple[Any, Turn]](_TOOL_CAPACITY)
        self._waiters: list[Waiter] = []
        self._subs: list[Subscription] = []
        self._current: Turn | None = None
        self._resp_turn: dict[str, Turn] = {}
        self._claims: deque[tuple[str | None, Turn]] = deque()
        self._batches: dict[str, Batch] = {}
        self._configs: list[Any] = []
        if spec.config is not None:
            config = spec.config
            if spec.tools is not None and spec.tools.tools and config.tools is None:
                config = attrs.evolve(config, tools=spec.tools.function_tools())
            self._configs.append(config)
        self._tail_stop: trio.Event | None = None
        self._barge: tuple[Turn, str] | None = None
        self._barge_last_delta: float | None = None
        self._last_audio_at: float | None = None  # of the last delta (state.audio_response_id)
        self._epoch = 0
        self._nursery: trio.Nursery | None = None
        self._run_scope: trio.CancelScope | None = None
        self._link_scope: trio.CancelScope | None = None
        self._link_ready = trio.Event()
        self._session_created = trio.Event()
        self._link_started_at: float | None = None
        self._lost: BaseException | None = None
        self._closing = False
        self._aborted = False
        self._failure: BaseException | None = None
        self._finished = trio.Event()
        self._gap_start: float | None = None
        self._ready_gen = 0  # links made ready so far (0: not connected yet)
        self._link_progress = False
        self._ready_changed = trio.Event()
        self._fatal_seen = False
        self._dropped_closed = 0
        self._task_status: Any = None
        self._t_start = 0.0
        self._planned = 0.0
        self._run_t0 = 0.0
        self._rng = random.Random(spec.seed)
        self._handlers: dict[type, Callable[[Any, float, Turn | None], None]] = (
            self._handler_table()
        )

    @property
    def turn_records(self) -> list[TurnRecord]:
        """Every turn's record so far, in order (final for finished turns)."""
        return [turn.record for turn in self.turns]

    # ================================================================ lifecycle
    async def run(
        self, *, task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED
    ) -> SessionResult:
        """Run the actor until it is closed, fails, or is cancelled; return its result.

        ``task_status.started(self)`` is called once the first connection is ready
        (configured), or when the session ends before that (then ``self.result`` says
        why), so ``await nursery.start(session.run)`` never hangs on a dead target.

        Resource handling: every task, channel and socket of the session is closed when
        this returns. Error handling: connection, protocol and server failures end the
        session as data (``result.status == "failed"``, ``result.reason``), never as an
        exception; bugs in handlers are recorded the same way. Cancellation: the result
        gets status ``cancelled`` (``failed`` if the session had failed, or was aborted
        with an error: see :meth:`abort`) and ``Cancelled`` always propagates.
        """
        now = trio.current_time()
        self._t_start = now
        self._planned = self.spec.planned_start if self.spec.planned_start is not None else now
        self._run_t0 = self.spec.run_t0 if self.spec.run_t0 is not None else self._planned
        self._task_status = task_status
        status: str = "completed"
        reason: str | None = None
        try:
            with trio.CancelScope() as scope:
                self._run_scope = scope
                if self.spec.max_duration is not None:
                    scope.deadline = self._planned + self.spec.max_duration
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._audio_in)
                    nursery.start_soon(self._tool_executor)
                    await self._link_loop()
                    nursery.cancel_scope.cancel()
            if self._failure is not None:
                status, reason = "failed", _reason(self._failure)
            elif self._aborted:
                status, reason = "cancelled", None
            elif scope.cancelled_caught and not self._closing:
                exc = MaxDurationExceeded(
                    f"session ran past max_duration={self.spec.max_duration}s"
                )
                status, reason = "failed", _reason(exc)
        except BaseException as exc:  # noqa: BLE001 - sorted below: cancel vs failure
            cancelled, rest = _split_cancelled(exc)
            if self._failure is not None:
                status, reason = "failed", _reason(self._failure)
            elif rest is not None:
                status, reason = "failed", _reason(_first_leaf(rest))
            else:
                status, reason = "cancelled", None
            if rest is None and cancelled is not None:
                # cancelled from outside: the result is final (failed if the session or
                # the caller's abort(cause) said so) and Cancelled is never swallowed
                self._finalize(status, reason)
                raise
        finally:
            if self.result is None:
                self._finalize(status, reason)
        assert self.result is not None
        return self.result

    async def close(self) -> None:
        """End the session normally: close the websocket (code 1000) and stop all tasks.
        Open turns end as ``cancelled``. Idempotent; returns when the actor has ended.

        Cancellation: if cancelled while waiting, the actor is stopped at once (its
        socket closed without handshake) and ``Cancelled`` propagates.
        """
        self._closing = True
        if self._link_scope is not None:
            self._link_scope.cancel()
        elif self._run_scope is not None:
            self._run_scope.cancel()
        try:
            await self._finished.wait()
        except trio.Cancelled:
            self.abort()
            raise

    def abort(self, cause: BaseException | None = None) -> None:
        """Stop the actor now (no close handshake).

        ``cause`` is why the caller gave up on the session (``open_session`` passes the
        exception leaving its block). If it is an error (an ``Exception``, or a group
        holding one: e.g. the driver raised), the result is ``failed`` with reason
        ``"TypeName: message"`` of that error (the first one of a group). Otherwise
        (no cause, ``Cancelled``, ``KeyboardInterrupt``) the result is ``cancelled``. A
        session that had already failed keeps its own failure; one already ended is not
        changed."""
        if self.result is None and self._failure is None and cause is not None:
            error = _error_of(cause)
            if error is not None:
                self._failure = error
        self._closing = True
        self._aborted = True
        if self._run_scope is not None:
            self._run_scope.cancel()

    # ================================================================ link loop
    async def _link_loop(self) -> None:
        factory = self.spec.connect_factory()
        policy = self.spec.reconnect
        failures = 0
        while not self._closing:
            self._epoch += 1
            self._lost = None
            self._link_ready = trio.Event()
            self._session_created = trio.Event()
            self._link_progress = False
            lost: BaseException | None = None
            try:
                async with factory() as conn:
                    t_open = trio.current_time()
                    self._link_started_at = t_open
                    if self.connect_ms is None:
                        self.connect_ms = (t_open - self._planned) * 1000.0
                    lost = await self._serve(conn, replay=self._ready_gen > 0)
                    if isinstance(lost, RolloverRequested) or (lost is None and self._closing):
                        await conn.aclose(1000, "")  # a planned end: close handshake
            except* TransportError as group:
                lost = _first_leaf(group)
            if self._closing or self._failure is not None:
                return
            t = trio.current_time()
            if self._link_ready.is_set():
                if self._link_progress:
                    failures = 0  # a link that finished a response was a real recovery
                if self._gap_start is None:
                    self._gap_start = t
            if isinstance(lost, RolloverRequested):
                self.rollovers += 1
                self._after_link_lost("rollover to a fresh connection", t, fail_turns=False)
                continue
            if lost is None:
                lost = TransportError("connection ended", recoverable=False)
            self._after_link_lost(_reason(lost), t, fail_turns=True)
            if not self._recoverable(lost):
                self._failure = lost
                return
            if failures >= policy.max_attempts:
                self._failure = SessionFailure(
                    f"gave up after {failures} reconnect attempt(s); last: {_reason(lost)}"
                )
                return
            await trio.sleep(policy.delay(failures, self._rng))
            failures += 1

    async def _serve(self, conn: ConnectionLike, *, replay: bool) -> BaseException | None:
        """Run receiver + sender on ``conn`` until it ends; return why (None = closing)."""
        async with trio.open_nursery() as nursery:
            self._link_scope = nursery.cancel_scope
            if self._closing:
                nursery.cancel_scope.cancel()
            nursery.start_soon(self._receiver, conn)
            await self._setup_link(conn, replay=replay)
            nursery.start_soon(self._sender, conn)
            t = trio.current_time()
            if replay and self._gap_start is not None:
                self.gap_ms_total += (t - self._gap_start) * 1000.0
                for turn in self.turns:
                    if turn.status == "open":
                        turn.timer.add_gap(self._gap_start, t)
                self._gap_start = None
                self.reconnects += 1
            self._link_ready.set()
            self._ready_gen += 1
            self._ready_changed.set()
            self._ready_changed = trio.Event()
            self._started()
        self._link_scope = None
        return self._lost

    async def _setup_link(self, conn: ConnectionLike, *, replay: bool) -> None:
        """Send the session config(s) and, after a reconnect, replay the conversation.
        Without a config, wait for ``session.created`` (unless the spec says the server
        never sends one) so the driver starts with the server's session settings."""
        if not self._configs and self.spec.wait_session_created:
            await self._session_created.wait()
        for i, config in enumerate(self._configs):
            event = P.SessionUpdate(session=config, event_id=P.new_id("event_"))
            try:
                await self._direct_request(conn, event, _is(P.SessionUpdated))
            except RequestRejected as exc:
                self._fail(SessionFailure(f"session configuration rejected: {exc}"))
                await trio.sleep_forever()
            if i == 0 and self.session_ready_ms is None:
                self.session_ready_ms = (trio.current_time() - self._planned) * 1000.0
        if not replay:
            return
        items = self.state.replay_items()
        self.state.clear_history()
        if not items:
            return
        # every item is sent at once; the last one's answer (added, or an error echoing
        # its event id) means the server went through all of them, in order
        events = [
            P.ConversationItemCreate(item=item, event_id=P.new_id("event_")) for item in items
        ]
        last_id = items[-1].id
        waiter = Waiter(
            lambda ev: type(ev) is P.ConversationItemAdded and ev.item.id == last_id,
            events[-1].event_id,
            "conversation.item.create",
        )

        async def send_all() -> None:
            for event in events:
                await self._send_direct(conn, event, None)

        try:
            await self._await_waiter(waiter, send_all)
        except RequestRejected:
            pass  # the last item was rejected, but the server went through all of them

    async def _direct_request(
        self, conn: ConnectionLike, event: Any, match: Callable[[Any], bool]
    ) -> Any:
        waiter = Waiter(match, event.event_id, event.type)
        return await self._await_waiter(waiter, partial(self._send_direct, conn, event, None))

    def _recoverable(self, exc: BaseException) -> bool:
        if isinstance(exc, TransportError):
            code = getattr(exc, "code", None)
            if code in FINAL_CLOSE_CODES:
                return False
            if self._fatal_seen:
                return False
            return exc.recoverable
        return False

    def _after_link_lost(self, reason: str, t: float, *, fail_turns: bool) -> None:
        self._epoch += 1
        self.state.reset_connection()
        self.playback.reset()
        self._claims.clear()
        self._batches.clear()
        self._barge = None
        if self._tail_stop is not None:
            self._tail_stop.set()
        for turn in self.turns:
            if turn.status == "open":
                if fail_turns:
                    turn.timer.add_error(
                        ErrorRecord(
                            code="connection_lost",
                            message=reason,
                            event_type="transport",
                            t_s=t - self._run_t0,
                        )
                    )
                    self._finish_turn(turn, "failed", f"connection lost: {reason}", t)
                elif turn.response_ids:
                    self._finish_turn(turn, "failed", reason, t)
        for waiter in list(self._waiters):
            if waiter.event_type == "wait_for":
                continue  # observers keep watching the next connection
            waiter.error = LinkLost(f"connection lost while waiting for a reply: {reason}")
            waiter.event.set()

    def _started(self) -> None:
        status, self._task_status = self._task_status, None
        if status is not None:
            status.started(self)

    # ================================================================ turns
    def _open_turn(
        self,
        mode: str,
        label: str | None,
        *,
        user_text: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        t = trio.current_time()
        cur = self._current
        if cur is not None and cur.status == "open" and not cur.response_ids:
            self._finish_turn(cur, "failed", "no response before the next turn", t)
        turn = Turn(
            session=self,
            index=len(self.turns),
            mode=mode,  # type: ignore[arg-type]
            timer=TurnTimer(opened_at=t, bytes_per_ms=self.state.bytes_per_ms),
            label=label,
            user_text=user_text,
            check=check,
        )
        self.turns.append(turn)
        self._current = turn
        return turn

    def _finish_turn(self, turn: Turn, status: str, reason: str | None, t: float) -> None:
        if turn.status != "open":
            return
        if self._gap_start is not None:  # ending while disconnected: count the gap so far
            turn.timer.add_gap(self._gap_start, t)
        turn._finish(status, reason, t)  # type: ignore[arg-type]
        if self.spec.on_turn is not None:
            self.spec.on_turn(turn.record)

    def _turn_record(self, turn: Turn) -> TurnRecord:
        return turn.timer.record(
            session_id=self.spec.session_id,
            turn_index=turn.index,
            mode=turn.mode,
            run_t0=self._run_t0,
            label=turn.label,
            transcript=turn._transcript
            if turn._transcript is not None
            else self._assistant_text(turn.response_ids),
            status=None if turn.status == "open" else turn.status,
            reason=None if turn.status in ("open", "completed") else turn.reason,
            user_transcript=turn.user_transcript,
        )

    def _assistant_text(self, response_ids: list[str]) -> str:
        texts = (st.text for _, st in self.state.output_items(response_ids) if st.type == "message")
        return " ".join(text for text in texts if text)

    # ================================================================ waiters
    def _remove_waiter(self, waiter: Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    async def _await_waiter(
        self, waiter: Waiter, send: Callable[[], Awaitable[object]] | None = None
    ) -> Any:
        """Register ``waiter``, run ``send`` (if any), wait for the waiter to be resolved
        and unregister it; raise its error or return its result. Cancellation: the waiter
        is unregistered; whatever ``send`` already sent stays sent."""
        self._waiters.append(waiter)
        try:
            if send is not None:
                await send()
            await waiter.event.wait()
        finally:
            self._remove_waiter(waiter)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def _request(
        self, event: Any, match: Callable[[Any], bool], turn: Turn | None = None
    ) -> Any:
        self._check_alive()
        waiter = Waiter(match, event.event_id, event.type)
        return await self._await_waiter(waiter, partial(self._enqueue, event, turn))

    def _check_alive(self) -> None:
        if self.result is not None:
            raise SessionEnded(self.result, self)

    # ================================================================ result
    def _finalize(self, status: str, reason: str | None) -> None:
        t = trio.current_time()
        for turn in self.turns:
            if turn.status == "open":
                turn_status = "failed" if status == "failed" else "cancelled"
                self._finish_turn(turn, turn_status, reason or f"session {status}", t)
        self.result = self._build_result(status, reason, t)
        ended = SessionEnded(self.result, self)
        for waiter in list(self._waiters):
            waiter.error = ended
            waiter.event.set()
        for sub in self._subs:
            sub.close()
        self._send_tx.close()
        self._utter_tx.close()
        self._tool_tx.close()
        self._finished.set()
        self._ready_changed.set()
        self._started()  # a session that ended before it was ready still starts

    def _build_result(self, status: str, reason: str | None, t: float) -> SessionResult:
        totals: dict[str, int] = {}
        for turn in self.turns:
            for key, value in turn.timer.usage.items():
                totals[key] = totals.get(key, 0) + value
        usage = {key: totals.get(key) for key in USAGE_FIELDS}
        lat = self.lateness_ms
        dropped = sum(s.dropped_total for s in self._subs) + self._dropped_closed
        return SessionResult(
            session_id=self.spec.session_id,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            label=self.spec.label,
            attempt=self.spec.attempt,
            planned_start_s=self._planned - self._run_t0,
            late_start_ms=(self._t_start - self._planned) * 1000.0,
            connect_ms=self.connect_ms,
            session_ready_ms=self.session_ready_ms,
            t_end_s=t - self._run_t0,
            turns=len(self.turns),
            reconnects=self.reconnects,
            rollovers=self.rollovers,
            gap_ms_total=self.gap_ms_total,
            errors=self.errors_total,
            protocol_errors=self.protocol_errors,
            audio_frames_dropped=self.frames_dropped,
            events_received=self.events_received,
            notifications_dropped=dropped,
            pacer_lateness_p50_ms=percentile(lat, 50),
            pacer_lateness_p99_ms=percentile(lat, 99),
            pacer_lateness_max_ms=max(lat) if lat else None,
            **usage,  # type: ignore[arg-type]
        )

    # ================================================================ subscriptions
    @asynccontextmanager
    async def events(self, capacity: int | None = None) -> AsyncIterator[Subscription]:
        """Subscribe to every server event from now on (``async for ev in sub``).

        The receiver never waits for a subscriber: when the buffer (``capacity``,
        default ``spec.event_buffer``) is half full, audio deltas are dropped; when it is
        full, any event is dropped; both are counted (``sub.dropped_audio``,
        ``sub.dropped_other``). Iteration ends when the session ends. Leaving the block
        unsubscribes.
        """
        sub = Subscription(capacity or self.spec.event_buffer)
        if self.result is not None:
            sub.close()
        self._subs.append(sub)
        try:
            yield sub
        finally:
            self._subs.remove(sub)
            self._dropped_closed += sub.dropped_total
            sub.close()


def _is(cls: type) -> Callable[[Any], bool]:
    return lambda ev: type(ev) is cls


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _error_of(exc: BaseException) -> BaseException | None:
    """The first ``Exception`` in ``exc`` (itself, or a leaf of a group); ``None`` when it
    holds only ``Cancelled`` / other ``BaseException`` (a cancellation, not an error)."""
    if isinstance(exc, BaseExceptionGroup):
        errors = exc.split(Exception)[0]
        return None if errors is None else _first_leaf(errors)
    return exc if isinstance(exc, Exception) else None


def _split_cancelled(
    exc: BaseException,
) -> tuple[BaseException | None, BaseException | None]:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)
    if isinstance(exc, trio.Cancelled):
        return exc, None
    return None, exc


@asynccontextmanager
async def open_session(spec: SessionSpec) -> AsyncIterator[Session]:
    """Run a session actor for the duration of the block and yield its handle.

    Entering waits until the first connection is configured (or the session failed to
    start: then every driver call raises :class:`SessionEnded` and ``session.result``
    says why). Leaving the block normally closes the session (websocket close 1000);
    leaving it with an exception aborts it: the result is ``failed`` with the reason
    ``"TypeName: message"`` of that exception (the driver's error; see
    :meth:`Session.abort`) unless the session had failed first, and the exception
    propagates. ``SessionEnded`` raised by this session's own driver calls is suppressed
    at exit, so a failed session ends the block and its ``result`` holds status, reason
    and every turn record so far.

    Cancellation: cancelling the block aborts the actor; ``session.result`` is set
    (status ``cancelled``) before ``Cancelled`` propagates.
    """
    session = Session(spec)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run)
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
