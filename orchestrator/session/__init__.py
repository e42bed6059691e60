"""session layer: one conversation actor (tasks, state, timing, tools, reconnect).

Public API::

    open_session(spec) -> AsyncContextManager[Session]
    run_session(spec, *, task_status) -> SessionResult      # await nursery.start(...)
    SessionSpec, PacingSpec, ReconnectPolicy, ToolRegistry, AudioSource
    Session (driver methods: configure, say_text, say_audio, start_text_turn,
             start_audio_turn, send_text, send_audio, seed_history, commit, clear_audio,
             create_response, cancel_response, truncate, delete_item, retrieve_item,
             send_tool_output, wait_for, events, close), Turn
    TurnCheck (``check=`` of say_* / start_*_turn), EXPECTATION_FAILED (its error code)
    ConversationState, TurnTimer, PlaybackClock (pure, usable on their own)
"""

from .actor import Session, open_session, run_session
from .errors import (
    LinkLost,
    MaxDurationExceeded,
    RequestRejected,
    SessionEnded,
    SessionError,
    SessionFailure,
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
    "ConnectionLike",
    "ConversationState",
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
    "SessionEnded",
    "SessionError",
    "SessionFailure",
    "SessionSpec",
    "SleepPacer",
    "Subscription",
    "Ticker",
    "Tool",
    "ToolCall",
    "ToolOutcome",
    "ToolRegistry",
    "Turn",
    "TurnCheck",
    "TurnTimer",
    "as_source",
    "find_speech",
    "open_session",
    "run_session",
    "usage_fields",
]
