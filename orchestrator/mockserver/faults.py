"""Seeded fault injection: what goes wrong, when, and the close code that says why.

``FaultConfig`` is the per-run configuration; ``ConnectionFaults`` is the per-connection
decision maker, drawing from that connection's own random stream so a run is
reproducible from its seed and the order connections arrive in. ``FreezeWindow`` and
:func:`freeze_end` describe scheduled server-wide freezes (no randomness: a freeze is
a point on the server's clock, the same for every connection).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

import attrs

#: Close code used for injected connection drops (RFC 6455 "internal error").
FAULT_CLOSE_CODE = 1011


def _probability(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{attr.name} must be a probability in [0, 1], got {value!r}")


def _non_negative_or_none(
    _inst: object, attr: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attr.name} must be a finite number >= 0 or unset, got {value!r}")


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attr.name} must be a finite number > 0, got {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attr.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class FreezeWindow:
    """A scheduled server-wide freeze: from ``at_s`` seconds after the server started
    serving (its trio clock), for ``ms`` milliseconds.

    While frozen the server still accepts handshakes and reads client frames (VAD and
    planning go on), but sends nothing on any connection: every outgoing frame whose
    send time falls in ``[start, end)`` leaves at ``end``, in its original order.
    """

    at_s: float = attrs.field(validator=_non_negative)
    ms: float = attrs.field(validator=_positive)

    @property
    def end_s(self) -> float:
        """End of the window, in seconds after the server started."""
        return self.at_s + self.ms / 1000.0

    @classmethod
    def parse(cls, spec: str) -> FreezeWindow:
        """Parse the CLI form ``AT_S:MS`` (e.g. ``5:2000``: freeze 2 s from 5 s on)."""
        at, sep, ms = spec.partition(":")
        try:
            if not sep:
                raise ValueError
            at_s, length = float(at), float(ms)
        except ValueError:
            raise ValueError(
                f"freeze {spec!r}: expected AT_S:MS (seconds after start : milliseconds), "
                "e.g. 5:2000"
            ) from None
        try:
            return cls(at_s=at_s, ms=length)
        except ValueError as exc:
            raise ValueError(f"freeze {spec!r}: {exc}") from None


def _freeze_windows(value: Iterable[FreezeWindow]) -> tuple[FreezeWindow, ...]:
    items = tuple(value)
    for item in items:
        if not isinstance(item, FreezeWindow):
            raise TypeError(f"freezes must hold FreezeWindow values, got {item!r}")
    return items


def freeze_end(windows: tuple[FreezeWindow, ...], t_s: float) -> float | None:
    """When the freeze covering ``t_s`` (seconds after the server started) ends, or
    ``None`` if the server is not frozen then. Overlapping or touching windows count as
    one freeze, so the answer is never itself frozen."""
    end: float | None = None
    for window in sorted(windows, key=lambda w: w.at_s):
        if end is None:
            if window.at_s <= t_s < window.end_s:
                end = window.end_s
        elif window.at_s <= end:
            end = max(end, window.end_s)
    return end


@attrs.frozen
class FaultConfig:
    """Which faults to inject (all off by default except the real 60-minute session cap).

    - ``close_after_s``: close every connection this many seconds after it opened.
    - ``close_after_responses``: close after this many finished responses.
    - ``close_probability``: per response, drop the connection mid-response.
    - ``error_probability``: per response, send a ``server_error`` event and fail it.
    - ``stall_probability`` / ``stall_ms``: per response, go silent for ``stall_ms``
      between two deltas early in the answer (after one of its first
      :data:`STALL_WINDOW` deltas), where the caller's playback buffer is still shallow:
      the caller hears the stall as a gap (``playback_underrun_ms``). Later in an answer
      streamed faster than real time, the buffer would hide most of it.
    - ``transcription_failure_probability``: per input transcription, send
      ``conversation.item.input_audio_transcription.failed`` (see
      :func:`transcription_failed_event`) instead of its deltas and ``.completed``.
    - ``mcp_failure_probability``: per MCP call, ``response.mcp_call.failed`` (the
      item gets a ``tool_execution_error``) instead of ``.completed``.
    - ``reject_percent``: refuse this percentage of handshakes with HTTP 429.
    - ``session_max_s``: session lifetime; at expiry ``session_expired`` then close 1001.
    - ``freeze_at_s`` / ``freeze_ms``: one scheduled server-wide freeze (see
      :class:`FreezeWindow`); ``freezes``: any number more. :attr:`freeze_windows` is
      all of them.
    """

    close_after_s: float | None = attrs.field(default=None, validator=_non_negative_or_none)
    close_after_responses: int | None = None
    close_probability: float = attrs.field(default=0.0, validator=_probability)
    error_probability: float = attrs.field(default=0.0, validator=_probability)
    stall_probability: float = attrs.field(default=0.0, validator=_probability)
    stall_ms: float = attrs.field(default=0.0, validator=_non_negative)
    transcription_failure_probability: float = attrs.field(default=0.0, validator=_probability)
    mcp_failure_probability: float = attrs.field(default=0.0, validator=_probability)
    reject_percent: float = 0.0
    session_max_s: float = attrs.field(default=3600.0, validator=_non_negative)
    freeze_at_s: float | None = attrs.field(default=None, validator=_non_negative_or_none)
    freeze_ms: float = attrs.field(default=0.0, validator=_non_negative)
    freezes: tuple[FreezeWindow, ...] = attrs.field(default=(), converter=_freeze_windows)

    def __attrs_post_init__(self) -> None:
        if self.freeze_at_s is not None and self.freeze_ms <= 0:
            raise ValueError("freeze_at_s needs freeze_ms > 0")
        if self.freeze_ms and self.freeze_at_s is None:
            raise ValueError("freeze_ms needs freeze_at_s")
        if not 0.0 <= self.reject_percent <= 100.0:
            raise ValueError(f"reject_percent must be in [0, 100], got {self.reject_percent!r}")
        if self.close_after_responses is not None and self.close_after_responses < 1:
            raise ValueError("close_after_responses must be >= 1")
        if self.session_max_s <= 0:
            raise ValueError("session_max_s must be > 0")

    @property
    def freeze_windows(self) -> tuple[FreezeWindow, ...]:
        """Every scheduled freeze (``freeze_at_s``/``freeze_ms`` first, then ``freezes``)."""
        if self.freeze_at_s is None:
            return self.freezes
        return (FreezeWindow(self.freeze_at_s, self.freeze_ms), *self.freezes)


@attrs.frozen
class ResponseFaults:
    """The faults drawn for one response.

    ``close_at_delta`` / ``error_at_delta`` / ``stall_at_delta``: index of the streamed
    delta before which the fault fires (``None`` = not this response).
    """

    close_at_delta: int | None = None
    error_at_delta: int | None = None
    stall_at_delta: int | None = None
    stall_s: float = 0.0


NO_FAULTS = ResponseFaults()

#: A stall fires before one of deltas 1..STALL_WINDOW of an answer (never before the
#: first delta: that would only delay the answer, which is what ``ttfb_ms`` measures).
STALL_WINDOW = 5


@attrs.define(eq=False)
class ConnectionFaults:
    """Per-connection fault decisions (pure; the actor acts on them)."""

    config: FaultConfig
    rng: random.Random
    responses_done: int = 0
    #: transcription failures draw from their own stream (derived from ``rng`` without
    #: consuming it), so turning them on does not reshuffle the response faults
    _transcription_rng: random.Random = attrs.field(
        default=attrs.Factory(
            lambda self: random.Random(f"{self.rng.getstate()[1][:4]}:transcription"),
            takes_self=True,
        )
    )
    _mcp_rng: random.Random = attrs.field(
        default=attrs.Factory(
            lambda self: random.Random(f"{self.rng.getstate()[1][:4]}:mcp"), takes_self=True
        )
    )

    def for_response(self, n_deltas: int) -> ResponseFaults:
        """Draw the faults of the next response, which will stream ``n_deltas`` deltas.

        Always consumes the same amount of randomness, so enabling one fault does not
        reshuffle the others.
        """
        c = self.config
        draws = [self.rng.random() for _ in range(3)]
        points = [self.rng.randrange(max(1, n_deltas)) for _ in range(2)]
        points.append(1 + self.rng.randrange(max(1, min(n_deltas - 1, STALL_WINDOW))))
        if not (c.close_probability or c.error_probability or c.stall_probability):
            return NO_FAULTS
        return ResponseFaults(
            close_at_delta=points[0] if draws[0] < c.close_probability else None,
            error_at_delta=points[1] if draws[1] < c.error_probability else None,
            stall_at_delta=points[2] if draws[2] < c.stall_probability else None,
            stall_s=c.stall_ms / 1000.0,
        )

    def transcription_fails(self) -> bool:
        """Draw whether the next input transcription fails (one draw each, always)."""
        draw = self._transcription_rng.random()
        return draw < self.config.transcription_failure_probability

    def transcription_failure(self, item_id: str) -> dict[str, Any] | None:
        """The ``…input_audio_transcription.failed`` event for the transcription of
        ``item_id`` when it is drawn to fail (:meth:`transcription_fails`), else None."""
        return transcription_failed_event(item_id) if self.transcription_fails() else None

    def mcp_call_fails(self) -> bool:
        """Draw whether the next MCP call fails (its own stream, one draw each)."""
        return self._mcp_rng.random() < self.config.mcp_failure_probability

    def response_finished(self) -> bool:
        """Count one finished response; True when ``close_after_responses`` is reached."""
        self.responses_done += 1
        limit = self.config.close_after_responses
        return limit is not None and self.responses_done >= limit


#: what an injected transcription failure says (the real service's wording for a failed
#: transcription was not captured: the shape is the ``openai`` model's)
TRANSCRIPTION_FAILED_MESSAGE = "Input audio transcription failed. (injected fault)"


def transcription_failed_event(item_id: str) -> dict[str, Any]:
    """A GA-shaped ``conversation.item.input_audio_transcription.failed`` for the user
    audio item ``item_id`` (the same in beta)."""
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {
            "type": "server_error",
            "code": "transcription_failed",
            "message": TRANSCRIPTION_FAILED_MESSAGE,
            "param": None,
        },
    }


def reject_handshake(config: FaultConfig, rng: random.Random) -> bool:
    """Decide whether to refuse one handshake with HTTP 429."""
    if config.reject_percent <= 0:
        return False
    return rng.random() * 100.0 < config.reject_percent
