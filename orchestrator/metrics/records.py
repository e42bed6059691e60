"""The records of ``results.jsonl``: one JSON object per line, tagged by ``"kind"``.

The supervisor's sink writes the file, one flushed ``to_json_line`` per record
(``append_jsonl`` below does the same on any open file); the report, summary and
compare code read it back with ``read_results`` / ``parse_results``.
All times are on the run's monotonic clock: ``*_s`` fields are seconds since the run
started, ``*_ms`` fields are durations in milliseconds. Metric names and anchors are the
DESIGN.md latency table's; a metric that was not measured is ``None`` and omitted from
the JSON line (never 0).

``"kind": "turn"`` -> :class:`TurnRecord` (one per user turn)
    identity    ``session_id: str``, ``turn_index: int`` (0-based within the session),
                ``label: str | None`` (the turn's name), ``mode: "audio"|"text"|"manual"``,
                ``scenario: str | None`` (the session's scenario: a file's ``name``,
                ``builtin:…`` for the built-in conversation), ``tags: dict[str, str] |
                None`` (user tags: the run's ``--tag`` and the scenario's ``tags``)
    times       ``t_start_s``, ``t_end_s`` (seconds since run start; used for over-time plots)
    outcome     ``status: "completed"|"interrupted"|"failed"|"cancelled"|None`` (the turn's
                final status: ``interrupted`` = cut off by a barge-in, ``cancelled`` = the
                session ended first; ``None`` in files written before it was recorded),
                ``reason: str | None`` (why, when not completed), ``failure``
                (the same as a value when an exception or a server error caused it:
                ``{type, message, where, traceback}``, see ``metrics.failure``), ``gap_ms`` (time without a
                connection while the turn was open, from reconnects; 0.0 when none)
    latency ms  ``voice_to_voice_ms``, ``vad_delay_ms``, ``ttfb_ms``, ``response_created_ms``,
                ``first_text_ms``, ``response_ms``, ``tool_roundtrip_ms`` (max over the
                turn's calls), ``tool_to_audio_ms``, ``barge_in_stop_ms``, ``audio_out_ms``
                (duration of assistant audio received), ``pacer_lateness_p50_ms``,
                ``pacer_lateness_p99_ms``, ``pacer_lateness_max_ms`` (frames of this turn)
    audible ms  ``ttfa_ms`` (ttfb anchor -> first audible assistant sample as the simulated
                playback plays it), ``voice_to_voice_audible_ms`` (planned last speech
                frame -> the same), ``playback_underrun_ms`` (time the playback ran dry
                inside the turn's answers; 0.0 for smooth audio, None without audio)
    tools       ``tool_calls: tuple[ToolCallRecord, ...]`` (name, call_id, roundtrip_ms, ok,
                error); ``mcp_calls: tuple[McpCallRecord, ...]`` (the server's MCP calls
                and approval requests: name, server_label, status, approval,
                duration_ms) and ``mcp_call_ms`` (``response.mcp_call.in_progress`` ->
                ``.completed`` / ``.failed``, max over the turn's calls)
    response    ``response_id``, ``response_status`` ("completed"|"cancelled"|"failed"|
                "incomplete"|...), ``status_reason``
    usage       ``input_tokens``, ``output_tokens``, ``input_text_tokens``,
                ``input_audio_tokens``, ``input_cached_tokens``, ``input_cached_text_tokens``,
                ``input_cached_audio_tokens``, ``output_text_tokens``, ``output_audio_tokens``,
                ``reasoning_tokens`` (all ``int | None``, from ``response.done``; summed over
                the turn's responses when a tool call adds a follow-up response)
    other       ``errors: tuple[ErrorRecord, ...]`` (code, message, event_type, t_s),
                ``event_counts: dict[str, int]`` (server event type -> count in this turn),
                ``transcript: str | None`` (assistant transcript/text),
                ``user_transcript: str | None`` (the server's transcription of the user
                audio as known when the turn ended, else the text the user sent)

    A turn *failed* (``TurnRecord.failed``) when its status is ``"failed"``, it has an
    error record, or its response status is ``"failed"``. A ``"cancelled"`` response or an
    ``"interrupted"``/``"cancelled"`` turn is not a failure by itself.

``"kind": "session"`` -> :class:`SessionResult` (one per session actor, written when it ends)
    ``session_id``, ``status: "completed"|"failed"|"cancelled"``, ``reason: str | None``
    ("TypeName: message" for failures), ``failure`` (the failure as a value:
    ``{type, message, where, traceback, code}``; the summary groups by its ``type``),
    ``label`` and ``scenario`` (both the scenario name), ``tags`` (as a turn's),
    ``attempt`` (0 for the first run of this session id, +1 per supervisor restart: one
    logical session may have several records, the summary counts it once, by its last
    attempt), ``planned_start_s``,
    ``late_start_ms`` (actual minus planned start), ``connect_ms``, ``session_ready_ms``,
    ``t_end_s``, ``turns`` (count; the turn lines are separate), ``connect_attempts``
    (connections tried by this attempt, reconnect attempts included, whether or not TCP
    connected), ``connect_failed`` (those of them that failed before the websocket
    handshake: TCP or TLS; a connect that timed out is not among them, whatever stage it
    reached; None in records written before it was counted),
    ``refused_by_status`` (handshakes the server refused, by HTTP status as a string:
    ``{"429": 3}``; None when none), ``reconnects``,
    ``rollovers`` (planned moves to a fresh connection; included in ``reconnects``),
    ``gap_ms_total`` (time without a connection during reconnects), ``errors`` (count),
    ``protocol_errors`` (undecodable server frames; also counted in ``errors``),
    ``audio_frames_dropped`` (input audio frames made for a connection that was lost
    before they were sent, so never sent), ``events_received``,
    ``notifications_dropped``, ``greeting_ms`` (session ready -> first audible sample of
    the assistant's unprompted first answer as played; None when it did not speak
    first), ``pacer_lateness_p50_ms`` /
    ``_p99_ms`` / ``_max_ms`` (all frames of the session), and the same usage token fields
    as a turn, as totals over every response of the session (``None`` = not tracked; the
    summary then sums the session's turns instead).

Fields added later (``TurnRecord.status``/``reason``/``failure``/``user_transcript``/``gap_ms``/
``ttfa_ms``/``voice_to_voice_audible_ms``/``playback_underrun_ms``,
``SessionResult.rollovers``/``protocol_errors``/``audio_frames_dropped``/``greeting_ms``/
``connect_attempts``/``connect_failed``/``refused_by_status``, ``scenario``/``tags`` of
both) are optional with defaults, so older files still read.

``"kind": "snapshot"`` -> :class:`TimelinePoint` (optional; live status samples written by
    the supervisor): ``t_s``, ``active``, ``started``, ``completed``, ``failed``,
    ``loop_lag_ms``.

Unknown keys are ignored when reading (forward compatibility); unknown kinds are skipped.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable
from typing import IO, Any, ClassVar, Literal

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_unstructure_fn
from cattrs.preconf.orjson import make_converter

from orchestrator.metrics.failure import Failure

__all__ = [
    "ErrorRecord",
    "Record",
    "ResultsFile",
    "ResultsFormatError",
    "SessionResult",
    "TimelinePoint",
    "McpCallRecord",
    "ToolCallRecord",
    "TurnRecord",
    "USAGE_FIELDS",
    "append_jsonl",
    "parse_results",
    "read_results",
    "record_from_dict",
    "record_to_dict",
    "to_json_line",
]

log = logging.getLogger(__name__)

Mode = Literal["audio", "text", "manual"]
SessionStatus = Literal["completed", "failed", "cancelled"]
TurnStatus = Literal["completed", "interrupted", "failed", "cancelled"]

#: Usage token field names shared by :class:`TurnRecord` and :class:`SessionResult`.
USAGE_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "input_text_tokens",
    "input_audio_tokens",
    "input_cached_tokens",
    "input_cached_text_tokens",
    "input_cached_audio_tokens",
    "output_text_tokens",
    "output_audio_tokens",
    "reasoning_tokens",
)


@attrs.frozen(kw_only=True)
class ErrorRecord:
    """One error seen during a turn: a server ``error`` event, a failed response, a local
    failure (tool exception, timeout). ``event_type`` is the wire event type that carried
    it (e.g. ``"error"``, ``"response.done"``) or a local source name (``"tool"``,
    ``"timeout"``); ``t_s`` is when it was seen, in seconds since run start."""

    code: str | None = None
    message: str = ""
    event_type: str | None = None
    t_s: float | None = None


@attrs.frozen(kw_only=True)
class ToolCallRecord:
    """One function call of a turn: ``roundtrip_ms`` is ``function_call_arguments.done`` ->
    our ``function_call_output`` sent; ``ok`` is False when the tool raised or timed out
    (``error`` says why; ``failure``, when the handler raised, holds the exception with
    a traceback excerpt)."""

    name: str
    call_id: str
    roundtrip_ms: float | None = None
    ok: bool = True
    error: str | None = None
    failure: Failure | None = None


@attrs.frozen(kw_only=True)
class McpCallRecord:
    """One MCP call the server made in a turn, or asked approval for: ``status``
    ``completed`` / ``failed`` / ``in_progress`` (the turn ended first) /
    ``approval_requested``; ``approval``: ``approved`` / ``denied`` when it was asked
    (None: no approval asked, or not answered); ``duration_ms``:
    ``response.mcp_call.in_progress`` -> ``.completed`` / ``.failed`` as received."""

    name: str
    server_label: str
    status: str
    approval: str | None = None
    duration_ms: float | None = None


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _mcp_tuple(value: Any) -> tuple[McpCallRecord, ...]:
    # typed Any: callers that spread ``**metrics`` dicts into a record stay well-typed
    return tuple(value)


@attrs.frozen(kw_only=True)
class TurnRecord:
    """One user turn of one session (``"kind": "turn"``); see the module docstring."""

    kind: ClassVar[str] = "turn"

    session_id: str
    turn_index: int
    label: str | None = None
    mode: Mode = "audio"
    scenario: str | None = None
    tags: dict[str, str] | None = attrs.field(default=None, hash=False)
    t_start_s: float
    t_end_s: float
    status: TurnStatus | None = None
    reason: str | None = None
    failure: Failure | None = None
    gap_ms: float = 0.0

    voice_to_voice_ms: float | None = None
    voice_to_voice_audible_ms: float | None = None
    vad_delay_ms: float | None = None
    transcription_ms: float | None = None
    ttfb_ms: float | None = None
    ttfa_ms: float | None = None
    response_created_ms: float | None = None
    first_text_ms: float | None = None
    response_ms: float | None = None
    tool_roundtrip_ms: float | None = None
    tool_to_audio_ms: float | None = None
    barge_in_stop_ms: float | None = None
    playback_underrun_ms: float | None = None
    audio_out_ms: float | None = None
    pacer_lateness_p50_ms: float | None = None
    pacer_lateness_p99_ms: float | None = None
    pacer_lateness_max_ms: float | None = None
    tool_calls: tuple[ToolCallRecord, ...] = attrs.field(default=(), converter=_tuple)
    mcp_call_ms: float | None = None
    mcp_calls: tuple[McpCallRecord, ...] = attrs.field(default=(), converter=_mcp_tuple)

    response_id: str | None = None
    response_status: str | None = None
    status_reason: str | None = None

    input_tokens: int | None = None
    output_tokens: int | None = None
    input_text_tokens: int | None = None
    input_audio_tokens: int | None = None
    input_cached_tokens: int | None = None
    input_cached_text_tokens: int | None = None
    input_cached_audio_tokens: int | None = None
    output_text_tokens: int | None = None
    output_audio_tokens: int | None = None
    reasoning_tokens: int | None = None

    errors: tuple[ErrorRecord, ...] = attrs.field(default=(), converter=_tuple)
    event_counts: dict[str, int] = attrs.field(factory=dict, hash=False)
    transcript: str | None = None
    user_transcript: str | None = None

    @property
    def failed(self) -> bool:
        """True when the turn's status is ``"failed"``, it has an error record, or its
        response status is ``"failed"`` (interrupted/cancelled turns are not failures)."""
        return self.status == "failed" or bool(self.errors) or self.response_status == "failed"


@attrs.frozen(kw_only=True)
class SessionResult:
    """The outcome of one session actor (``"kind": "session"``); see the module docstring."""

    kind: ClassVar[str] = "session"

    session_id: str
    status: SessionStatus
    reason: str | None = None
    failure: Failure | None = None
    label: str | None = None
    scenario: str | None = None
    tags: dict[str, str] | None = attrs.field(default=None, hash=False)
    attempt: int = 0
    planned_start_s: float
    late_start_ms: float | None = None
    connect_ms: float | None = None
    session_ready_ms: float | None = None
    t_end_s: float
    turns: int = 0
    connect_attempts: int = 0
    connect_failed: int | None = None
    refused_by_status: dict[str, int] | None = attrs.field(default=None, hash=False)
    reconnects: int = 0
    rollovers: int = 0
    gap_ms_total: float = 0.0
    errors: int = 0
    protocol_errors: int = 0
    audio_frames_dropped: int = 0
    events_received: int = 0
    notifications_dropped: int = 0
    greeting_ms: float | None = None
    pacer_lateness_p50_ms: float | None = None
    pacer_lateness_p99_ms: float | None = None
    pacer_lateness_max_ms: float | None = None

    input_tokens: int | None = None
    output_tokens: int | None = None
    input_text_tokens: int | None = None
    input_audio_tokens: int | None = None
    input_cached_tokens: int | None = None
    input_cached_text_tokens: int | None = None
    input_cached_audio_tokens: int | None = None
    output_text_tokens: int | None = None
    output_audio_tokens: int | None = None
    reasoning_tokens: int | None = None

    #: responses refused with ``rate_limit_exceeded``; the last ``rate_limits.updated``
    #: seen, flat (``tokens_remaining``, ``tokens_limit``, ``tokens_reset_s``, ``requests_*``)
    rate_limited: int = 0
    rate_limits: dict[str, float] | None = None


@attrs.frozen(kw_only=True)
class TimelinePoint:
    """A live-status sample (``"kind": "snapshot"``) at ``t_s`` seconds since run start."""

    kind: ClassVar[str] = "snapshot"

    t_s: float
    active: int
    started: int = 0
    completed: int = 0
    failed: int = 0
    loop_lag_ms: float | None = None


Record = TurnRecord | SessionResult | TimelinePoint
_KINDS: dict[str, type[TurnRecord] | type[SessionResult] | type[TimelinePoint]] = {
    cls.kind: cls for cls in (TurnRecord, SessionResult, TimelinePoint)
}


class ResultsFormatError(ValueError):
    """A ``results.jsonl`` line that cannot be read; the message names ``file:line``."""


def _configure(conv: cattrs.Converter) -> cattrs.Converter:
    def drop_none_factory(cls: type) -> Any:
        base: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, conv)

        def unstructure(obj: Any) -> dict[str, Any]:
            return {k: v for k, v in base(obj).items() if v is not None}

        return unstructure

    conv.register_unstructure_hook_factory(attrs.has, drop_none_factory)
    return conv


_converter = _configure(make_converter())


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSON-ready dict of ``record``: ``"kind"`` first, ``None`` fields omitted."""
    return {"kind": record.kind, **_converter.unstructure(record)}


def to_json_line(record: Record) -> bytes:
    """One ``results.jsonl`` line for ``record`` (UTF-8 JSON, ends with ``b"\\n"``)."""
    return orjson.dumps(record_to_dict(record)) + b"\n"


def record_from_dict(data: dict[str, Any], *, where: str = "<record>") -> Record | None:
    """Structure one decoded line. Returns ``None`` for an unknown ``kind`` (skipped for
    forward compatibility). Raises :class:`ResultsFormatError` naming ``where`` and the
    bad field when the line is not a valid record."""
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{where}: expected a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind is None:
        raise ResultsFormatError(f"{where}: missing 'kind'")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None
    fields = {k: v for k, v in data.items() if k != "kind"}
    try:
        return _converter.structure(fields, cls)
    except cattrs.ClassValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path=kind))
        raise ResultsFormatError(f"{where}: invalid {kind} record: {problems}") from None
    except (TypeError, ValueError) as exc:
        raise ResultsFormatError(f"{where}: invalid {kind} record: {exc}") from None


@attrs.frozen(kw_only=True)
class ResultsFile:
    """Everything read from a ``results.jsonl``. ``truncated`` is True when the last line
    was cut off (the writer crashed mid-line) and was skipped."""

    turns: list[TurnRecord]
    sessions: list[SessionResult]
    snapshots: list[TimelinePoint]
    truncated: bool = False


def _lines(source: str | os.PathLike[str] | Iterable[bytes | str]) -> tuple[str, list[bytes]]:
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        with open(name, "rb") as fp:
            return name, fp.read().split(b"\n")
    return "<lines>", [line.encode() if isinstance(line, str) else bytes(line) for line in source]


def read_results(source: str | os.PathLike[str] | Iterable[bytes | str]) -> ResultsFile:
    """Read a ``results.jsonl`` file (path) or an iterable of its lines.

    Blank lines are skipped. A last non-blank line that is not valid JSON is treated as
    cut off by a crash mid-write: it is skipped with a warning and ``truncated`` is set.
    Any other bad line raises :class:`ResultsFormatError` naming ``file:line``.
    """
    name, lines = _lines(source)
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    turns: list[TurnRecord] = []
    sessions: list[SessionResult] = []
    snapshots: list[TimelinePoint] = []
    truncated = False
    for pos, (lineno, line) in enumerate(numbered):
        where = f"{name}:{lineno}"
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if pos == len(numbered) - 1:
                log.warning("%s: skipping truncated last line (%s)", where, exc)
                truncated = True
                break
            raise ResultsFormatError(f"{where}: not valid JSON: {exc}") from None
        record = record_from_dict(data, where=where)
        if isinstance(record, TurnRecord):
            turns.append(record)
        elif isinstance(record, SessionResult):
            sessions.append(record)
        elif isinstance(record, TimelinePoint):
            snapshots.append(record)
    return ResultsFile(turns=turns, sessions=sessions, snapshots=snapshots, truncated=truncated)


def parse_results(
    source: str | os.PathLike[str] | Iterable[bytes | str],
) -> tuple[list[TurnRecord], list[SessionResult]]:
    """``(turns, sessions)`` of a ``results.jsonl`` path or lines; see :func:`read_results`."""
    results = read_results(source)
    return results.turns, results.sessions


def append_jsonl(fp: IO[bytes] | IO[str], record: Record) -> None:
    """Write ``record`` as one line to ``fp`` (binary or text file) and flush it, so a
    crash loses at most the line being written."""
    line = to_json_line(record)
    if isinstance(fp, io.TextIOBase):
        fp.write(line.decode())
    else:
        fp.write(line)  # type: ignore[arg-type]
    fp.flush()
