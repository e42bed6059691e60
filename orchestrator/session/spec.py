"""What one session actor is asked to do: :class:`SessionSpec` and its parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs

from orchestrator.metrics.records import TurnRecord
from orchestrator.metrics.thresholds import check_tags
from orchestrator.protocol.dialect import Dialect

from .audible import DEFAULT_AUDIBLE_DBFS
from .pacer import Pacer
from .reconnect import ReconnectPolicy
from .tools import ToolRegistry

__all__ = [
    "ConnectFactory",
    "ConnectionLike",
    "PacingSpec",
    "RateLimitObserver",
    "SessionSpec",
]


class RateLimitObserver(Protocol):
    """Told of the server's rate-limit state (e.g. the supervisor's start gate):
    ``update`` with each ``rate_limits.updated`` (its ``rate_limits`` list) and ``refused``
    with the message of each ``rate_limit_exceeded`` error, both at trio time ``t``."""

    def update(self, limits: Any, t: float) -> None: ...

    def refused(self, message: str, t: float) -> None: ...


class ConnectionLike(Protocol):
    """What the actor needs of a websocket (``orchestrator.transport.Connection``).
    ``receive`` raises a ``TransportError`` subclass when the socket ends."""

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str: ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None: ...


#: Opens one connection per call; the actor calls it again to reconnect.
ConnectFactory = Callable[[], AbstractAsyncContextManager[ConnectionLike]]


@attrs.frozen(kw_only=True)
class PacingSpec:
    """How user audio is put on the socket.

    ``chunk_ms``: audio per ``input_audio_buffer.append`` (100 ms default). Frame ``n``
    (1-based) carries the audio of ``[(n-1)*chunk, n*chunk)`` and is due at
    ``t0 + n*chunk / realtime_factor``: a microphone can only send audio once it has been
    spoken. ``realtime_factor`` > 1 sends faster than real time. ``pacer`` is a shared
    :class:`~orchestrator.session.pacer.Ticker` (None: a per-session ``SleepPacer``).
    ``max_tail_ms``: with server VAD, how long silence keeps flowing after the source
    ended while waiting for ``speech_stopped`` (a mic stays open).
    """

    chunk_ms: int = 100
    realtime_factor: float = 1.0
    pacer: Pacer | None = attrs.field(default=None, eq=False)
    max_tail_ms: int = 3000

    def __attrs_post_init__(self) -> None:
        if self.chunk_ms <= 0:
            raise ValueError(f"PacingSpec.chunk_ms must be > 0, got {self.chunk_ms}")
        if not self.realtime_factor > 0:
            raise ValueError(f"PacingSpec.realtime_factor must be > 0, got {self.realtime_factor}")
        if self.max_tail_ms < 0:
            raise ValueError(f"PacingSpec.max_tail_ms must be >= 0, got {self.max_tail_ms}")


def _tag_dict(tags: Mapping[str, str]) -> dict[str, str]:
    return check_tags(tags, "SessionSpec.tags")


@attrs.frozen(kw_only=True)
class SessionSpec:
    """Everything one session actor needs.

    - ``target`` (an ``orchestrator.transport.Target``) or ``connect`` (a factory of
      connection context managers, e.g. ``connect_stream`` over a memory stream) — one
      of them; ``dialect`` is taken from the target, else given here;
    - ``config``: the ``SessionConfig`` sent with ``session.update`` on connect (and
      again after every reconnect); tools of ``tools`` are added when it has none;
    - ``tools``: the registry run automatically for function calls (None: the driver
      handles calls itself);
    - ``pacing``, ``reconnect``: see :class:`PacingSpec`, :class:`ReconnectPolicy`;
    - ``max_duration``: seconds after the planned start at which the session is ended
      (status ``failed``, reason ``MaxDurationExceeded``); it bounds the driver too:
      ``open_session`` cancels a driver still running ``driver_grace`` seconds after its
      session ended;
    - ``connect_timeout``: seconds to open a connection (TCP, TLS, upgrade), else
      ``ConnectTimeout``; ``ready_timeout``: seconds from open to a ready session
      (``session.created`` / ``session.updated``), else ``SessionReadyTimeout``; both
      are retried like a dropped connection (None: no limit);
    - ``rollover_after``: connection age (s) after which the next turn boundary moves
      to a fresh connection; ``expiry_margin``: roll over that long before the
      server's ``expires_at``;
    - ``session_id``, ``label``, ``attempt``: identity in the records; ``label`` names
      the session's scenario (every turn and session record carries it as
      ``scenario``); ``tags``: user tags (``{"env": "staging"}``) copied into every
      record of the session;
    - ``planned_start`` (trio time; default: when the actor starts) and ``run_t0``
      (trio time that ``*_s`` record fields count from; default ``planned_start``);
    - ``event_buffer``: default capacity of an event subscription;
    - ``max_protocol_errors``: undecodable frames tolerated before failing;
    - ``on_turn``: called with every finished :class:`TurnRecord` (e.g. a results sink);
    - ``rate_limits``: a :class:`RateLimitObserver` told of the server's rate limits;
    - ``playback_delay``: jitter-buffer delay (s) before assistant audio starts playing;
    - ``audible_dbfs``: the audibility threshold of ``ttfa_ms`` / ``greeting_ms``: the
      first assistant sample counts as audible once a 5 ms window reaches this RMS
      level (default -50 dBFS: well under speech, over codec noise floors and G.711
      idle codes; see :mod:`orchestrator.session.audible`);
    - ``wait_session_created``: without a ``config``, the session is ready once
      ``session.created`` arrived; set False for servers that never send it (WebRTC
      sideband connections);
    - ``seed``: for the backoff jitter.
    """

    target: Any = None
    connect: ConnectFactory | None = attrs.field(default=None, eq=False)
    dialect: Dialect | None = None
    config: Any = None
    tools: ToolRegistry | None = attrs.field(default=None, eq=False)
    pacing: PacingSpec = attrs.field(factory=PacingSpec)
    reconnect: ReconnectPolicy = attrs.field(factory=ReconnectPolicy)
    max_duration: float | None = None
    connect_timeout: float | None = 10.0
    ready_timeout: float | None = 10.0
    driver_grace: float = 2.0
    rollover_after: float | None = None
    expiry_margin: float = 60.0
    session_id: str = "session"
    label: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict, hash=False, converter=_tag_dict)
    attempt: int = 0
    planned_start: float | None = None
    run_t0: float | None = None
    event_buffer: int = 256
    max_protocol_errors: int = 10
    on_turn: Callable[[TurnRecord], None] | None = attrs.field(default=None, eq=False)
    rate_limits: RateLimitObserver | None = attrs.field(default=None, eq=False)
    playback_delay: float = 0.0
    audible_dbfs: float = DEFAULT_AUDIBLE_DBFS
    wait_session_created: bool = True
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if (self.target is None) == (self.connect is None):
            raise ValueError("SessionSpec: give exactly one of target= or connect=")
        if self.event_buffer < 1:
            raise ValueError(f"SessionSpec.event_buffer must be >= 1, got {self.event_buffer}")
        for name in ("max_duration", "connect_timeout", "ready_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"SessionSpec.{name} must be > 0, got {value}")
        if not -120.0 <= self.audible_dbfs <= 0.0:
            raise ValueError(
                f"SessionSpec.audible_dbfs must be in [-120, 0] dBFS, got {self.audible_dbfs}"
            )
        if not self.driver_grace >= 0:
            raise ValueError(f"SessionSpec.driver_grace must be >= 0, got {self.driver_grace}")

    @property
    def wire_dialect(self) -> Dialect:
        """The dialect spoken on the wire."""
        if self.dialect is not None:
            return self.dialect
        if self.target is not None:
            return self.target.dialect
        return Dialect.GA

    def connect_factory(self) -> ConnectFactory:
        """The factory the actor calls for each (re)connection."""
        if self.connect is not None:
            return self.connect
        from orchestrator.transport import open_connection

        target = self.target
        return lambda: open_connection(target)
