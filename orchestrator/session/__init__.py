"""session layer: one conversation actor (tasks, state, timing, tools, reconnect).

Public API::

    open_session(spec) -> AsyncContextManager[Session]
    run_session(spec, *, task_status) -> SessionResult      # await nursery.start(...)
    SessionSpec, PacingSpec, ReconnectPolicy, ToolRegistry, AudioSource
    Session (driver methods: configure, say_text, say_audio, start_text_turn,
             start_audio_turn, send_text, send_audio, seed_history, commit, clear_audio,
             create_response, cancel_response, truncate, delete_item, retrieve_item,
             send_tool_output, wait_for, wait_for_greeting, events, close), Turn
    TurnCheck (``check=`` of say_* / start_*_turn), EXPECTATION_FAILED (its error code)
    ConversationState, TurnTimer, PlaybackClock, TurnBook, SessionCore (pure, usable on
    their own); SessionEnd (how a session ended), Failure (failures as values)

Parts of the actor (see ``actor``): ``core`` (SessionCore: state, turn book, playback,
waiters, subscriptions; synchronous), ``audible`` (first audible sample of an answer),
``greeting`` (the assistant speaking first), ``audio_in`` (pacing task), ``tool_task``,
``effects`` (truncate / cancel / follow-up requests), ``link`` (connections, reconnect,
rollover), ``actor`` (the public driver API, the nursery, the channels).
"""

from orchestrator.metrics.failure import Failure

from .actor import Session, SessionEnd, open_session, run_session
from .book import TurnBook
from .core import SessionCore
from .errors import (
    ConnectTimeout,
    LinkLost,
    MaxDurationExceeded,
    RequestRejected,
    SessionEnded,
    SessionError,
    SessionFailure,
    SessionReadyTimeout,
)
from .pacer import Pacer, SleepPacer, Ticker
from .playback import PlaybackClock
from .reconnect import ReconnectPolicy
from .sources import AudioSource, as_source, find_speech
from .spec import ConnectFactory, ConnectionLike, PacingSpec, SessionSpec
from .state import ConversationState, ItemState, ResponseState, ToolCall
from .subscription import Subscription
from .timing import TurnTimer, usage_fields
from .tools import Tool, ToolOutcome, ToolRegistry
from .turns import EXPECTATION_FAILED, Turn, TurnCheck

__all__ = [
    "EXPECTATION_FAILED",
    "AudioSource",
    "ConnectFactory",
    "ConnectTimeout",
    "ConnectionLike",
    "ConversationState",
    "Failure",
    "ItemState",
    "LinkLost",
    "MaxDurationExceeded",
    "Pacer",
    "PacingSpec",
    "PlaybackClock",
    "ReconnectPolicy",
    "RequestRejected",
    "ResponseState",
    "Session",
    "SessionCore",
    "SessionEnd",
    "SessionEnded",
    "SessionError",
    "SessionFailure",
    "SessionReadyTimeout",
    "SessionSpec",
    "SleepPacer",
    "Subscription",
    "Ticker",
    "Tool",
    "ToolCall",
    "ToolOutcome",
    "ToolRegistry",
    "Turn",
    "TurnBook",
    "TurnCheck",
    "TurnTimer",
    "as_source",
    "find_speech",
    "open_session",
    "run_session",
    "usage_fields",
]
