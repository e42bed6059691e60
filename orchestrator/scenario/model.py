"""The scenario file model: validated, frozen attrs values (pure, no I/O).

One :class:`Scenario` is a scripted conversation: session settings, tools (with canned or
templated results), an optional history seed, the user turns with their expectations,
and hints for the embedded server. Each class checks its own invariants in
``__attrs_post_init__`` and raises :class:`FieldProblems` naming the offending fields
(relative to the object), which the loader turns into a :class:`ScenarioError` with full
field paths (``turns[2].expect_tool_args``). Structuring from TOML/JSON lives in
:mod:`.loader`; the file format is documented there.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from orchestrator.metrics.names import TURN_METRICS
from orchestrator.metrics.thresholds import TAG_NAME

__all__ = [
    "BUDGET_METRICS",
    "FieldProblems",
    "HistoryItem",
    "McpServerSpec",
    "Scenario",
    "ServerHints",
    "SessionSettings",
    "ToolRuleHint",
    "ToolSpec",
    "TurnSpec",
    "VoiceSettings",
]

#: Turn metrics a turn may put a ``max_<metric>`` budget on (DESIGN.md latency table):
#: every turn latency, not the audio duration.
BUDGET_METRICS: tuple[str, ...] = tuple(m for m in TURN_METRICS if m != "audio_out_ms")

#: ``[session] greeting_timeout_ms`` when not given.
DEFAULT_GREETING_TIMEOUT_MS = 5000.0

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FieldProblems(ValueError):
    """Invalid values of an object: ``problems`` are ``(field path, message)`` pairs, the
    path relative to the object (``""`` = the object itself)."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.problems))


class _Checks:
    """Collects problems; raises them all at once."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.problems.append((field, message))

    def done(self) -> None:
        if self.problems:
            raise FieldProblems(self.problems)


def _check_regex(checks: _Checks, field: str, pattern: str | None) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        checks.add(field, f"not a valid regular expression ({exc}): {pattern!r}")


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


@attrs.frozen(kw_only=True)
class SessionSettings:
    """``[session]``: how the session is configured (``session.update``).

    ``turn_detection``: ``server_vad`` (default), ``semantic_vad`` or ``none`` (every
    audio turn is committed by the client: ``commit = "manual"``). ``vad_*`` tune
    ``server_vad`` (defaults 0.5 / 200 ms / 300 ms); ``vad_eagerness`` tunes
    ``semantic_vad``. ``transcription``: ask the server to transcribe user audio
    (``transcription_model``, default ``gpt-4o-mini-transcribe``). ``wait_for_greeting``:
    the assistant speaks first; the caller waits for that greeting to finish (at most
    ``greeting_timeout_ms``, default 5000; no greeting by then fails the session) before
    the first turn. ``mcp_approval``: the answer to the server's MCP approval requests
    (``approve``, the default, or ``deny``). ``type``: ``realtime`` (default) or
    ``transcription``, a speech-to-text
    session (:mod:`orchestrator.scenario.transcription`): each audio turn ends with its
    transcription (``transcription_ms``) and gets no answer; server VAD only.
    """

    type: Literal["realtime", "transcription"] = "realtime"
    instructions: str | None = None
    voice: str | None = None
    output_modality: Literal["audio", "text"] = "audio"
    turn_detection: Literal["server_vad", "semantic_vad", "none"] = "server_vad"
    vad_threshold: float | None = None
    vad_silence_ms: int | None = None
    vad_prefix_padding_ms: int | None = None
    vad_eagerness: Literal["low", "medium", "high", "auto"] | None = None
    transcription: bool = False
    transcription_model: str | None = None
    tool_choice: Literal["auto", "none", "required"] | None = None
    mcp_approval: Literal["approve", "deny"] = "approve"
    wait_for_greeting: bool = False
    greeting_timeout_ms: float | None = None

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        server_only = ("vad_threshold", "vad_silence_ms", "vad_prefix_padding_ms")
        if self.turn_detection != "server_vad":
            for name in server_only:
                if getattr(self, name) is not None:
                    c.add(
                        name,
                        f"only applies to turn_detection = 'server_vad', not {self.turn_detection!r}",
                    )
        if self.vad_eagerness is not None and self.turn_detection != "semantic_vad":
            c.add("vad_eagerness", "only applies to turn_detection = 'semantic_vad'")
        if self.vad_threshold is not None and not 0.0 <= self.vad_threshold <= 1.0:
            c.add("vad_threshold", f"must be in [0, 1], got {self.vad_threshold}")
        for name in ("vad_silence_ms", "vad_prefix_padding_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                c.add(name, f"must be >= 0, got {value}")
        transcribes = self.transcription or self.type == "transcription"
        if self.transcription_model is not None and not transcribes:
            c.add("transcription_model", "needs transcription = true")
        if self.type == "transcription":
            for name in ("instructions", "voice", "tool_choice"):
                if getattr(self, name) is not None:
                    c.add(name, "does not apply to type = 'transcription'")
            if self.wait_for_greeting:
                c.add("wait_for_greeting", "does not apply to type = 'transcription'")
            if self.turn_detection != "server_vad":
                c.add("turn_detection", "type = 'transcription' needs 'server_vad'")
        if self.greeting_timeout_ms is not None:
            if not self.wait_for_greeting:
                c.add("greeting_timeout_ms", "needs wait_for_greeting = true")
            elif not self.greeting_timeout_ms > 0:
                c.add("greeting_timeout_ms", f"must be > 0, got {self.greeting_timeout_ms}")
        c.done()

    @property
    def greeting_timeout_s(self) -> float:
        """How long to wait for the greeting, in seconds (default 5)."""
        ms = (
            DEFAULT_GREETING_TIMEOUT_MS
            if self.greeting_timeout_ms is None
            else self.greeting_timeout_ms
        )
        return ms / 1000.0

    @property
    def vad(self) -> bool:
        """Whether the server detects turns."""
        return self.turn_detection != "none"

    @property
    def server_vad_params(self) -> tuple[float, int, int]:
        """``(threshold, prefix_padding_ms, silence_duration_ms)`` of ``server_vad``, the
        defaults (0.5 / 300 / 200) where not given."""
        return (
            0.5 if self.vad_threshold is None else self.vad_threshold,
            300 if self.vad_prefix_padding_ms is None else self.vad_prefix_padding_ms,
            200 if self.vad_silence_ms is None else self.vad_silence_ms,
        )


@attrs.frozen(kw_only=True)
class McpServerSpec:
    """``[[mcp]]``: a remote MCP server offered to the model (a GA ``mcp`` tool).

    The server calls it, not the client: the embedded server simulates it (never
    contacting ``server_url``). ``require_approval``: ``always`` / ``never`` (absent:
    the service's default, which asks); the session answers approval requests as
    ``[session] mcp_approval`` says. ``allowed_tools``: the tools the model may use.
    """

    server_label: str
    server_url: str = "https://mcp.example.invalid/mcp"
    require_approval: Literal["always", "never"] | None = None
    allowed_tools: tuple[str, ...] | None = None

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        if not _TOOL_NAME.match(self.server_label):
            c.add(
                "server_label",
                f"must be 1-64 letters, digits, '_' or '-', got {self.server_label!r}",
            )
        if not self.server_url.startswith(("https://", "http://")):
            c.add("server_url", f"must be an http(s) URL, got {self.server_url!r}")
        c.done()


@attrs.frozen(kw_only=True)
class ToolSpec:
    """``[[tools]]``: a function tool offered to the model and run by the client.

    Exactly one of ``result`` (any JSON value; a string is sent as is, anything else as
    JSON) or ``result_template`` (a string whose ``{arg}`` fields are replaced by the
    call's arguments; ``{{``/``}}`` for literal braces). ``delay_ms``: how long the tool
    takes (simulated, on trio's clock).
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})
    result: Any = None
    result_template: str | None = None
    delay_ms: float = 0.0

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        if not _TOOL_NAME.match(self.name):
            c.add("name", f"must be 1-64 letters, digits, '_' or '-', got {self.name!r}")
        if (self.result is None) == (self.result_template is None):
            c.add("", "give exactly one of result or result_template")
        if not self.delay_ms >= 0:
            c.add("delay_ms", f"must be >= 0, got {self.delay_ms}")
        props = _check_schema(c, self.parameters)
        if self.result_template is not None:
            for field in _template_fields(c, self.result_template):
                if props is not None and field not in props:
                    known = ", ".join(sorted(props)) or "none"
                    c.add(
                        "result_template",
                        f"uses {{{field}}}, which is not a parameter (parameters: {known})",
                    )
        c.done()

    def render(self, arguments: Mapping[str, Any]) -> Any:
        """The tool's answer to a call with ``arguments`` (raises ``ValueError`` naming a
        template field the call did not provide)."""
        if self.result_template is None:
            return self.result
        values: dict[str, Any] = {}
        for field in _template_fields(None, self.result_template):
            if field not in arguments:
                raise ValueError(f"result_template needs argument {field!r}, the call has none")
            values[field] = arguments[field]
        return self.result_template.format_map(values)


def _check_schema(c: _Checks, schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Check the JSON-schema basics the Realtime API needs; returns the properties."""
    if schema.get("type") != "object":
        c.add("parameters.type", f"must be 'object', got {schema.get('type')!r}")
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        c.add("parameters.properties", "must be a table of property schemas")
        return None
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        c.add("parameters.required", "must be an array of property names")
    else:
        for name in required:
            if name not in props:
                c.add("parameters.required", f"names {name!r}, which is not in properties")
    return props


def _template_fields(c: _Checks | None, template: str) -> list[str]:
    """Field names of a ``str.format`` template; only plain names are allowed."""
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        if c is not None:
            c.add("result_template", f"bad template ({exc}); use {{{{ and }}}} for braces")
        return fields
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            if c is not None:
                c.add("result_template", f"{{{field}}}: only plain {{name}} fields are allowed")
            continue
        fields.append(field)
    return fields


@attrs.frozen(kw_only=True)
class HistoryItem:
    """``[[history]]``: a prior message seeded into the conversation before turn 0."""

    role: Literal["user", "assistant", "system"]
    text: str


@attrs.frozen(kw_only=True)
class VoiceSettings:
    """``[voices]``: how ``speak`` turns are spoken (see :mod:`orchestrator.audio.voices`).

    ``engine``: ``hibari`` (default; the ``voices`` extra), ``espeak`` (espeak-ng) or
    ``module:function``; ``voice`` (default: the engine's) and ``speed`` (1.0) for every
    speak turn unless the turn sets its own. Per-caller variation, seeded by ``seed``:
    ``speed_range`` ``[low, high]`` (in steps of 0.05; replaces ``speed``), ``voices``
    (each caller picks one; replaces ``voice``), ``noise`` (``white``, ``pink`` or a WAV
    file relative to the scenario file) at ``snr_db`` (default 20), ``jitter_ms`` (up to
    that much more silence before and after each line), ``telephone`` (8 kHz µ-law
    band). ``variants``: how many distinct callers are rendered before the run (caller
    ``i`` sounds like caller ``i % variants``; default 32).
    """

    engine: str = "hibari"
    voice: str | None = None
    speed: float = 1.0
    speed_range: tuple[float, ...] | None = None
    voices: tuple[str, ...] = ()
    noise: str | None = None
    snr_db: float | None = None
    jitter_ms: float = 0.0
    telephone: bool = False
    seed: int = 0
    variants: int = 32

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        if not self.engine.strip():
            c.add("engine", "must not be empty: 'hibari', 'espeak' or MODULE:FUNCTION")
        if not 0.25 <= self.speed <= 4.0:
            c.add("speed", f"must be in [0.25, 4], got {self.speed}")
        if self.speed_range is not None:
            r = self.speed_range
            if len(r) != 2 or not 0.25 <= r[0] <= r[1] <= 4.0:
                c.add(
                    "speed_range",
                    f"must be [low, high] with 0.25 <= low <= high <= 4, got {list(r)}",
                )
        if self.noise is not None and not self.noise.strip():
            c.add("noise", "must be 'white', 'pink' or a WAV file")
        if self.noise is None and self.snr_db is not None:
            c.add("snr_db", "only applies with noise")
        if not self.jitter_ms >= 0:
            c.add("jitter_ms", f"must be >= 0, got {self.jitter_ms}")
        if not 1 <= self.variants <= 1024:
            c.add("variants", f"must be in [1, 1024], got {self.variants}")
        c.done()


@attrs.frozen(kw_only=True)
class TurnSpec:
    """``[[turns]]``: one user turn and what must come of it.

    The user says exactly one of: ``say`` (a text message), ``speak`` (text spoken by the
    ``[voices]`` engine, in the turn's ``voice`` and ``speed`` when given), ``audio`` (a
    WAV file, relative to the scenario file) or ``synth_ms`` (that much synthetic speech,
    seeded by ``seed``, default the turn index). ``speak`` and ``synth_ms`` turns have
    ``lead_ms`` (200) and ``tail_ms`` (300) of silence around the speech. Audio turns: ``commit`` ``vad`` (the server's turn detection ends the
    turn), ``manual`` (the client commits and asks for a response) or ``auto`` (``vad``
    when the session has turn detection); ``barge_in_at_ms``: start speaking when the
    playback of the previous turn's answer reaches that offset (the previous turn is not
    awaited). ``pause_ms``: wait that long before the turn.

    Expectations (checked when the turn is over): ``expect_status`` (``completed``
    default, or ``interrupted``); ``expect_tool`` (called at least once in the turn) and
    ``expect_tool_args`` (a subset of one such call's arguments); ``expect_no_tool``;
    ``expect_transcript_regex`` (searched, case-insensitively, in the assistant's
    transcript or text); ``expect_user_transcript_regex`` (in the server's transcription
    of the user audio, or the text sent); ``max_<metric>`` latency budgets in ms for the
    metrics of :data:`BUDGET_METRICS` (a budget on a metric that was not measured fails).
    """

    label: str | None = None
    say: str | None = None
    speak: str | None = None
    voice: str | None = None
    speed: float | None = None
    audio: str | None = None
    synth_ms: float | None = None
    lead_ms: float | None = None
    tail_ms: float | None = None
    seed: int | None = None
    commit: Literal["auto", "vad", "manual"] = "auto"
    barge_in_at_ms: float | None = None
    pause_ms: float = 0.0

    expect_status: Literal["completed", "interrupted"] = "completed"
    expect_tool: str | None = None
    expect_tool_args: dict[str, Any] | None = None
    expect_no_tool: bool = False
    expect_transcript_regex: str | None = None
    expect_user_transcript_regex: str | None = None

    max_voice_to_voice_ms: float | None = None
    max_voice_to_voice_audible_ms: float | None = None
    max_vad_delay_ms: float | None = None
    max_transcription_ms: float | None = None
    max_ttfb_ms: float | None = None
    max_ttfa_ms: float | None = None
    max_response_created_ms: float | None = None
    max_first_text_ms: float | None = None
    max_response_ms: float | None = None
    max_tool_roundtrip_ms: float | None = None
    max_tool_to_audio_ms: float | None = None
    max_mcp_call_ms: float | None = None
    max_barge_in_stop_ms: float | None = None
    max_playback_underrun_ms: float | None = None

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        given = [k for k in ("say", "speak", "audio", "synth_ms") if getattr(self, k) is not None]
        if not given:
            c.add("", "give what the user says: say, speak, audio or synth_ms")
        for extra in given[1:]:
            c.add(
                extra,
                f"both {given[0]} and {extra} given; a turn is one of say, speak, audio, synth_ms",
            )
        for name in ("say", "speak"):
            text = getattr(self, name)
            if text is not None and not text.strip():
                c.add(name, "must not be empty")
        for name in ("voice", "speed"):
            if getattr(self, name) is not None and self.speak is None:
                c.add(name, "only applies to speak turns")
        if self.speed is not None and not 0.25 <= self.speed <= 4.0:
            c.add("speed", f"must be in [0.25, 4], got {self.speed}")
        if self.audio is not None and not self.audio.strip():
            c.add("audio", "must not be empty")
        if self.synth_ms is not None and not self.synth_ms > 0:
            c.add("synth_ms", f"must be > 0, got {self.synth_ms}")
        if self.seed is not None and self.synth_ms is None:
            c.add("seed", "only applies to synth_ms turns")
        for name in ("lead_ms", "tail_ms"):
            if getattr(self, name) is not None and self.synth_ms is None and self.speak is None:
                c.add(name, "only applies to speak and synth_ms turns")
        for name in ("lead_ms", "tail_ms", "barge_in_at_ms", "pause_ms"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                c.add(name, f"must be >= 0, got {value}")
        if self.kind == "text":
            if self.commit != "auto":
                c.add("commit", "only applies to audio turns (speak, audio or synth_ms)")
            if self.barge_in_at_ms is not None:
                c.add("barge_in_at_ms", "only audio turns can barge in")
            for metric in (
                "voice_to_voice_ms",
                "voice_to_voice_audible_ms",
                "vad_delay_ms",
                "transcription_ms",
            ):
                if getattr(self, f"max_{metric}") is not None:
                    c.add(f"max_{metric}", f"{metric} is only measured for audio turns")
        if self.commit == "manual" and self.max_vad_delay_ms is not None:
            c.add("max_vad_delay_ms", "vad_delay_ms is not measured with commit = 'manual'")
        if self.pause_ms and self.barge_in_at_ms is not None:
            c.add("pause_ms", "a barge-in turn starts at barge_in_at_ms; it takes no pause")
        if self.max_barge_in_stop_ms is not None and self.barge_in_at_ms is None:
            c.add("max_barge_in_stop_ms", "barge_in_stop_ms is only measured with barge_in_at_ms")
        if self.expect_tool_args is not None and self.expect_tool is None:
            c.add("expect_tool_args", "needs expect_tool (the tool whose arguments to check)")
        if self.expect_no_tool and self.expect_tool is not None:
            c.add("expect_no_tool", "contradicts expect_tool")
        _check_regex(c, "expect_transcript_regex", self.expect_transcript_regex)
        _check_regex(c, "expect_user_transcript_regex", self.expect_user_transcript_regex)
        for metric in BUDGET_METRICS:
            value = getattr(self, f"max_{metric}")
            if value is not None and not value > 0:
                c.add(f"max_{metric}", f"must be > 0, got {value}")
        c.done()

    @property
    def kind(self) -> Literal["text", "speak", "audio", "synth"]:
        """What the user says: ``text`` (say), ``speak``, ``audio`` (a WAV file) or
        ``synth``."""
        if self.say is not None:
            return "text"
        if self.speak is not None:
            return "speak"
        return "audio" if self.audio is not None else "synth"

    @property
    def budgets(self) -> dict[str, float]:
        """The latency budgets of the turn: metric -> maximum ms."""
        out: dict[str, float] = {}
        for metric in BUDGET_METRICS:
            value = getattr(self, f"max_{metric}")
            if value is not None:
                out[metric] = value
        return out

    def describe(self, index: int) -> str:
        """``turn 2 (label)`` (or ``turn 2``) for messages."""
        return f"turn {index} ({self.label})" if self.label else f"turn {index}"


@attrs.frozen(kw_only=True)
class ToolRuleHint:
    """``[[server.tool_rules]]``: when ``pattern`` (a regex, case-insensitive) matches the
    user's text or spoken transcript, the embedded server calls ``tool`` with
    ``arguments``."""

    pattern: str
    tool: str
    arguments: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        _check_regex(c, "pattern", self.pattern)
        c.done()


@attrs.frozen(kw_only=True)
class ServerHints:
    """``[server]``: used only when the run targets the embedded server (no ``--url``),
    so that scripted turns get deterministic answers. ``tool_rules``: see
    :class:`ToolRuleHint`; ``spoken_transcripts``: what the server "hears" in successive
    committed audio turns of a session (cycled) that it does not hear as a ``speak`` line
    (a WAV file or synthetic sound), so such turns can match tool rules; ``greeting``: the
    server speaks first with this text (an agent that greets its callers)."""

    tool_rules: tuple[ToolRuleHint, ...] = ()
    spoken_transcripts: tuple[str, ...] = ()
    greeting: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.greeting is not None and not self.greeting.strip():
            raise FieldProblems([("greeting", "must not be empty")])


@attrs.frozen(kw_only=True)
class Scenario:
    """A scripted conversation (see the module docstring of :mod:`.loader` for the file
    format). ``origin`` is where it was loaded from (not a file key): error messages
    name it, and relative ``audio`` paths were resolved against its directory."""

    name: str
    description: str | None = None
    session: SessionSettings = attrs.field(factory=SessionSettings)
    tools: tuple[ToolSpec, ...] = ()
    mcp: tuple[McpServerSpec, ...] = ()
    history: tuple[HistoryItem, ...] = ()
    turns: tuple[TurnSpec, ...] = ()
    server: ServerHints = attrs.field(factory=ServerHints)
    voices: VoiceSettings = attrs.field(factory=VoiceSettings)
    tags: dict[str, str] = attrs.field(factory=dict, hash=False)
    origin: str = "<scenario>"

    def __attrs_post_init__(self) -> None:
        c = _Checks()
        if not self.name.strip():
            c.add("name", "must not be empty")
        if not self.turns:
            c.add("turns", "a scenario needs at least one [[turns]] entry")
        names = [t.name for t in self.tools]
        for i, name in enumerate(names):
            if name in names[:i]:
                c.add(f"tools[{i}].name", f"duplicate tool name {name!r}")
        known = ", ".join(names) or "none declared"
        for i, turn in enumerate(self.turns):
            path = f"turns[{i}]"
            if turn.expect_tool is not None and turn.expect_tool not in names:
                c.add(
                    _join(path, "expect_tool"),
                    f"unknown tool {turn.expect_tool!r} (tools: {known})",
                )
            if self.session.type == "transcription" and (
                turn.kind == "text" or turn.commit == "manual"
            ):
                c.add(path, "a transcription session has only audio turns ended by server VAD")
            if turn.kind != "text":
                if turn.commit == "vad" and not self.session.vad:
                    c.add(
                        _join(path, "commit"),
                        "'vad' needs server turn detection, but session.turn_detection = 'none'",
                    )
                if turn.commit == "manual" and self.session.vad:
                    c.add(
                        _join(path, "commit"),
                        "'manual' needs session.turn_detection = 'none' (the server's VAD "
                        "would commit the audio first)",
                    )
            if turn.expect_status == "interrupted" and (
                i + 1 == len(self.turns) or self.turns[i + 1].barge_in_at_ms is None
            ):
                c.add(
                    _join(path, "expect_status"),
                    "'interrupted' needs the next turn to barge in (barge_in_at_ms)",
                )
            if turn.barge_in_at_ms is not None and i == 0:
                c.add(_join(path, "barge_in_at_ms"), "the first turn has no answer to barge in on")
            if self.session.output_modality == "text":
                for metric in (
                    "voice_to_voice_ms",
                    "voice_to_voice_audible_ms",
                    "ttfa_ms",
                    "barge_in_stop_ms",
                    "playback_underrun_ms",
                ):
                    if getattr(turn, f"max_{metric}") is not None:
                        c.add(
                            _join(path, f"max_{metric}"),
                            f"{metric} needs audio output (session.output_modality = 'text')",
                        )
            if turn.expect_user_transcript_regex is not None and turn.kind != "text":
                if not self.session.transcription and self.session.type != "transcription":
                    c.add(
                        _join(path, "expect_user_transcript_regex"),
                        "needs session.transcription = true for audio turns",
                    )
        # MCP tools are listed by the MCP server: any name when one of them allows any
        mcp_open = any(m.allowed_tools is None for m in self.mcp)
        mcp_names = {name for m in self.mcp for name in m.allowed_tools or ()}
        for i, rule in enumerate(self.server.tool_rules):
            if rule.tool not in names and not mcp_open and rule.tool not in mcp_names:
                c.add(
                    f"server.tool_rules[{i}].tool", f"unknown tool {rule.tool!r} (tools: {known})"
                )
        for key, value in self.tags.items():
            if not TAG_NAME.match(key):
                c.add(f"tags[{key}]", "a tag name is a letter or _ then letters, digits, _ . -")
            elif not value.strip():
                c.add(f"tags[{key}]", "must not be empty")
        c.done()
