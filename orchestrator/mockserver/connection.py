"""The per-connection actor: one nursery, a few long-lived tasks, bounded channels.

::

    websocket ─► receiver ─(frames)─► control ─┬─► response runs ──┐
                                   (dispatch,   │  (one task each,  │
                                    VAD turns)  │   timed plans)    │
                                                ├─► transcriptions ─┤
                 timers (expiry, close-after, idle timeout) ────────┴─► outbox ─► sender ─► websocket

- ``receiver`` reads frames, parses them into dicts (or a bad-frame marker), stamps the
  receive time and puts them into a bounded inbox (:data:`INBOX_SIZE`). It does no
  event handling itself, but it does wait when the inbox is full: a client that sends
  faster than control handles its events is slowed down by back-pressure (and while
  the receiver waits, pongs are not read either).
- ``control`` handles client events strictly in arrival order through the dispatch
  table (:mod:`.dispatch`), which runs VAD turns (:mod:`.turns`) and starts responses
  (:mod:`.runs`). The conversation state, the input audio buffer and the runs live on
  the actor and are shared by these tasks -- control, the response runs, the
  transcription tasks and the timers all change them; trio's cooperative scheduling
  keeps each change atomic between awaits.
- each response runs in its own task, sleeping until the absolute deadlines of its plan
  (:mod:`.planning`, :mod:`.responder`, :mod:`.latency`) and putting events into the
  outbox.
- ``sender`` is the only writer to the socket; it stamps the actual send time (ground
  truth) and performs closes. Sending never sleeps, so emission times are exactly the
  plan's deadlines -- except during a scheduled server-wide freeze, when the sender
  holds each frame (in order) until the freeze ends; receiving, VAD and the plans go
  on, and the ground truth's ``actual`` times show the hold. A full outbox
  (:data:`OUTBOX_SIZE`) makes every producer wait.

Any failure ends this connection only: the server logs it, counts it and goes on. Bad
client events are answered with ``error`` events and counted; only the first
:data:`REFUSALS_LOGGED` per connection are logged as warnings, the rest in one line when
the connection ends.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from orchestrator.protocol import Dialect, new_id

from .defaults import conversation_created, default_session
from .dispatch import check_event
from .errors import ClientError, error_event
from .faults import FAULT_CLOSE_CODE, ConnectionFaults
from .inflight import Run
from .port import Hook, ServerPort
from .state import Conversation
from .turns import idle_timeout
from .vad import InputAudio
from .wire import decode_frame, encode, render

log = logging.getLogger("orchestrator.mockserver")

OUTBOX_SIZE = 256
INBOX_SIZE = 64
CLOSE_GRACE_S = 2.0
#: Refused client events logged as a WARNING per connection; later ones are logged at
#: DEBUG only, counted, and summed up in one WARNING when the connection ends (a client
#: that sends thousands of bad frames must not flood the log; ``stats.client_errors``
#: has the count of every refusal by code).
REFUSALS_LOGGED = 3


@attrs.frozen
class _Frame:
    """One received client frame: parsed JSON object, or a framing problem."""

    t: float
    data: dict[str, Any] | None
    error: ClientError | None = None


@attrs.frozen
class _Close:
    code: int
    reason: str


class ConnectionActor:
    """Serves one accepted websocket until either side closes it. Its handlers see it
    as a :class:`~.port.ConnectionPort` (which it satisfies structurally).

    Resource handling: :meth:`run` owns the connection; when it returns the socket is
    closed (by the client, by a server close, or abortively on cancellation).
    Error handling: bad client input becomes ``error`` events; unexpected exceptions
    propagate out of :meth:`run` to the server, which logs and counts them.
    """

    def __init__(
        self,
        ws: WebSocketConnection,
        server: ServerPort,
        *,
        index: int,
        dialect: Dialect,
        model: str,
    ) -> None:
        self.ws = ws
        self.server = server
        self.config = server.config
        self.stats = server.stats
        self.index = index
        self.dialect = dialect
        self.rng = random.Random(f"{self.config.seed}:conn:{index}")
        #: the delta padding's own stream, so that it does not shift the latency draws
        self.obfuscation_rng = random.Random(f"{self.config.seed}:obfuscation:{index}")
        self.faults = ConnectionFaults(
            self.config.faults, random.Random(f"{self.config.seed}:faults:{index}")
        )
        session = default_session(
            session_id=new_id("sess_"),
            model=model,
            expires_at=int(time.time() + self.config.faults.session_max_s),
        )
        self.conv = Conversation(session=session, dialect=dialect)
        hears = server.hearing is not None and server.hearing.has_clips()
        self.input = InputAudio(session["audio"]["input"], keep_turns=hears)
        self.session_id: str = session["id"]
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[str, Hook] | _Close](
            OUTBOX_SIZE
        )
        self._in_send, self._in_recv = trio.open_memory_channel[_Frame](INBOX_SIZE)
        self.active: Run | None = None
        self.runs: dict[str, Run] = {}
        self.transcripts: dict[str, str] = {}
        self.speech_item: str | None = None
        #: a VAD turn that ended while a response was active: its input item id, answered
        #: when that response ends (see :func:`.turns.speech_stopped`)
        self.pending_turn: str | None = None
        self.turns = 0
        self.greeted = False
        self.closing = False
        self.idle_deadline = math.inf
        self._timer_changed = trio.Event()
        self.nursery: trio.Nursery | None = None
        self.started_at = 0.0
        #: client events refused with an ``error`` event on this connection
        self.refusals = 0

    # -- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection. Returns when it is closed; cancellation aborts it."""
        self.started_at = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self.emit({"type": "session.created", "session": self.conv.session})
                if self.dialect is Dialect.BETA:  # beta only; GA never sends it
                    await self.emit(conversation_created(self.conv.conversation_id))
                nursery.start_soon(self._sender)
                nursery.start_soon(self._receiver)
                nursery.start_soon(self._control)
                nursery.start_soon(self._timers)
                if self.config.ping_interval_s:
                    nursery.start_soon(self._pinger, self.config.ping_interval_s)
        finally:
            if self.refusals > REFUSALS_LOGGED:
                log.warning(
                    "connection %d: %d more refused client events not logged above "
                    "(%d in all on this connection)",
                    self.index,
                    self.refusals - REFUSALS_LOGGED,
                    self.refusals,
                )
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE_S):
                await self.ws.aclose()

    def _stop(self) -> None:
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def close(self, code: int, reason: str) -> None:
        """Close after everything already queued has been sent."""
        if self.closing:
            return
        self.closing = True
        self.stats.closes[code] += 1
        await self._out_send.send(_Close(code, reason))

    # -- output -----------------------------------------------------------------------
    async def emit(self, event: dict[str, Any], hook: Hook = None) -> dict[str, Any] | None:
        """Queue a GA-shaped event (rendered for this connection's dialect).

        Returns the rendered event, or None if the dialect has no such event. Waits
        (back-pressure) when the outbox is full.
        """
        wire = render(event, self.dialect)
        if wire is None:
            return None
        wire["event_id"] = new_id("event_")
        await self._out_send.send((encode(wire), hook))
        return wire

    async def _sender(self) -> None:
        async for out in self._out_recv:
            await self.server.hold_while_frozen()
            if isinstance(out, _Close):
                with trio.move_on_after(CLOSE_GRACE_S):
                    await self.ws.aclose(out.code, out.reason)
                self._stop()
                return
            text, hook = out
            if hook is not None:
                hook(trio.current_time())
            try:
                await self.ws.send_message(text)
            except ConnectionClosed:
                self._stop()
                return
            self.stats.events_sent += 1
            self.stats.bytes_sent += len(text)

    # -- input ------------------------------------------------------------------------
    async def _receiver(self) -> None:
        with self._in_send:
            while True:
                try:
                    message = await self.ws.get_message()
                except ConnectionClosed as exc:
                    reason = exc.reason
                    if reason is not None and reason.code == 1009:
                        self.stats.client_errors["message_too_big"] += 1
                        log.warning(
                            "connection %d: oversized message, closed with 1009", self.index
                        )
                    self._stop()
                    return
                self.stats.events_received += 1
                now = trio.current_time()  # the receive time, before parsing
                data, err = decode_frame(message)
                await self._in_send.send(_Frame(now, data, err))

    async def _control(self) -> None:
        """Handle client events one at a time, in arrival order: check the envelope,
        then run the event type's handler from :data:`.dispatch.DISPATCH`. A refusal
        becomes an ``error`` event; the next event is handled after it is queued."""
        async for frame in self._in_recv:
            client_event_id = None
            etype = None
            try:
                if frame.error is not None:
                    raise frame.error
                assert frame.data is not None
                eid = frame.data.get("event_id")
                client_event_id = eid if isinstance(eid, str) else None
                etype = frame.data.get("type")
                etype, data, entry = check_event(frame.data)
                await entry.handler(self, data, frame.t)
            except ClientError as err:
                self.stats.client_errors[err.code or "null"] += 1
                self._log_refusal(etype, client_event_id, err)
                await self.emit(err.to_event(client_event_id))

    def _log_refusal(self, etype: object, event_id: str | None, err: ClientError) -> None:
        """Log a refused client event: WARNING for the first :data:`REFUSALS_LOGGED` of
        this connection, DEBUG after that (summed up when the connection ends)."""
        self.refusals += 1
        last = self.refusals == REFUSALS_LOGGED
        log.log(
            logging.WARNING if self.refusals <= REFUSALS_LOGGED else logging.DEBUG,
            "connection %d: refused %s (event_id=%s): %s %s%s",
            self.index,
            etype if isinstance(etype, str) else "frame",
            event_id,
            err.code,
            err.param,
            "; further refusals on this connection are counted and reported when it closes"
            if last
            else "",
        )

    async def _pinger(self, interval: float) -> None:
        """Send a websocket PING every ``interval`` seconds (the service does ~20.3 s)."""
        while True:
            await trio.sleep(interval)
            await self.server.hold_while_frozen()
            try:
                await self.ws.ping()  # returns when the client's PONG arrives
            except ConnectionClosed:
                return
            self.stats.pongs_received += 1

    # -- timers -----------------------------------------------------------------------
    def arm_idle(self, audio_ms: int) -> None:
        td = self.input.turn_detection
        if td is None or td.get("type") != "server_vad" or td.get("idle_timeout_ms") is None:
            return
        self.idle_deadline = (
            trio.current_time() + audio_ms / 1000.0 + td["idle_timeout_ms"] / 1000.0
        )
        self._poke_timers()

    def rearm_idle(self) -> None:
        td = self.input.turn_detection
        if td is None or td.get("idle_timeout_ms") is None:
            self.idle_deadline = math.inf
        self._poke_timers()

    def _poke_timers(self) -> None:
        self._timer_changed.set()
        self._timer_changed = trio.Event()

    async def _timers(self) -> None:
        faults = self.config.faults
        expiry = self.started_at + faults.session_max_s
        close_after = (
            self.started_at + faults.close_after_s if faults.close_after_s is not None else math.inf
        )
        while True:
            changed = self._timer_changed
            deadline = min(expiry, close_after, self.idle_deadline)
            with trio.move_on_at(deadline):
                await changed.wait()
                continue
            now = trio.current_time()
            if now >= expiry:
                minutes = faults.session_max_s / 60
                message = f"Your session hit the maximum duration of {minutes:g} minutes."
                await self.emit(error_event("invalid_request_error", "session_expired", message))
                await self.close(1001, message)
                return
            if now >= close_after:
                self.stats.faults["close_after_s"] += 1
                await self.close(
                    FAULT_CLOSE_CODE, f"fault: closed after {faults.close_after_s:g} s"
                )
                return
            if now >= self.idle_deadline:
                self.idle_deadline = math.inf
                await idle_timeout(self)
