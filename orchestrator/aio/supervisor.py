"""The supervisor for asyncio hosts: trio in guest mode on the host's running loop.

Most Python backends (FastAPI, aiohttp, plain ``asyncio``) run an asyncio event loop; the
supervisor and the session actors are trio code. :func:`open_aio_supervisor` starts a trio
*guest run* (:func:`trio.lowlevel.start_guest_run`) on the running asyncio loop: trio's
scheduler runs in callbacks of the host loop, on the same thread, and waits for I/O in a
helper thread that wakes the host loop. Nothing is copied or re-implemented: the trio
:func:`~orchestrator.supervisor.open_supervisor` runs as it is, and this module only
adapts its API (the layer never adds behaviour of its own)::

    async with open_aio_supervisor(sink=ListSink()) as sup:     # asyncio code
        port = await sup.start_service(MockServer(ServerConfig(port=0)).serve)
        handle = await sup.start(spec, BuiltinConversation())
        result = await handle.wait()                             # SessionResult
        stats = await sup.run_workload(workload)                 # WorkloadStats
        print(sup.snapshot())

Structure of the guest run::

    guest run (trio)
    └── services nursery: start_service() tasks (embedded server, metrics endpoint)
        └── open_supervisor(...): the trio supervisor, its sessions
            └── calls nursery: one task per pending asyncio call (start, wait, drain, ...)

Calls. Every ``await`` on this API is one task in the *calls* nursery, resolved through
an asyncio future: its return value or its exception is what the trio API gives
(``SupervisorDraining`` from :meth:`AioSupervisor.start`, a ``SessionResult`` from
:meth:`AioSessionHandle.wait`, ...). Drivers (``Driver``: ``async (Session) -> None``)
and services are trio code and run inside the guest run.

Cancellation, both ways:

* asyncio -> trio: when the asyncio task awaiting a call is cancelled, the call's trio
  task is cancelled (its own cancel scope) and the asyncio task gets
  ``asyncio.CancelledError`` at once. The trio operation then keeps the promise its own
  docstring makes on cancellation (e.g. ``Supervisor.start``: nothing started). A session
  that was started but whose handle could not be delivered (the task was cancelled in the
  same instant) is cancelled, so no session runs without a handle.
* trio -> asyncio: a call cancelled on the trio side because the supervisor is closing
  raises :class:`AioSupervisorClosed` in the awaiting asyncio task (a clear error, not a
  stray ``CancelledError`` that asyncio would take for its own cancellation).

Resource handling: leaving the ``async with`` block normally waits for every call in
flight and every session to end (as the trio block does); leaving it with an exception or
by cancellation cancels every session (results recorded as ``cancelled``) and every call
in flight (their awaiters get :class:`AioSupervisorClosed`). In every case the block
returns only after the guest run has finished, every service has stopped and every
asyncio future of this API has been resolved: nothing is left waiting. An error of the
trio side itself (a sink that cannot write, a bug in a service) is raised from the block.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import outcome
import trio

from orchestrator.metrics import SessionResult
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import (
    RestartPolicy,
    RestartType,
    SessionHandle,
    Supervisor,
    SupervisorSnapshot,
    Workload,
    WorkloadStats,
    open_supervisor,
)
from orchestrator.supervisor.supervisor import Driver

if TYPE_CHECKING:
    from orchestrator.aio.prometheus import SupervisorMetrics

__all__ = [
    "AioSessionHandle",
    "AioSupervisor",
    "AioSupervisorClosed",
    "open_aio_supervisor",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class AioSupervisorClosed(RuntimeError):
    """The aio supervisor is closed or closing: the call could not run, or was cancelled
    on the trio side because the supervisor shut down."""


class AioSessionHandle:
    """An asyncio view of one supervised session (a trio
    :class:`~orchestrator.supervisor.SessionHandle`). Attributes are read directly (the
    guest run shares the host's thread); :meth:`wait` and :meth:`cancel` go through trio.
    """

    def __init__(self, owner: AioSupervisor, handle: SessionHandle) -> None:
        self._owner = owner
        self.trio_handle = handle

    def __repr__(self) -> str:
        return f"<AioSessionHandle {self.session_id} {self.state}>"

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.trio_handle.session_id

    @property
    def state(self) -> str:
        """``pending``, ``connecting``, ``active``, ``restarting`` or ``done``."""
        return self.trio_handle.state

    @property
    def done(self) -> bool:
        """True once no further attempt will run."""
        return self.trio_handle.done

    @property
    def result(self) -> SessionResult | None:
        """The latest attempt's result (``None`` before the first attempt ended)."""
        return self.trio_handle.result

    @property
    def results(self) -> list[SessionResult]:
        """Every attempt's result, in order."""
        return list(self.trio_handle.results)

    @property
    def dropped(self) -> str | None:
        """Why the start was dropped, when it never started."""
        return self.trio_handle.dropped

    async def wait(self) -> SessionResult | None:
        """Wait until the session is done and return its last result (``None`` if it never
        started), as ``SessionHandle.wait``.

        Cancellation: raises ``asyncio.CancelledError``; the session itself goes on.
        Raises :class:`AioSupervisorClosed` if the supervisor closes first (it never does
        before its sessions are done, except when its block is left by an error).
        """
        return await self._owner._call(self.trio_handle.wait)

    def cancel(self) -> None:
        """Cancel this session now (its result gets status ``cancelled``; no restart).
        Returns at once; the cancellation happens on trio's next tick."""
        self._owner._soon(self.trio_handle.cancel)


class AioSupervisor:
    """The asyncio face of a trio :class:`~orchestrator.supervisor.Supervisor`; made by
    :func:`open_aio_supervisor` (see the module docstring). ``trio_supervisor`` is the
    supervisor itself, for reading its counters; ``metrics`` the Prometheus metrics
    (:class:`~orchestrator.aio.prometheus.SupervisorMetrics`) when asked for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._sup: Supervisor | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._calls: trio.Nursery | None = None
        self._services: trio.Nursery | None = None
        self._closing = False
        self._pending: set[asyncio.Future[Any]] = set()
        self.metrics: SupervisorMetrics | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def trio_supervisor(self) -> Supervisor:
        """The trio supervisor (raises :class:`AioSupervisorClosed` once closed)."""
        if self._sup is None:
            raise AioSupervisorClosed("the aio supervisor is not running")
        return self._sup

    @property
    def closed(self) -> bool:
        """True once closing has begun (no new calls are accepted)."""
        return self._closing or self._sup is None

    def _soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on trio's next tick (fire and forget; errors are logged)."""
        token = self._token
        if token is None:
            raise AioSupervisorClosed("the aio supervisor is not running")

        def guarded() -> None:
            try:
                fn()
            except Exception:
                log.exception("aio supervisor: callback %r failed", fn)

        try:
            token.run_sync_soon(guarded)
        except trio.RunFinishedError:
            raise AioSupervisorClosed("the aio supervisor has finished") from None

    async def _call(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        orphan: Callable[[T], object] | None = None,
        service: bool = False,
    ) -> T:
        """Run ``await fn(*args)`` as a trio task and wait for it from asyncio.

        ``orphan(value)`` is called (in trio) when the call succeeded but its asyncio
        awaiter was cancelled before it could take the value. ``service``: run it with
        ``nursery.start`` in the services nursery (the value is what it passes to
        ``task_status.started``)."""
        if self.closed or self._token is None:
            raise AioSupervisorClosed("the aio supervisor is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        scope = trio.CancelScope()

        def spawn() -> None:
            nursery = self._services if service else self._calls
            if nursery is None:
                _settle_exception(fut, AioSupervisorClosed("the aio supervisor is closed"))
                return
            if service:
                # nursery.start: the call is over once the service has started; the
                # service runs on until the supervisor closes, and its failure after
                # that ends the guest run (raised by the block).
                nursery.start_soon(self._run_call, nursery.start, (fn, *args), fut, scope, None)
            else:
                nursery.start_soon(self._run_call, fn, args, fut, scope, orphan)

        self._pending.add(fut)
        try:
            self._soon(spawn)
            return await fut
        except asyncio.CancelledError:
            if self._token is not None:
                try:
                    self._token.run_sync_soon(scope.cancel)
                except trio.RunFinishedError:
                    pass
            if orphan is not None and fut.done() and not fut.cancelled():
                if fut.exception() is None:
                    value = fut.result()
                    self._soon(lambda: orphan(value))
            raise
        finally:
            self._pending.discard(fut)

    async def _run_call(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        fut: asyncio.Future[T],
        scope: trio.CancelScope,
        orphan: Callable[[T], object] | None,
    ) -> None:
        try:
            with scope:
                value = await fn(*args)
                if fut.done():  # the awaiter went away while the value was being made
                    if orphan is not None:
                        orphan(value)
                else:
                    fut.set_result(value)
                return
        except BaseException as exc:
            _settle_from_trio(fut, exc)
            if _only_cancelled(exc) or not isinstance(exc, Exception):
                raise
            return
        finally:
            if scope.cancelled_caught and not fut.done():
                fut.cancel()

    # ------------------------------------------------------------------ API
    async def start(
        self,
        spec: SessionSpec,
        driver: Driver | None = None,
        *,
        restart: RestartPolicy | RestartType | str | None = None,
        planned_start: float | None = None,
        max_concurrency: int | None = None,
    ) -> AioSessionHandle:
        """Supervise one session, as ``Supervisor.start`` (same arguments; ``driver`` is a
        trio coroutine function run in the guest run) and return its handle.

        Raises ``SupervisorDraining`` once :meth:`drain` has begun.
        Cancellation: raises ``asyncio.CancelledError``; nothing was started (a session
        started in the same instant is cancelled at once).
        """
        sup = self.trio_supervisor

        async def start() -> SessionHandle:
            return await sup.start(
                spec,
                driver,
                restart=restart,
                planned_start=planned_start,
                max_concurrency=max_concurrency,
            )

        handle = await self._call(start, orphan=lambda h: h.cancel())
        return AioSessionHandle(self, handle)

    async def run_workload(self, workload: Workload) -> WorkloadStats:
        """Run a planned load shape to its end and return its ``WorkloadStats``, as
        ``Supervisor.run_workload``.

        Cancellation: raises ``asyncio.CancelledError``; planning stops, and the sessions
        already started go on (they belong to the supervisor: :meth:`drain` or
        :meth:`cancel` it for that).
        """
        sup = self.trio_supervisor
        stats: WorkloadStats = await self._call(sup.run_workload, workload)
        return stats

    async def wait_idle(self) -> None:
        """Wait until no session is pending, running or restarting.

        Cancellation: raises ``asyncio.CancelledError``; sessions go on."""
        await self._call(self.trio_supervisor.wait_idle)

    async def drain(self, grace_s: float = 30.0) -> None:
        """Stop starting sessions and let running ones finish for up to ``grace_s``
        seconds, then cancel the rest; returns when every session is done
        (``Supervisor.drain``).

        Cancellation: raises ``asyncio.CancelledError``; the drain stops waiting, and what
        was cancelled or dropped stays so (the supervisor stays draining)."""
        await self._call(self.trio_supervisor.drain, grace_s)

    def cancel(self) -> None:
        """Cancel every session now (results ``cancelled``); no new starts. Returns at
        once; the cancellation happens on trio's next tick."""
        sup = self.trio_supervisor
        self._soon(sup.cancel)

    def snapshot(self) -> SupervisorSnapshot:
        """The live status now (``Supervisor.snapshot``). Synchronous: the guest run shares
        this thread, so the supervisor's state is read directly."""
        return self.trio_supervisor.snapshot()

    async def start_service(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start a trio service (a function taking ``task_status``, e.g.
        ``MockServer(config).serve``) in the guest run and return the value it passes to
        ``task_status.started`` (the server's port). The service runs until the supervisor
        closes, after every session has ended; if it fails later, the block raises.

        Cancellation: raises ``asyncio.CancelledError``; a service not yet started is
        cancelled."""
        return await self._call(async_fn, *args, service=True)


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(trio.Cancelled)
        return rest is None
    return False


def _settle_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _settle_from_trio(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Resolve ``fut`` from an exception leaving a trio call: cancellation by the trio side
    becomes :class:`AioSupervisorClosed`; an ``Exception`` is passed on as it is."""
    if fut.done():
        return
    if _only_cancelled(exc):
        fut.set_exception(AioSupervisorClosed("the aio supervisor closed during the call"))
    elif isinstance(exc, Exception):
        fut.set_exception(exc)
    else:
        fut.set_exception(AioSupervisorClosed(f"the trio run stopped: {exc!r}"))


@asynccontextmanager
async def open_aio_supervisor(
    *, metrics: SupervisorMetrics | bool | None = None, **supervisor_options: Any
) -> AsyncIterator[AioSupervisor]:
    """Run a trio :func:`~orchestrator.supervisor.open_supervisor` in a trio guest run on
    the running asyncio loop for the duration of the block; yields an
    :class:`AioSupervisor`.

    ``supervisor_options`` are ``open_supervisor``'s (``sink``, ``restart``, ``breaker``,
    ``monitor``, ``run_info``, ...). ``metrics``: a
    :class:`~orchestrator.aio.prometheus.SupervisorMetrics` (or ``True`` for a new one)
    that observes every record and the live status; it is ``sup.metrics`` and its
    ``registry`` is what to expose (e.g. ``prometheus_client.make_asgi_app(registry)``).

    Only one guest run per loop, and not inside a trio run.

    Resource handling: see the module docstring. Normal exit waits for the calls in
    flight and the sessions; an exception or a cancellation of the host task cancels
    them. The block always waits for the guest run to finish, so the trio side never
    outlives it. Error handling: an exception of the trio side (not of a call: those go
    to their awaiter) is raised from the block; if the block itself raised, that
    exception propagates and the trio side's is logged.
    """
    loop = asyncio.get_running_loop()
    aio = AioSupervisor(loop)
    if metrics is True:
        from orchestrator.aio.prometheus import SupervisorMetrics

        metrics = SupervisorMetrics()
    if metrics is False:
        metrics = None
    if metrics is not None:
        aio.metrics = metrics
        supervisor_options["sink"] = metrics.wrap(supervisor_options.get("sink"))
    ready: asyncio.Future[None] = loop.create_future()
    done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
    # "graceful": wait for calls and sessions; "abort": cancel them.
    mode: dict[str, Any] = {"value": "graceful", "requested": False}
    close_event: list[trio.Event] = []

    async def trio_main() -> None:
        close = trio.Event()
        close_event.append(close)
        if mode["requested"]:  # asked to close before this task ran
            close.set()
        async with trio.open_nursery() as services:
            aio._services = services
            async with open_supervisor(**supervisor_options) as sup:
                if metrics is not None:
                    metrics.bind(sup)
                    services.start_soon(metrics.refresh_forever)
                async with trio.open_nursery() as calls:
                    aio._sup, aio._calls = sup, calls
                    aio._token = trio.lowlevel.current_trio_token()
                    if not ready.done():
                        ready.set_result(None)
                    await close.wait()
                    if mode["value"] == "abort":
                        sup.cancel()
                        calls.cancel_scope.cancel(reason="aio supervisor aborted")
                aio._calls = None
            aio._services = None
            services.cancel_scope.cancel(reason="aio supervisor closed")

    host_task = asyncio.current_task()
    body = {"active": False, "crash_cancelled": False}

    def on_done(result: outcome.Outcome[None]) -> None:
        aio._token = None
        aio._sup = None
        aio._closing = True
        if isinstance(result, outcome.Error) and body["active"] and host_task is not None:
            # The trio side failed while the block runs: interrupt the block (as an
            # asyncio TaskGroup interrupts its owner) and raise the failure from it.
            body["crash_cancelled"] = True
            host_task.cancel()
        for fut in list(aio._pending):
            _settle_exception(fut, AioSupervisorClosed("the aio supervisor has finished"))
        if not done.done():
            done.set_result(result)
        if not ready.done():
            ready.cancel()

    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=on_done,
        host_uses_signal_set_wakeup_fd=True,
    )
    # usable from now on (trio's promise once start_guest_run returned): a close can be
    # requested even while the supervisor is still starting
    aio._token = trio.lowlevel.current_trio_token()

    def request_close(how: str) -> None:
        # runs in trio (run_sync_soon); before trio_main's close event exists, the flag
        # makes trio_main close as soon as it gets there
        if how == "abort":
            mode["value"] = "abort"
        mode["requested"] = True
        aio._closing = True
        if close_event:
            close_event[0].set()

    def close_soon(how: str) -> None:
        aio._closing = True
        token = aio._token
        if token is not None:
            try:
                token.run_sync_soon(lambda: request_close(how))
            except trio.RunFinishedError:
                pass

    async def finish() -> outcome.Outcome[None]:
        """Wait for the guest run to end; a cancellation of this wait turns a graceful
        close into an abort, and the wait goes on (the guest run never outlives us)."""
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(done)
                break
            except asyncio.CancelledError:
                cancelled = True
                close_soon("abort")
        if cancelled:
            raise asyncio.CancelledError
        return result

    try:
        first: set[asyncio.Future[Any]] = {ready, done}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        close_soon("abort")
        await finish()
        raise
    if done.done():
        done.result().unwrap()  # the trio side failed before it was ready
        raise AioSupervisorClosed("the guest run ended before the supervisor started")
    body["active"] = True
    try:
        yield aio
    except BaseException as exc:
        body["active"] = False
        close_soon("abort")
        result = await finish()
        if body["crash_cancelled"] and isinstance(exc, asyncio.CancelledError):
            assert host_task is not None
            if host_task.uncancel() == 0:
                result.unwrap()  # the cancellation was ours: raise the trio failure
        if isinstance(result, outcome.Error):
            log.error("aio supervisor: the trio side failed too", exc_info=result.error)
        raise
    body["active"] = False
    close_soon("graceful")
    result = await finish()
    if body["crash_cancelled"] and host_task is not None:
        host_task.uncancel()  # the failure came after the body's last await
    result.unwrap()
