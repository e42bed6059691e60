"""Per-turn timing marks (pure): fed ``(event, time)`` pairs, produces a ``TurnRecord``.

Every metric is a difference of two marks, with the anchors of DESIGN.md's latency
table:

- ``voice_to_voice_ms``: planned time of the last speech frame -> first audio delta;
  ``voice_to_voice_audible_ms``: the same -> first audible sample as played;
- ``vad_delay_ms``: planned last speech frame -> ``speech_stopped`` received;
- ``ttfb_ms`` / ``response_created_ms`` / ``first_text_ms`` / ``response_ms``: from the
  *turn end as the server knows it* (``speech_stopped`` with server VAD, else our first
  ``response.create`` sent) to the first audio delta (first text delta when no audio
  came: text mode) / ``response.created`` / first transcript or text delta / the last
  ``response.done`` of the turn; ``ttfa_ms``: the same anchor -> first audible sample
  of the turn's audio at the time the simulated playback plays it (set by the core via
  :meth:`TurnTimer.mark_audible`; see :mod:`.audible`);
- ``playback_underrun_ms``: time the simulated playback ran dry inside the turn's
  answers (summed over its responses; added by the core via :meth:`TurnTimer.add_underrun`);
- ``tool_roundtrip_ms``: ``function_call_arguments.done`` -> our output sent (max over
  the turn's calls; each call keeps its own in ``tool_calls``);
- ``tool_to_audio_ms``: follow-up ``response.create`` sent (after the outputs) -> first
  audio delta of the follow-up response (text delta in text mode);
- ``barge_in_stop_ms``: planned start of the interrupting speech -> the interrupted
  response's audio stopped (set by the actor via :meth:`TurnTimer.mark_barge_in_stop`);
- ``audio_out_ms``: assistant audio received in this turn; pacer lateness of this turn's
  audio frames (p50/p99/max);
- ``gap_ms``: time the turn was open without a connection (reconnect gaps), added by the
  actor via :meth:`TurnTimer.add_gap`.

"Planned" marks come from the audio plan (``t0 + sample / rate``), never from when the
loop got around to it. Times are trio clock seconds; the record's ``t_*_s`` fields are
relative to ``run_t0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from orchestrator import protocol as P
from orchestrator.metrics.failure import Failure
from orchestrator.metrics.records import ErrorRecord, ToolCallRecord, TurnRecord
from orchestrator.metrics.stats import percentile

from .state import b64_decoded_len

__all__ = ["TurnTimer", "usage_fields"]


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start) * 1000.0


def usage_fields(usage: Any) -> dict[str, int | None]:
    """The ``USAGE_FIELDS`` of a protocol ``Usage`` (None where the server gave none)."""
    if usage is None:
        return {}
    itd = getattr(usage, "input_token_details", None)
    otd = getattr(usage, "output_token_details", None)
    ctd = getattr(itd, "cached_tokens_details", None) if itd is not None else None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "input_text_tokens": getattr(itd, "text_tokens", None),
        "input_audio_tokens": getattr(itd, "audio_tokens", None),
        "input_cached_tokens": getattr(itd, "cached_tokens", None),
        "input_cached_text_tokens": _get(ctd, "text_tokens"),
        "input_cached_audio_tokens": _get(ctd, "audio_tokens"),
        "output_text_tokens": getattr(otd, "text_tokens", None),
        "output_audio_tokens": getattr(otd, "audio_tokens", None),
        "reasoning_tokens": getattr(otd, "reasoning_tokens", None),
    }


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


@attrs.define(eq=False)
class _ToolMark:
    name: str
    args_done_at: float
    output_sent_at: float | None = None
    ok: bool = True
    error: str | None = None
    failure: Failure | None = None


@attrs.define(eq=False)
class TurnTimer:
    """The marks of one turn. Feed server events with :meth:`on_event`, sent client
    events with :meth:`on_sent`; plan marks are set directly. ``bytes_per_ms`` converts
    output audio bytes to ms (48 for 24 kHz PCM16)."""

    opened_at: float
    planned_speech_start: float | None = None
    planned_speech_end: float | None = None
    planned_barge_in: float | None = None
    speech_stopped_at: float | None = None
    create_sent_at: float | None = None
    response_created_at: float | None = None
    first_audio_at: float | None = None
    first_text_at: float | None = None
    first_output_text_at: float | None = None
    last_done_at: float | None = None
    followup_sent_at: float | None = None
    followup_audio_at: float | None = None
    followup_text_at: float | None = None
    barge_in_stop_at: float | None = None
    first_audible_at: float | None = None
    transcription_at: float | None = None
    closed_at: float | None = None
    gap_ms: float = 0.0
    underrun_ms: float = 0.0
    audio_bytes: int = 0
    bytes_per_ms: float = 48.0
    lateness_ms: list[float] = attrs.field(factory=list)
    tools: dict[str, _ToolMark] = attrs.field(factory=dict)
    usage: dict[str, int] = attrs.field(factory=dict)
    event_counts: dict[str, int] = attrs.field(factory=dict)
    errors: list[ErrorRecord] = attrs.field(factory=list)
    response_ids: list[str] = attrs.field(factory=list)
    response_status: str | None = None
    status_reason: str | None = None

    # ------------------------------------------------------------------ feeding
    def on_event(self, event: Any, t: float) -> None:
        """A server event of this turn was received at ``t``."""
        counts = self.event_counts
        etype = event.type
        counts[etype] = counts.get(etype, 0) + 1
        handler = _SERVER.get(type(event))
        if handler is not None:
            handler(self, event, t)

    def on_sent(self, event: Any, t: float) -> None:
        """A client event of this turn was written to the socket at ``t``."""
        handler = _CLIENT.get(type(event))
        if handler is not None:
            handler(self, event, t)

    def add_lateness(self, ms: float) -> None:
        """Lateness of one audio frame of this turn (actual minus planned send time)."""
        self.lateness_ms.append(ms)

    def add_error(self, record: ErrorRecord) -> None:
        self.errors.append(record)

    def tool_result(
        self, call_id: str, *, ok: bool, error: str | None, failure: Failure | None = None
    ) -> None:
        """Record whether a call's handler succeeded (set before its output is sent)."""
        mark = self.tools.get(call_id)
        if mark is not None:
            mark.ok = ok
            mark.error = error
            mark.failure = failure

    def mark_barge_in_stop(self, t: float) -> None:
        if self.barge_in_stop_at is None:
            self.barge_in_stop_at = t

    def mark_audible(self, t: float) -> None:
        """The turn's audio has an audible sample that plays at ``t`` (the earliest
        counts: a tool follow-up's answer may be found after its first answer's)."""
        if self.first_audible_at is None or t < self.first_audible_at:
            self.first_audible_at = t

    def playback_stopped(self, t: float) -> None:
        """Playback stopped at ``t`` (barge-in, lost connection): an audible sample due
        later was never heard."""
        if self.first_audible_at is not None and self.first_audible_at > t:
            self.first_audible_at = None

    def add_underrun(self, ms: float) -> None:
        """The playback of one of the turn's answers ran dry for ``ms``."""
        self.underrun_ms += ms

    def add_gap(self, gap_start: float, t: float) -> None:
        """A connection gap that began at ``gap_start`` lasted until ``t`` (or the turn
        ended at ``t``): add the part of it during which this turn was open."""
        overlap = t - max(gap_start, self.opened_at)
        if overlap > 0:
            self.gap_ms += overlap * 1000.0

    # ------------------------------------------------------------------ derived
    @property
    def anchor(self) -> float | None:
        """Turn end as the server knows it."""
        return self.speech_stopped_at if self.speech_stopped_at is not None else self.create_sent_at

    @property
    def audio_out_ms(self) -> float:
        return self.audio_bytes / self.bytes_per_ms

    def metrics(self) -> dict[str, float | None]:
        """All latency metrics of the turn (None = not measured)."""
        anchor = self.anchor
        first_out = (
            self.first_audio_at if self.first_audio_at is not None else (self.first_output_text_at)
        )
        follow = (
            self.followup_audio_at
            if self.followup_audio_at is not None
            else (self.followup_text_at)
        )
        roundtrips = [
            _ms(m.args_done_at, m.output_sent_at)
            for m in self.tools.values()
            if m.output_sent_at is not None
        ]
        stop = None
        if self.planned_barge_in is not None and self.barge_in_stop_at is not None:
            stop = max(0.0, (self.barge_in_stop_at - self.planned_barge_in) * 1000.0)
        return {
            "voice_to_voice_ms": _ms(self.planned_speech_end, self.first_audio_at),
            "voice_to_voice_audible_ms": _ms(self.planned_speech_end, self.first_audible_at),
            "vad_delay_ms": _ms(self.planned_speech_end, self.speech_stopped_at),
            "transcription_ms": _ms(self.planned_speech_end, self.transcription_at),
            "ttfb_ms": _ms(anchor, first_out),
            "ttfa_ms": _ms(anchor, self.first_audible_at),
            "response_created_ms": _ms(anchor, self.response_created_at),
            "first_text_ms": _ms(anchor, self.first_text_at),
            "response_ms": _ms(anchor, self.last_done_at),
            "tool_roundtrip_ms": max(r for r in roundtrips if r is not None)
            if roundtrips
            else None,
            "tool_to_audio_ms": _ms(self.followup_sent_at, follow),
            "barge_in_stop_ms": stop,
            "playback_underrun_ms": self.underrun_ms if self.audio_bytes else None,
            "audio_out_ms": self.audio_out_ms if self.audio_bytes else None,
            "pacer_lateness_p50_ms": percentile(self.lateness_ms, 50),
            "pacer_lateness_p99_ms": percentile(self.lateness_ms, 99),
            "pacer_lateness_max_ms": max(self.lateness_ms) if self.lateness_ms else None,
        }

    def tool_records(self) -> tuple[ToolCallRecord, ...]:
        return tuple(
            ToolCallRecord(
                name=m.name,
                call_id=call_id,
                roundtrip_ms=_ms(m.args_done_at, m.output_sent_at),
                ok=m.ok,
                error=m.error,
                failure=m.failure,
            )
            for call_id, m in self.tools.items()
        )

    def record(
        self,
        *,
        session_id: str,
        turn_index: int,
        mode: str,
        run_t0: float,
        label: str | None = None,
        scenario: str | None = None,
        tags: dict[str, str] | None = None,
        transcript: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        failure: Failure | None = None,
        user_transcript: str | None = None,
    ) -> TurnRecord:
        """The turn as a ``TurnRecord`` (one JSON line). ``status`` / ``reason`` /
        ``user_transcript`` are the actor's (None while the turn is open)."""
        start = (
            self.planned_speech_start if self.planned_speech_start is not None else (self.opened_at)
        )
        end = self.closed_at or self.last_done_at or start
        return TurnRecord(
            session_id=session_id,
            turn_index=turn_index,
            label=label,
            scenario=scenario,
            tags=tags,
            mode=mode,  # type: ignore[arg-type]
            t_start_s=start - run_t0,
            t_end_s=max(end, start) - run_t0,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            failure=failure,
            gap_ms=self.gap_ms,
            tool_calls=self.tool_records(),
            response_id=self.response_ids[-1] if self.response_ids else None,
            response_status=self.response_status,
            status_reason=self.status_reason,
            errors=tuple(self.errors),
            event_counts=dict(self.event_counts),
            transcript=transcript,
            user_transcript=user_transcript,
            **self.metrics(),  # type: ignore[arg-type]
            **self.usage,
        )

    # ------------------------------------------------------------------ handlers
    def _speech_stopped(self, ev: Any, t: float) -> None:
        self.speech_stopped_at = t

    def _transcription_done(self, ev: Any, t: float) -> None:
        if self.transcription_at is None:
            self.transcription_at = t

    def _response_created(self, ev: Any, t: float) -> None:
        if self.response_created_at is None:
            self.response_created_at = t
        rid = ev.response.id
        if rid not in self.response_ids:
            self.response_ids.append(rid)

    def _audio_delta(self, ev: Any, t: float) -> None:
        self.audio_bytes += b64_decoded_len(ev.delta)
        if self.first_audio_at is None:
            self.first_audio_at = t
        if (
            self.followup_audio_at is None
            and self.followup_sent_at is not None
            and t >= self.followup_sent_at
        ):
            self.followup_audio_at = t

    def _transcript_delta(self, ev: Any, t: float) -> None:
        if self.first_text_at is None:
            self.first_text_at = t

    def _text_delta(self, ev: Any, t: float) -> None:
        if self.first_text_at is None:
            self.first_text_at = t
        if self.first_output_text_at is None:
            self.first_output_text_at = t
        if (
            self.followup_text_at is None
            and self.followup_sent_at is not None
            and t >= self.followup_sent_at
        ):
            self.followup_text_at = t

    def _arguments_done(self, ev: Any, t: float) -> None:
        self.tools.setdefault(ev.call_id, _ToolMark(name=ev.name, args_done_at=t))

    def _response_done(self, ev: Any, t: float) -> None:
        r = ev.response
        self.last_done_at = t
        if r.id not in self.response_ids:
            self.response_ids.append(r.id)
        self.response_status = r.status
        details = r.status_details
        self.status_reason = _status_reason(details)
        for key, value in usage_fields(r.usage).items():
            if value is not None:
                self.usage[key] = self.usage.get(key, 0) + value

    def _sent_item(self, ev: Any, t: float) -> None:
        item = ev.item
        if isinstance(item, P.FunctionCallOutputItem):
            mark = self.tools.get(item.call_id or "")
            if mark is not None and mark.output_sent_at is None:
                mark.output_sent_at = t

    def _sent_create(self, ev: Any, t: float) -> None:
        if self.followup_sent_at is None and any(
            m.output_sent_at is not None for m in self.tools.values()
        ):
            self.followup_sent_at = t
        elif self.create_sent_at is None:
            self.create_sent_at = t


def _status_reason(details: Any) -> str | None:
    if details is None:
        return None
    reason = getattr(details, "reason", None)
    if reason:
        return reason
    error = getattr(details, "error", None)
    if error is not None:
        code = _get(error, "code")
        message = _get(error, "message")
        return f"{code}: {message}" if code else message
    return getattr(details, "type", None)


_SERVER: dict[type, Callable[[TurnTimer, Any, float], None]] = {
    P.InputAudioBufferSpeechStopped: TurnTimer._speech_stopped,
    P.ConversationItemInputAudioTranscriptionCompleted: TurnTimer._transcription_done,
    P.ResponseCreated: TurnTimer._response_created,
    P.ResponseOutputAudioDelta: TurnTimer._audio_delta,
    P.ResponseOutputAudioTranscriptDelta: TurnTimer._transcript_delta,
    P.ResponseOutputTextDelta: TurnTimer._text_delta,
    P.ResponseFunctionCallArgumentsDone: TurnTimer._arguments_done,
    P.ResponseDone: TurnTimer._response_done,
}
_CLIENT: dict[type, Callable[[TurnTimer, Any, float], None]] = {
    P.ConversationItemCreate: TurnTimer._sent_item,
    P.ResponseCreate: TurnTimer._sent_create,
}
