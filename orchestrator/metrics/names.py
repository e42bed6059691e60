"""Metric names (the DESIGN.md latency table) and where each one is read from."""

from __future__ import annotations

__all__ = [
    "DISTRIBUTION_METRICS",
    "SCALAR_METRICS",
    "SESSION_METRICS",
    "TURN_METRICS",
]

#: Per-session distributions, read from ``SessionResult`` fields of the same name.
#: ``pacer_lateness_*`` are each session's own frame-lateness stats (DESIGN.md
#: ``pacer_lateness_ms`` reported as p50/p99/max), summarized across sessions.
SESSION_METRICS: tuple[str, ...] = (
    "connect_ms",
    "session_ready_ms",
    "greeting_ms",
    "late_start_ms",
    "pacer_lateness_p50_ms",
    "pacer_lateness_p99_ms",
    "pacer_lateness_max_ms",
)

#: Per-turn distributions, read from ``TurnRecord`` fields of the same name
#: (``tool_roundtrip_ms`` uses every tool call's own round trip when the turn lists them).
TURN_METRICS: tuple[str, ...] = (
    "voice_to_voice_ms",
    "voice_to_voice_audible_ms",
    "vad_delay_ms",
    "transcription_ms",
    "ttfb_ms",
    "ttfa_ms",
    "response_created_ms",
    "first_text_ms",
    "response_ms",
    "tool_roundtrip_ms",
    "tool_to_audio_ms",
    "mcp_call_ms",
    "barge_in_stop_ms",
    "playback_underrun_ms",
    "audio_out_ms",
)

#: Every distribution metric, in report order.
DISTRIBUTION_METRICS: tuple[str, ...] = (
    "connect_ms",
    "session_ready_ms",
    "greeting_ms",
    *TURN_METRICS,
    "late_start_ms",
    "pacer_lateness_p50_ms",
    "pacer_lateness_p99_ms",
    "pacer_lateness_max_ms",
)

#: Single-number metrics of a run (``summary["totals"]``), usable in thresholds without
#: a stat: ``sessions_failed==0``, ``session_error_rate<0.01``.
SCALAR_METRICS: tuple[str, ...] = (
    "sessions_total",
    "sessions_completed",
    "sessions_failed",
    "sessions_cancelled",
    "session_error_rate",
    "turns_total",
    "turns_failed",
    "turn_error_rate",
    "late_starts",
    "dropped_starts",
    "reconnects",
    "cost_usd",
)
