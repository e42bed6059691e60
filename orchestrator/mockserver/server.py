"""The listener and handshake routing of the embedded Realtime server.

Handshakes are decided by :func:`.handshake.route_request` (paths, dialect, auth).

Scheduled freezes (``FaultConfig.freeze_windows``) count from :attr:`MockServer.started_at`
and hold every outgoing frame of every connection (see :meth:`MockServer.hold_while_frozen`);
handshakes are still accepted while frozen.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import attrs
import trio
from trio_websocket import WebSocketRequest, WebSocketServer, wrap_server_stream

from orchestrator.protocol import new_id
from orchestrator.transport import RECEIVE_BUFFER_SIZE

from .audio_bank import AudioBank
from .config import ServerConfig
from .connection import CLOSE_GRACE_S, ConnectionActor
from .errors import error_event
from .faults import FreezeWindow, freeze_end, reject_handshake
from .groundtruth import GroundTruthSink
from .handshake import Rejection, Route, error_body, route_request
from .hearing import Hearing
from .rate_limits import RateLimiter
from .stats import ServerStats
from .wire import encode

log = logging.getLogger("orchestrator.mockserver")


@attrs.define(eq=False)
class MockServer:
    """An embedded OpenAI-Realtime-compatible server (see the package docstring).

    One instance can serve a TCP listener (:meth:`serve`) and/or individual streams
    (:meth:`serve_stream`); counters are in :attr:`stats`, ground truth goes to
    :attr:`groundtruth` (and ``config.groundtruth_path``). :attr:`hearing` recognises
    cached caller lines when ``config.hearing_dir`` is set (clips loaded at construction).

    ``started_at`` (trio time) is the origin of scheduled faults (``freeze_at_s``): set
    when :meth:`serve` or the first :meth:`serve_stream` starts, unless already set. A
    harness embedding the server may set it itself (e.g. to its run's start) before
    any connection is made.
    """

    config: ServerConfig
    stats: ServerStats = attrs.field(factory=ServerStats)
    #: Ground-truth records kept in memory (:attr:`GroundTruthSink.records`) besides the
    #: file: for tests and embedders that read them; ``orchestrator serve`` keeps none.
    keep_groundtruth: int = 10_000
    #: The index of this server's first connection: several server processes sharing one
    #: port start far apart, so that no two connections of a run share an index (their
    #: random streams are keyed by it: connection k of each would draw the same latencies
    #: and faults) and the ground truth names each connection once.
    first_connection: int = 0
    groundtruth: GroundTruthSink = attrs.field(init=False)
    audio_bank: AudioBank = attrs.field(init=False)
    hearing: Hearing | None = attrs.field(init=False)
    rate_limiter: RateLimiter = attrs.field(init=False)
    port: int | None = None
    started_at: float | None = None
    _next_index: int = 0
    _freezes: tuple[FreezeWindow, ...] = attrs.field(init=False)
    _handshake_rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.groundtruth = GroundTruthSink(
            self.config.groundtruth_path, keep=self.keep_groundtruth, held_until=self.frozen_until
        )
        self.audio_bank = AudioBank(
            seed=self.config.seed, chunk_ms=self.config.latency.audio_chunk_ms
        )
        self._next_index = self.first_connection
        base = "" if self.first_connection == 0 else f":{self.first_connection}"
        self._handshake_rng = random.Random(f"{self.config.seed}:handshake{base}")
        self.rate_limiter = RateLimiter(
            self.config.rate_limit_tokens_per_min, self.config.rate_limit_requests_per_min
        )
        self._freezes = self.config.faults.freeze_windows
        hearing_dir = self.config.hearing_dir
        self.hearing = None if hearing_dir is None else Hearing(hearing_dir)
        # synthesize the common case up front, not on the first response
        self.audio_bank.chunks("pcm16")

    async def serve(
        self,
        *,
        reuse_port: bool = False,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``config.host:config.port`` until cancelled; reports the bound port.

        ``reuse_port``: bind one socket with ``SO_REUSEPORT`` (Linux, BSD), so that several
        server processes can share one port (the kernel spreads new connections over them).

        Resource handling: the listeners and every connection live in this task's
        nursery; cancelling it closes them all and closes the ground-truth file.
        Error handling: a failing connection is logged and counted in ``stats.crashes``;
        it never affects the listener or other connections.
        """
        cfg = self.config
        self._mark_started()
        try:
            if reuse_port:
                listeners = [await _reuse_port_listener(cfg.host, cfg.port)]
            else:
                listeners = await trio.open_tcp_listeners(cfg.port, host=cfg.host)
            async with trio.open_nursery() as nursery:
                server = WebSocketServer(
                    self.handle_request,
                    listeners,
                    handler_nursery=nursery,
                    max_message_size=cfg.max_message_size,
                    receive_buffer_size=RECEIVE_BUFFER_SIZE,
                    connect_timeout=10,
                    disconnect_timeout=CLOSE_GRACE_S,
                )
                await nursery.start(server.run)
                self.port = server.port
                log.info("mock realtime server listening on %s:%d", cfg.host, server.port)
                task_status.started(server.port)
        finally:
            self.groundtruth.close()

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection over any trio stream (e.g. one end of
        ``trio.testing.memory_stream_pair()``), with the same handshake rules.

        Returns when the connection ends. Cancellation aborts the connection.
        """
        self._mark_started()
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(
                nursery,
                stream,
                max_message_size=self.config.max_message_size,
                receive_buffer_size=RECEIVE_BUFFER_SIZE,
            )
            await self.handle_request(request)
            nursery.cancel_scope.cancel()

    def mark_started(self, now: float | None = None) -> None:
        """Make ``now`` (default: the current trio time) the origin of scheduled faults,
        even when it was set already (a parent process saying its run starts now)."""
        self.started_at = trio.current_time() if now is None else now

    def _mark_started(self) -> None:
        if self.started_at is None:
            self.started_at = trio.current_time()

    def frozen_until(self, now: float) -> float | None:
        """The trio time at which the scheduled freeze covering ``now`` ends, or
        ``None`` when the server is not frozen at ``now`` (or has not started)."""
        if not self._freezes or self.started_at is None:
            return None
        end = freeze_end(self._freezes, now - self.started_at)
        return None if end is None else self.started_at + end

    async def hold_while_frozen(self) -> float:
        """Wait until no scheduled freeze covers the current time; returns the seconds
        waited (0.0 without a checkpoint when not frozen). Every send of every
        connection goes through here. Cancellation: raises ``Cancelled``, nothing held.
        """
        now = trio.current_time()
        end = self.frozen_until(now)
        if end is None:
            return 0.0
        self.stats.faults["freeze_holds"] += 1
        await trio.sleep_until(end)
        return end - now

    async def handle_request(self, request: WebSocketRequest) -> None:
        """Route, authenticate and serve one websocket handshake; never raises
        (except ``Cancelled``)."""
        try:
            await self._handle(request)
        except Exception:
            self.stats.crashes += 1
            log.exception("mock realtime connection crashed")

    async def _handle(self, request: WebSocketRequest) -> None:
        decision = route_request(request.path, request.headers, self.config)
        if isinstance(decision, Route) and reject_handshake(
            self.config.faults, self._handshake_rng
        ):
            self.stats.faults["reject_429"] += 1
            decision = Rejection(
                429,
                "fault_429",
                error_body(
                    "Rate limit reached for requests (injected fault). Please try again later.",
                    "requests",
                    "rate_limit_exceeded",
                ),
            )
        if isinstance(decision, Rejection):
            self.stats.rejected[decision.reason] += 1
            log.warning("handshake refused: HTTP %d (%s)", decision.status, decision.reason)
            headers = [(b"content-type", b"application/json")]
            if decision.status == 429:  # as the real service: when to try again
                headers.append((b"retry-after", b"1"))
            await request.reject(
                decision.status,
                extra_headers=headers,
                body=decision.body,
            )
            return
        ws = await request.accept()
        index = self._next_index
        self._next_index += 1
        self.stats.connections_accepted += 1
        self.stats.connections_active += 1
        try:
            if decision.model is None:
                await self._refuse_model(ws)
                return
            actor = ConnectionActor(
                ws, self, index=index, dialect=decision.dialect, model=decision.model
            )
            await actor.run()
        finally:
            self.stats.connections_active -= 1
            self.stats.connections_closed += 1

    async def _refuse_model(self, ws: Any) -> None:
        event = error_event(
            "invalid_request_error", "missing_model", "Missing required parameter: 'model'."
        )
        event["event_id"] = new_id("event_")
        self.stats.client_errors["missing_model"] += 1
        self.stats.closes[4000] += 1
        await self.hold_while_frozen()
        with trio.move_on_after(CLOSE_GRACE_S):
            await ws.send_message(encode(event))
            await ws.aclose(4000, "invalid_request_error.missing_model")


async def _reuse_port_listener(host: str, port: int) -> trio.SocketListener:
    """One listening TCP socket on ``host:port`` with ``SO_REUSEADDR`` and ``SO_REUSEPORT``
    (raises ``OSError`` where the platform lacks ``SO_REUSEPORT``)."""
    if not hasattr(trio.socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available on this platform")
    info = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    family, type_, proto, _, addr = info[0]
    sock = trio.socket.socket(family, type_, proto)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
        await sock.bind(addr)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def serve_realtime(
    config: ServerConfig, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a :class:`MockServer` for ``config`` until cancelled.

    Use as ``port = await nursery.start(serve_realtime, config)`` (``config.port = 0``
    picks a free port). See :meth:`MockServer.serve` for resource and error handling.
    """
    await MockServer(config, keep_groundtruth=0).serve(task_status=task_status)


async def serve_stream(
    stream: trio.abc.Stream, config: ServerConfig, *, server: MockServer | None = None
) -> None:
    """Serve one websocket connection over ``stream`` (handshake included).

    For tests on ``MockClock``: ``client, srv = trio.testing.memory_stream_pair()`` then
    ``nursery.start_soon(serve_stream, srv, config)`` and connect the client side with
    ``trio_websocket.wrap_client_stream`` (or ``orchestrator.transport.connect_stream``).
    Pass ``server`` to share counters / ground truth between several streams.
    """
    if server is not None:
        await server.serve_stream(stream)
        return
    own = MockServer(config)
    try:
        await own.serve_stream(stream)
    finally:
        own.groundtruth.close()
