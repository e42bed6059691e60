"""What the client-event handlers see of their connection and of the server.

The handlers (:mod:`.dispatch`, :mod:`.turns`, :mod:`.runs`, :mod:`.transcription`,
:mod:`.mcp_listing`) are written against :class:`ConnectionPort`, not against the actor
that calls them: :class:`~.connection.ConnectionActor` satisfies it structurally and
sits above them (it imports the dispatch table; they never import it). Likewise a
connection needs of its server only :class:`ServerPort`, which
:class:`~.server.MockServer` satisfies; the server creates the connections.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

import trio

from orchestrator.protocol import Dialect

from .audio_bank import AudioBank
from .config import ServerConfig
from .faults import ConnectionFaults
from .groundtruth import GroundTruthSink
from .hearing import Hearing
from .inflight import Run
from .rate_limits import RateLimiter
from .state import Conversation
from .stats import ServerStats
from .vad import InputAudio

#: called with the trio time at which the sender hands an event's frame to the socket
Hook = Callable[[float], None] | None


class ServerPort(Protocol):
    """What a connection uses of the server it belongs to: settings, counters and the
    resources shared by all its connections."""

    config: ServerConfig
    stats: ServerStats
    audio_bank: AudioBank
    hearing: Hearing | None
    rate_limiter: RateLimiter
    groundtruth: GroundTruthSink

    async def hold_while_frozen(self) -> float:
        """Wait while a scheduled freeze covers the current time; returns the seconds
        waited. Cancellation: raises ``Cancelled``, nothing held."""


class ConnectionPort(Protocol):
    """One connection as its handlers see it: its settings and seeded randomness, the
    conversation and input audio, the responses in flight, the VAD turn bookkeeping,
    the nursery that runs its tasks, and its outbox (:meth:`emit`, :meth:`close`).

    Every member is shared by the connection's tasks (control, response runs,
    transcriptions, timers); trio's cooperative scheduling keeps each change atomic
    between awaits.
    """

    server: ServerPort
    config: ServerConfig
    stats: ServerStats
    index: int
    session_id: str
    dialect: Dialect
    rng: random.Random
    #: the delta padding's own stream, so that it does not shift the latency draws
    obfuscation_rng: random.Random
    faults: ConnectionFaults
    conv: Conversation
    input: InputAudio
    #: the response in the conversation (at most one), and every response by id
    active: Run | None
    runs: dict[str, Run]
    #: what the user said in each committed audio turn (item id -> text)
    transcripts: dict[str, str]
    #: the input item of the VAD turn being spoken
    speech_item: str | None
    #: a VAD turn that ended while a response was active, answered when that one ends
    pending_turn: str | None
    #: committed audio turns so far
    turns: int
    greeted: bool
    closing: bool
    idle_deadline: float
    #: runs the response and transcription tasks; None before the connection runs
    nursery: trio.Nursery | None

    async def emit(self, event: dict[str, Any], hook: Hook = None) -> dict[str, Any] | None:
        """Queue a GA-shaped event; returns its rendered form (None: not in this
        dialect). Waits while the outbox is full; cancellation: nothing queued."""

    async def close(self, code: int, reason: str) -> None:
        """Close once everything already queued has been sent (once; later calls do
        nothing). Waits while the outbox is full."""

    def arm_idle(self, audio_ms: int) -> None:
        """Start server VAD's idle timeout after a response's ``audio_ms`` of audio."""

    def rearm_idle(self) -> None:
        """Re-read the idle timeout after the turn detection settings changed."""
