"""The link: a session's connection to the server, across reconnects and rollovers.

For each connection: open it within ``connect_timeout`` (TCP, TLS, upgrade), then within
``ready_timeout`` send the session config(s) (or wait for ``session.created``) and, after
a reconnect, replay the conversation; then run a receiver (socket -> ``SessionCore``)
and a sender (``out`` channel -> socket) until the socket ends. Then either reconnect (a
recoverable close, a timeout: bounded backoff with jitter), move on at once (a planned
rollover), or return. :meth:`Link.run` returns one :class:`LinkOutcome`.

The receive path stays synchronous from socket to state: one ``receive`` and one call
of :meth:`SessionCore.on_frame` per message (a channel hop would cost more than decoding
an audio delta).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import Any

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.metrics.failure import Failure, first_error
from orchestrator.transport import ConnectFailed, HandshakeRejected, TransportError

from .core import SessionCore
from .errors import ConnectTimeout, RequestRejected, SessionFailure, SessionReadyTimeout
from .messages import Out
from .reconnect import FINAL_CLOSE_CODES, RolloverRequested
from .spec import ConnectionLike, SessionSpec
from .transcribe import session_update
from .waiters import Waiter, await_waiter

__all__ = ["Link", "LinkOutcome"]

log = logging.getLogger(__name__)


@attrs.frozen
class LinkOutcome:
    """How the link ended: ``failure`` None when it was closed on purpose, else why it
    gave up (a final close, an unrecoverable error, reconnects exhausted)."""

    failure: Failure | None = None


class Link:
    """See the module docstring.

    Public state: ``connect_ms`` / ``session_ready_ms`` (of the first connection, from the
    planned start), ``connect_attempts`` (connections tried: the first one and each
    reconnect attempt, whether or not TCP connected), ``connect_failed`` (those of them that
    failed before the websocket handshake: TCP or TLS, see :attr:`ConnectFailed.stage
    <orchestrator.transport.ConnectFailed>`; the rest did not fail before the handshake, a
    connect that timed out at whatever stage included), ``refused_by_status`` (handshakes
    the server refused, by HTTP status), ``reconnects`` (successful reconnects: connections
    made ready after the first, rollovers included), ``rollovers``, ``gap_ms_total`` (time
    without a ready connection between them), ``ready_gen`` (connections made ready so far),
    ``started_at`` (trio time the current connection opened; None while there is none).
    """

    def __init__(
        self,
        spec: SessionSpec,
        core: SessionCore,
        out: trio.MemoryReceiveChannel[Out],
        *,
        stop: Callable[[Failure], None],
    ) -> None:
        self._spec = spec
        self._core = core
        self._out = out
        self._stop = stop
        self._rng = random.Random(spec.seed)
        self.connect_ms: float | None = None
        self.session_ready_ms: float | None = None
        self.connect_attempts = 0
        self.connect_failed = 0
        self.refused_by_status: dict[str, int] = {}
        self.reconnects = 0
        self.rollovers = 0
        self.gap_ms_total = 0.0
        self.ready_gen = 0
        self.started_at: float | None = None
        self._planned = 0.0
        self._ready = False  # the current connection is ready
        self._ready_changed = trio.Event()
        self._over = False
        self._closing = False
        self._lost: BaseException | None = None
        self._run_scope: trio.CancelScope | None = None
        self._conn_scope: trio.CancelScope | None = None

    # ------------------------------------------------------------------ control
    @property
    def ready(self) -> bool:
        """True while a configured connection is up."""
        return self._ready

    def close(self) -> None:
        """End the link on purpose: the current connection is closed with 1000 (a link
        between connections stops at once); :meth:`run` returns a clean outcome."""
        self._closing = True
        if self._conn_scope is not None:
            self._conn_scope.cancel()
        elif self._run_scope is not None:
            self._run_scope.cancel()

    def rollover(self) -> None:
        """Move to a fresh connection now (the caller is at a turn boundary)."""
        if self._conn_scope is not None and self._ready:
            self._lost = RolloverRequested()
            self._conn_scope.cancel()

    async def wait_ready_after(self, gen: int) -> None:
        """Wait until a connection after the ``gen``-th is ready, or the link is over.

        Cancellation: raises ``Cancelled``; nothing changes."""
        while self.ready_gen == gen and not self._over:
            await self._ready_changed.wait()

    def _notify(self) -> None:
        self._ready_changed.set()
        self._ready_changed = trio.Event()

    # ------------------------------------------------------------------ the loop
    async def run(self, planned: float, started: Callable[[], None]) -> LinkOutcome:
        """Connect, serve and reconnect until closed or given up; ``started()`` is called
        each time a connection becomes ready. ``planned`` anchors ``connect_ms``.

        Resource handling: every connection is closed when this returns (with 1000 when
        closed on purpose or rolling over). Error handling: transport failures end as
        the outcome, never as an exception. Cancellation: the current connection is
        closed without handshake and ``Cancelled`` propagates."""
        self._planned = planned
        failure: Failure | None = None
        try:
            with trio.CancelScope() as scope:
                self._run_scope = scope
                if self._closing:
                    scope.cancel()
                failure = await self._loop(started)
        finally:
            self._over = True
            self._ready = False
            self._notify()
        return LinkOutcome(failure)

    async def _loop(self, started: Callable[[], None]) -> Failure | None:
        factory = self._spec.connect_factory()
        policy = self._spec.reconnect
        core = self._core
        failures = 0
        while not self._closing:
            core.link_started()
            self.connect_attempts += 1
            lost = await self._connection(factory, started)
            was_ready, self._ready = self._ready, False
            self.started_at = None
            if self._closing:
                return None
            t = trio.current_time()
            if was_ready and core.link_progress:
                failures = 0  # a link that finished a response was a real recovery
            if isinstance(lost, RolloverRequested):
                self.rollovers += 1
                core.link_lost("rollover to a fresh connection", t, None, was_ready)
                continue
            if lost is None:
                lost = TransportError("connection ended", recoverable=False)
            failure = Failure.from_exception(lost, "link")
            log.debug("%s: connection lost: %s", self._spec.session_id, failure)
            core.link_lost(str(failure), t, failure, was_ready)
            if not self._recoverable(lost):
                return failure
            if failures >= policy.max_attempts:
                return attrs.evolve(
                    failure,
                    message=f"gave up after {failures} failed reconnect attempt(s); "
                    f"last: {failure}",
                    traceback=None,
                )
            delay = policy.delay(failures, self._rng)
            # a 429 (or 503) handshake says when to try again: never sooner
            retry_after = getattr(first_error(lost) or lost, "retry_after", None)
            if isinstance(retry_after, int | float):
                delay = max(delay, float(retry_after))
            await trio.sleep(delay)
            failures += 1
        return None

    def _recoverable(self, exc: BaseException) -> bool:
        if isinstance(exc, ConnectTimeout | SessionReadyTimeout):
            return True
        if isinstance(exc, TransportError):
            if getattr(exc, "code", None) in FINAL_CLOSE_CODES or self._core.fatal is not None:
                return False
            return exc.recoverable
        return False

    async def _connection(
        self, factory: Callable[[], Any], started: Callable[[], None]
    ) -> BaseException | None:
        """One connection from open to end; returns why it ended (None: closing)."""
        spec = self._spec
        opened = False
        lost: BaseException | None = None
        try:
            with trio.CancelScope() as bound:
                bound.deadline = _after(spec.connect_timeout)
                async with factory() as conn:
                    opened = True
                    t_open = trio.current_time()
                    bound.deadline = _after(spec.ready_timeout)
                    self.started_at = t_open
                    if self.connect_ms is None:
                        self.connect_ms = (t_open - self._planned) * 1000.0
                    lost = await self._serve(conn, bound, started)
                    if isinstance(lost, RolloverRequested) or (lost is None and self._closing):
                        await conn.aclose(1000, "")  # a planned end: close handshake
            if bound.cancelled_caught:
                if opened:
                    lost = SessionReadyTimeout(
                        f"session not ready within ready_timeout={spec.ready_timeout}s"
                    )
                else:
                    lost = ConnectTimeout(
                        f"no connection within connect_timeout={spec.connect_timeout}s"
                    )
        except* TransportError as group:
            lost = first_error(group)
        if isinstance(lost, HandshakeRejected):
            status = str(lost.status_code)
            self.refused_by_status[status] = self.refused_by_status.get(status, 0) + 1
        elif isinstance(lost, ConnectFailed) and lost.before_handshake:
            self.connect_failed += 1
        return lost

    async def _serve(
        self, conn: ConnectionLike, bound: trio.CancelScope, started: Callable[[], None]
    ) -> BaseException | None:
        """Run receiver + sender on ``conn`` until it ends; return why (None = closing)."""
        self._lost = None
        async with trio.open_nursery() as nursery:
            self._conn_scope = nursery.cancel_scope
            if self._closing:
                nursery.cancel_scope.cancel()
            nursery.start_soon(self._receive, conn)
            replay = self.ready_gen > 0
            await self._setup(conn, replay=replay)
            bound.deadline = math.inf
            nursery.start_soon(self._send, conn)
            t = trio.current_time()
            if self.ready_gen == 0:
                self._core.ready_at = t
            if replay:
                self.gap_ms_total += self._core.link_restored(t)
                self.reconnects += 1
            self._ready = True
            self.ready_gen += 1
            self._notify()
            started()
        self._conn_scope = None
        return self._lost

    def _link_lost(self, exc: BaseException) -> None:
        if self._lost is None:
            self._lost = exc
        if self._conn_scope is not None:
            self._conn_scope.cancel()

    async def _receive(self, conn: ConnectionLike) -> None:
        on_frame = self._core.on_frame
        try:
            while True:
                text = await conn.receive()
                on_frame(text, trio.current_time())
        except TransportError as exc:
            self._link_lost(exc)

    async def _send(self, conn: ConnectionLike) -> None:
        core = self._core
        encode = P.encode_client_event
        dialect = core.dialect
        try:
            async for out in self._out:
                if out.audio and out.epoch != core.epoch:
                    core.frames_dropped += 1
                    continue
                await conn.send(encode(out.event, dialect))
                core.on_sent(out, trio.current_time())
        except TransportError as exc:
            self._link_lost(exc)

    # ------------------------------------------------------------------ set-up
    async def _setup(self, conn: ConnectionLike, *, replay: bool) -> None:
        """Send the session config(s) and, after a reconnect, replay the conversation.
        Without a config, wait for ``session.created`` (unless the spec says the server
        never sends one) so the driver starts with the server's session settings."""
        core = self._core
        if not core.configs and self._spec.wait_session_created:
            await core.session_created.wait()
        for i, config in enumerate(list(core.configs)):
            event, answered = session_update(config, core.dialect)
            waiter = Waiter(answered, event.event_id, event.type)
            try:
                await self._exchange(conn, [event], waiter)
            except RequestRejected as exc:
                failure = SessionFailure(f"session configuration rejected: {exc}")
                self._stop(Failure.from_exception(failure, "link"))
                await trio.sleep_forever()
            if i == 0 and self.session_ready_ms is None:
                self.session_ready_ms = (trio.current_time() - self._planned) * 1000.0
        if not replay:
            return
        items = core.state.replay_items()
        core.state.clear_history()
        if not items:
            return
        # every item is sent at once; the last one's answer (added, or an error echoing
        # its event id) means the server went through all of them, in order
        events = [
            P.ConversationItemCreate(item=item, event_id=P.new_id("event_")) for item in items
        ]
        last_id = getattr(items[-1], "id", None)
        waiter = Waiter(
            lambda ev: (
                type(ev) is P.ConversationItemAdded and getattr(ev.item, "id", None) == last_id
            ),
            events[-1].event_id,
            "conversation.item.create",
        )
        try:
            await self._exchange(conn, events, waiter)
        except RequestRejected:
            pass  # the last item was rejected, but the server went through all of them

    async def _exchange(self, conn: ConnectionLike, events: list[Any], waiter: Waiter) -> Any:
        """Send ``events`` straight to ``conn`` (before the sender runs) and wait for
        ``waiter``; raise its error or return its event."""
        core = self._core

        async def send_all() -> None:
            for event in events:
                await conn.send(P.encode_client_event(event, core.dialect))
                core.on_sent(Out(event, None), trio.current_time())

        return await await_waiter(core, waiter, send_all)


def _after(seconds: float | None) -> float:
    return math.inf if seconds is None else trio.current_time() + seconds
