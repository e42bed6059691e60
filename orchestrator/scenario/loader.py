"""Loading scenario files: TOML (``.toml``) or JSON (``.json``) → a validated
:class:`~.model.Scenario`.

The format (every key is optional unless marked *required*; unknown keys are errors)::

    name = "weather-by-voice"                  # required
    description = "..."
    tags = { team = "voice", suite = "smoke" } # user tags on every record of its sessions

    [session]                                  # session.update settings
    type = "realtime"                          # "realtime" | "transcription" (speech to text)
    instructions = "You are a weather assistant."
    voice = "alloy"
    output_modality = "audio"                  # "audio" | "text"
    turn_detection = "server_vad"              # "server_vad" | "semantic_vad" | "none"
    vad_threshold = 0.5                        # server_vad only
    vad_silence_ms = 200                       # server_vad only
    vad_prefix_padding_ms = 300                # server_vad only
    vad_eagerness = "auto"                     # semantic_vad only
    transcription = true                       # transcribe user audio
    transcription_model = "gpt-4o-mini-transcribe"
    tool_choice = "auto"                       # "auto" | "none" | "required"
    mcp_approval = "approve"                   # answer to MCP approval requests: or "deny"
    wait_for_greeting = false                  # the assistant speaks first: wait for it
    greeting_timeout_ms = 5000                 # with wait_for_greeting; none -> session fails

    [voices]                                   # how speak turns are spoken (caller voices)
    engine = "hibari"                          # "hibari" | "espeak" | "module:function"
    voice = "heart"                            # default: the engine's own
    speed = 1.0
    speed_range = [0.9, 1.1]                   # per caller, steps of 0.05 (replaces speed)
    voices = ["en-us", "en-gb"]                # per caller (replaces voice)
    noise = "pink"                             # "white" | "pink" | "noise.wav" (relative)
    snr_db = 20                                # with noise
    jitter_ms = 100                            # up to this much more silence around lines
    telephone = false                          # 8 kHz µ-law band
    seed = 0
    variants = 32                              # distinct callers rendered before the run

    [[tools]]
    name = "get_weather"                       # required
    description = "Current weather for a city"
    parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
    result_template = "It is 18 degrees and sunny in {city}."   # or: result = <any value>
    delay_ms = 50                              # simulated tool run time

    [[mcp]]                                    # a remote MCP server the model may use
    server_label = "docs"                      # required
    server_url = "https://mcp.example.com/mcp" # the embedded server never contacts it
    require_approval = "always"                # "always" | "never"; [session] mcp_approval
    allowed_tools = ["search_docs"]            #   answers ("approve" | "deny")

    [[history]]                                # seeded before turn 0
    role = "user"                              # "user" | "assistant" | "system"
    text = "Hi, I am in Europe this week."

    [[turns]]
    label = "ask weather"
    speak = "What is the weather in Paris?"    # or: say = "text" / audio = "question.wav"
                                               #     / synth_ms = 1500 (speech-like sound)
    voice = "heart"                            # speak only: this turn's voice
    speed = 1.1                                # speak only: this turn's speed
    lead_ms = 200                              # speak and synth_ms only
    tail_ms = 300                              # speak and synth_ms only
    seed = 1                                   # synth_ms only
    commit = "vad"                             # "auto" | "vad" | "manual" (audio turns)
    barge_in_at_ms = 800                       # speak over the previous turn's answer
    pause_ms = 0                               # wait before this turn
    expect_status = "completed"                # "completed" | "interrupted"
    expect_tool = "get_weather"
    expect_tool_args = { city = "Paris" }      # subset match
    expect_no_tool = false
    expect_transcript_regex = "sunny"          # assistant transcript/text, case-insensitive
    expect_user_transcript_regex = "paris"     # server transcription / text sent
    max_ttfb_ms = 1500                         # and max_<metric> for any of BUDGET_METRICS
    max_voice_to_voice_ms = 2500

    [server]                                   # embedded server only (no --url)
    greeting = "Hello, how can I help?"        # the server speaks first
    spoken_transcripts = ["What's the weather in Paris?"]  # for audio/synth_ms turns
    [[server.tool_rules]]
    pattern = "weather in paris"
    tool = "get_weather"
    arguments = { city = "Paris" }

``speak`` turns are synthesized before the run starts (cached on disk, see
:mod:`orchestrator.audio.voices`); loading checks that the engine is installed and knows
the voices (without the ``voices`` extra, ``turns[i].speak`` says how to install it).

Types are strict: a string where a number belongs is an error, never converted. Every
problem is reported with its field path (``turns[2].expect_tool_args``) in one
:class:`~.errors.ScenarioError`.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import orjson
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, override

from orchestrator.audio.voices.engines import VoiceError, engine_available, get_engine

from .errors import ScenarioError
from .model import FieldProblems, Scenario, TurnSpec, VoiceSettings

__all__ = ["load_scenario", "make_converter", "parse_scenario"]


def _kind(value: Any) -> str:
    """The file-format name of a value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


def _str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_kind(value)}")
    return value


def _bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_kind(value)}")
    return value


def _int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_kind(value)}")
    return value


def _float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


def _table(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {_kind(value)}")
    return dict(value)


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal


def _literal_factory(tp: Any) -> Callable[[Any, Any], Any]:
    allowed = typing.get_args(tp)
    names = ", ".join(repr(a) for a in allowed)

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) or value not in allowed:
            raise ValueError(f"must be one of {names}, got {value!r}")
        return value

    return structure


def _is_homogeneous_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def make_converter() -> cattrs.Converter:
    """A converter for scenario data: strict scalar types (no coercion), unknown keys
    rejected, arrays must be arrays, detailed validation (field paths in errors)."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(bool, _bool)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook_func(lambda tp: tp == dict[str, Any], _table)
    conv.register_structure_hook_factory(_is_literal, _literal_factory)

    def tuple_factory(tp: Any) -> Callable[[Any, Any], Any]:
        (item,) = typing.get_args(tp)[:1]
        inner = conv.get_structure_hook(list[item])  # type: ignore[valid-type]

        def structure(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected an array, got {_kind(value)}")
            return tuple(inner(list(value), list[item]))  # type: ignore[valid-type]

        return structure

    conv.register_structure_hook_factory(_is_homogeneous_tuple, tuple_factory)
    conv.register_structure_hook(
        Scenario,
        make_dict_structure_fn(
            Scenario,
            conv,
            origin=override(omit=True),
            _cattrs_forbid_extra_keys=True,
            _cattrs_detailed_validation=True,
        ),
    )
    return conv


_CONVERTER = make_converter()


def _path(base: str, part: str) -> str:
    if not part:
        return base
    if part.startswith("["):
        return base + part
    return f"{base}.{part}" if base else part


def _problems(exc: BaseException, path: str, cls: Any = None) -> Iterator[tuple[str, str]]:
    """Flatten a cattrs validation error into ``(field path, message)`` pairs."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _problems(sub, _path(path, note.name), exc.cl)
        for sub in without:
            yield from _problems(sub, path, exc.cl)
    elif isinstance(exc, IterableValidationError):
        with_indices, unindexed = exc.group_exceptions()
        for sub, index_note in with_indices:
            yield from _problems(sub, _path(path, f"[{index_note.index}]"))
        for sub in unindexed:
            yield from _problems(sub, path)
    elif isinstance(exc, FieldProblems):
        for field, message in exc.problems:
            yield _path(path, field), message
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl) if a.name != "origin"]
        for key in sorted(exc.extra_fields):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            yield _path(path, key), f"unknown key{hint}"
    elif isinstance(exc, KeyError):
        yield path, "required key missing"
    elif isinstance(exc, TypeError | ValueError):
        yield path, str(exc)
    else:  # anything else is still reported as data, with its type
        yield path, f"{type(exc).__name__}: {exc}"


def parse_scenario(
    data: Any, *, origin: str = "<scenario>", base_dir: str | os.PathLike[str] | None = None
) -> Scenario:
    """Validate already-decoded scenario data (a TOML/JSON table) into a :class:`Scenario`.

    Relative ``audio`` paths are resolved against ``base_dir`` (default: the current
    directory) and must name existing files. Raises :class:`ScenarioError` listing every
    problem found, each with its field path, and naming ``origin``.
    """
    if not isinstance(data, Mapping):
        raise ScenarioError(origin, [("", f"expected a table at the top level, got {_kind(data)}")])
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        scenario = _CONVERTER.structure(dict(data), Scenario)
    except Exception as exc:  # noqa: BLE001 - every structuring problem becomes data
        # Still check the audio files of every turn that is valid on its own, so that
        # one report holds every problem of the file.
        problems = list(_problems(exc, ""))
        for i, turn in _valid_turns(data.get("turns")):
            _, problem = _resolve_audio(turn, i, base)
            if problem is not None and problem not in problems:
                problems.append(problem)
        raise ScenarioError(origin, problems) from None
    problems = []
    turns = []
    for i, turn in enumerate(scenario.turns):
        turn, problem = _resolve_audio(turn, i, base)
        if problem is not None:
            problems.append(problem)
        turns.append(turn)
    voices, voice_problems = _check_voices(scenario, base)
    problems.extend(voice_problems)
    if problems:
        raise ScenarioError(origin, problems)
    return attrs.evolve(scenario, turns=tuple(turns), voices=voices, origin=origin)


def _valid_turns(raw: Any) -> Iterator[tuple[int, TurnSpec]]:
    """The entries of a raw ``turns`` array that are valid turns on their own."""
    if not isinstance(raw, list | tuple):
        return
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            continue
        try:
            turn = _CONVERTER.structure(dict(item), TurnSpec)
        except Exception:  # noqa: BLE001, S112 - reported by the full structuring
            continue
        yield i, turn


def _resolve_audio(
    turn: TurnSpec, index: int, base: Path
) -> tuple[TurnSpec, tuple[str, str] | None]:
    """``turn`` with its ``audio`` path made absolute against ``base``, and the problem
    (``(field path, message)``) when that file does not exist."""
    if turn.audio is None:
        return turn, None
    resolved = (base / turn.audio).resolve()
    problem = None
    if not resolved.is_file():
        problem = (f"turns[{index}].audio", f"audio file not found: {resolved}")
    return attrs.evolve(turn, audio=str(resolved)), problem


def _check_voices(scenario: Scenario, base: Path) -> tuple[VoiceSettings, list[tuple[str, str]]]:
    """``[voices]`` with its noise file made absolute, and the problems of the speak
    turns: an engine that is not installed, voices it does not have, a missing noise file.
    Only checked when some turn speaks (the engine is not loaded, only found)."""
    settings = scenario.voices
    problems: list[tuple[str, str]] = []
    noise = settings.noise
    if noise is not None and noise not in ("white", "pink"):
        resolved = (base / noise).resolve()
        settings = attrs.evolve(settings, noise=str(resolved))
        if not resolved.is_file():
            problems.append(("voices.noise", f"noise file not found: {resolved}"))
    speaking = [(i, t) for i, t in enumerate(scenario.turns) if t.speak is not None]
    if not speaking:
        return settings, problems
    missing = engine_available(settings.engine)
    if missing is not None:
        problems.extend((f"turns[{i}].speak", missing) for i, _ in speaking)
        return settings, problems
    try:
        engine = get_engine(settings.engine)
        known = engine.voices()
    except VoiceError as exc:
        problems.extend((f"turns[{i}].speak", str(exc)) for i, _ in speaking)
        return settings, problems

    def check(field: str, voice: str | None) -> None:
        if voice is not None and voice not in known:
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            problems.append(
                (field, f"engine {engine.name!r} has no voice {voice!r} offline (voices: {shown})")
            )

    check("voices.voice", settings.voice)
    for k, voice in enumerate(settings.voices):
        check(f"voices.voices[{k}]", voice)
    for i, turn in speaking:
        check(f"turns[{i}].voice", turn.voice)
    return settings, problems


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file: ``.toml`` (``tomllib``) or ``.json``.

    Raises :class:`ScenarioError` naming the file for a missing or unreadable file, a
    syntax error, or any invalid field (see :func:`parse_scenario`).
    """
    p = Path(path)
    origin = os.fspath(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise ScenarioError(origin, [("", "a folder, not a scenario file")])
    if suffix not in (".toml", ".json"):
        raise ScenarioError(origin, [("", "unsupported file type: use .toml or .json")])
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(origin, [("", "file not found")]) from None
    except OSError as exc:
        raise ScenarioError(origin, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            data = orjson.loads(raw)
    except UnicodeDecodeError as exc:
        raise ScenarioError(origin, [("", f"not UTF-8 text: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(origin, [("", f"not valid TOML: {exc}")]) from None
    except orjson.JSONDecodeError as exc:
        raise ScenarioError(origin, [("", f"not valid JSON: {exc}")]) from None
    return parse_scenario(data, origin=origin, base_dir=p.parent)
