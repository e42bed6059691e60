"""Validation and merging of ``session.update`` payloads (both dialects), without I/O.

The internal session is GA-shaped (see :mod:`.defaults`). A GA update is validated
field by field into a copy of the current session; a beta (flat) update is first
translated into the same GA form. Any invalid field raises :class:`ClientError` with
the real service's code / message / param (PROTOCOL_NOTES §1) and the whole update is
discarded (the caller keeps the old session).

The beta translation validates each flat field itself rather than running
:func:`orchestrator.protocol.beta.session_from_beta` first: that function treats
``null`` as "unset" (but a beta ``"turn_detection": null`` turns VAD off), maps any
string to a format and any list containing audio to ``["audio"]`` (so bad values would
be reported with GA names and shapes), while errors must name the beta param the client
sent (``session.turn_detection.threshold``). It shares the protocol's tables instead:
format spellings (:data:`~orchestrator.protocol.beta.FORMAT_FROM_BETA`) and the
modality mapping.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import attrs

from .errors import (
    ClientError,
    invalid_type,
    invalid_value,
    missing_parameter,
)
from .session_checks import (
    _beta_format,
    _beta_transcription,
    _bool,
    _enum,
    _format,
    _keys,
    _max_tokens,
    _modalities_beta,
    _modalities_ga,
    _noise,
    _num,
    _obj,
    _reasoning,
    _str,
    _transcription,
    _turn_detection,
    _voice,
)
from .session_tools import (
    _tracing,
    tool_choice,
    tools_list,
)

# -- whole updates ----------------------------------------------------------------------
#
# Both dialects set the same GA-shaped session fields; only where the client spells them
# differs (``session.audio.output.voice`` vs beta ``session.voice``). One table lists
# every settable field once, and one loop validates and applies them in table order for
# both dialects, so a patch with several bad fields reports the same (first) field either
# way. (The real service returns only the first error and does not document the order.)

_KEEP = object()  # a check's answer for "leave the current value"


def _instructions(v: object, p: str) -> object:
    text = _str(v, p)
    return text if text else _KEEP  # an empty string keeps the current instructions


def _truncation(v: object, p: str) -> object:
    if isinstance(v, str):
        return _enum(v, p, ("auto", "disabled"))
    return copy.deepcopy(_obj(v, p))


def _prompt(v: object, p: str) -> object:
    return None if v is None else copy.deepcopy(_obj(v, p))


def _include(v: object, p: str) -> object:
    if v is not None:
        if not isinstance(v, list):
            raise invalid_type(p, "an array", v)
        for i, x in enumerate(v):
            _enum(x, f"{p}[{i}]", ("item.input_audio_transcription.logprobs",))
    return v


def _as_sent(v: object, p: str) -> object:
    return v


def _speed(v: object, p: str) -> float:
    return _num(v, p, 0.25, 1.5)


def _temperature(v: object, p: str) -> float:
    return _num(v, p, 0.6, 1.2)


@attrs.frozen
class _Field:
    """One settable session field."""

    #: where the value lives in the internal session; also the GA param path
    path: tuple[str, ...]
    #: the beta (flat) param name; None: not settable in beta
    beta: str | None
    #: validates the sent value (GA spelling); answers the value to store, or ``_KEEP``
    check: Callable[[object, str], object]
    #: the beta spelling's check, where it differs from ``check``
    beta_check: Callable[[object, str], object] | None = None
    #: False: beta only (``path`` is then internal, not a GA param)
    ga: bool = True
    #: changing it is refused once the conversation has assistant audio
    fixed_by_audio: bool = False


_FIELDS = (
    _Field(("model",), "model", _str),
    _Field(("output_modalities",), "modalities", _modalities_ga, _modalities_beta),
    _Field(("instructions",), "instructions", _instructions),
    _Field(("tools",), "tools", tools_list),
    _Field(("tool_choice",), "tool_choice", tool_choice),
    _Field(("max_output_tokens",), "max_response_output_tokens", _max_tokens),
    _Field(("_beta", "temperature"), "temperature", _temperature, ga=False),
    _Field(("tracing",), "tracing", _tracing),
    _Field(("truncation",), None, _truncation),
    _Field(("prompt",), None, _prompt),
    _Field(("include",), "include", _include, _as_sent),
    _Field(("reasoning",), None, _reasoning),
    _Field(("parallel_tool_calls",), None, _bool),
    _Field(("audio", "input", "format"), "input_audio_format", _format, _beta_format),
    _Field(
        ("audio", "input", "transcription"),
        "input_audio_transcription",
        _transcription,
        _beta_transcription,
    ),
    _Field(("audio", "input", "noise_reduction"), "input_audio_noise_reduction", _noise),
    _Field(("audio", "input", "turn_detection"), "turn_detection", _turn_detection),
    _Field(("audio", "output", "format"), "output_audio_format", _format, _beta_format),
    _Field(("audio", "output", "voice"), "voice", _voice, fixed_by_audio=True),
    _Field(("audio", "output", "speed"), "speed", _speed),
)

#: accepted at the top level of the patch and ignored (read-only or informational)
_GA_IGNORED = ("type", "id", "object", "expires_at")
_BETA_IGNORED = ("id", "object", "expires_at", "client_secret")
_GA_KEYS = _GA_IGNORED + tuple(dict.fromkeys(f.path[0] for f in _FIELDS if f.ga))
_GA_AUDIO_KEYS = {
    side: tuple(f.path[2] for f in _FIELDS if f.ga and f.path[:2] == ("audio", side))
    for side in ("input", "output")
}
_BETA_KEYS = _BETA_IGNORED + tuple(f.beta for f in _FIELDS if f.beta is not None)

#: path -> (sent value, param name as the client spelled it)
_Sent = dict[tuple[str, ...], tuple[object, str]]


def _apply(
    current: dict[str, Any], sent: _Sent, *, beta: bool, has_assistant_audio: bool
) -> dict[str, Any]:
    """Validate the sent fields in table order into a copy of ``current``."""
    new = copy.deepcopy(current)
    for field in _FIELDS:
        if field.path not in sent:
            continue
        v, p = sent[field.path]
        check = field.beta_check if beta and field.beta_check is not None else field.check
        value = check(v, p)
        if value is _KEEP:
            continue
        *parents, leaf = field.path
        dst = new
        for key in parents:
            dst = dst[key]
        if field.fixed_by_audio and has_assistant_audio and value != dst[leaf]:
            raise ClientError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                p,
            )
        dst[leaf] = value
    return new


def apply_ga_update(
    current: dict[str, Any], patch: object, *, has_assistant_audio: bool
) -> dict[str, Any]:
    """Return the new session after a GA ``session.update`` (raises ClientError)."""
    s = _obj(patch, "session")
    _keys(s, _GA_KEYS, "session")
    if "type" not in s:
        raise missing_parameter("session.type")
    if _str(s["type"], "session.type") != "realtime":
        raise invalid_value("session.type", s["type"], ("realtime",))
    sent: _Sent = {(k,): (v, f"session.{k}") for k, v in s.items() if k not in _GA_IGNORED}
    if "audio" in s:
        del sent[("audio",)]
        audio = _obj(s["audio"], "session.audio")
        _keys(audio, ("input", "output"), "session.audio")
        for side, allowed in _GA_AUDIO_KEYS.items():
            if side in audio:
                prefix = f"session.audio.{side}"
                part = _obj(audio[side], prefix)
                _keys(part, allowed, prefix)
                for k, v in part.items():
                    sent[("audio", side, k)] = (v, f"{prefix}.{k}")
    return _apply(current, sent, beta=False, has_assistant_audio=has_assistant_audio)


def apply_beta_update(
    current: dict[str, Any], patch: object, *, has_assistant_audio: bool
) -> dict[str, Any]:
    """Return the new session after a beta (flat) ``session.update`` (raises ClientError)."""
    s = _obj(patch, "session")
    _keys(s, _BETA_KEYS, "session")
    sent: _Sent = {
        f.path: (s[f.beta], f"session.{f.beta}")
        for f in _FIELDS
        if f.beta is not None and f.beta in s
    }
    return _apply(current, sent, beta=True, has_assistant_audio=has_assistant_audio)


# -- response.create parameters ---------------------------------------------------------

_RESPONSE_KEYS_GA = (
    "conversation",
    "instructions",
    "output_modalities",
    "tools",
    "tool_choice",
    "metadata",
    "input",
    "audio",
    "max_output_tokens",
    "prompt",
    "reasoning",
    "parallel_tool_calls",
)
_RESPONSE_KEYS_BETA = (
    "conversation",
    "instructions",
    "modalities",
    "tools",
    "tool_choice",
    "metadata",
    "input",
    "voice",
    "output_audio_format",
    "temperature",
    "max_response_output_tokens",
)


def response_params(raw: object, session: dict[str, Any], *, beta: bool) -> dict[str, Any]:
    """Validate ``response.create``'s ``response`` and resolve it against the session.

    Returns the effective settings: ``conversation`` ("auto"/"none"), ``instructions``,
    ``modality`` ("audio"/"text"), ``tools``, ``tool_choice``, ``metadata``, ``input``
    (raw list or None), ``voice``, ``format``, ``max_output_tokens``, ``temperature``, and
    GA's ``reasoning`` / ``parallel_tool_calls`` (the session's where it set them, else None).
    """
    r: dict[str, Any] = {} if raw is None else _obj(raw, "response")
    _keys(r, _RESPONSE_KEYS_BETA if beta else _RESPONSE_KEYS_GA, "response")
    aout = session["audio"]["output"]
    eff: dict[str, Any] = {
        "conversation": "auto",
        "instructions": session["instructions"],
        "modality": session["output_modalities"][0],
        "tools": session["tools"],
        "tool_choice": session["tool_choice"],
        "metadata": None,
        "input": None,
        "voice": aout["voice"],
        "format": aout["format"],
        "max_output_tokens": session["max_output_tokens"],
        "temperature": session["_beta"]["temperature"],
        "reasoning": session.get("reasoning"),
        "parallel_tool_calls": session.get("parallel_tool_calls"),
    }
    if "conversation" in r:
        conv = _str(r["conversation"], "response.conversation")
        eff["conversation"] = _enum(conv, "response.conversation", ("auto", "none"))
    if "instructions" in r:
        eff["instructions"] = _str(r["instructions"], "response.instructions")
    if "output_modalities" in r:
        eff["modality"] = _modalities_ga(r["output_modalities"], "response.output_modalities")[0]
    if "modalities" in r:
        eff["modality"] = _modalities_beta(r["modalities"], "response.modalities")[0]
    if "tools" in r:
        eff["tools"] = tools_list(r["tools"], "response.tools")
    if "tool_choice" in r:
        eff["tool_choice"] = tool_choice(r["tool_choice"], "response.tool_choice")
    if r.get("metadata") is not None:
        md = _obj(r["metadata"], "response.metadata")
        if len(md) > 16:
            raise ClientError(
                "invalid_value",
                "Invalid 'response.metadata': too many keys (max 16).",
                "response.metadata",
            )
        for k, v in md.items():
            _str(v, f"response.metadata.{k}")
        eff["metadata"] = dict(md)
    if r.get("input") is not None:
        if not isinstance(r["input"], list):
            raise invalid_type("response.input", "an array", r["input"])
        eff["input"] = r["input"]
    if "audio" in r and r["audio"] is not None:
        audio = _obj(r["audio"], "response.audio")
        _keys(audio, ("output",), "response.audio")
        out = _obj(audio.get("output", {}), "response.audio.output")
        _keys(out, ("format", "voice"), "response.audio.output")
        if "format" in out:
            eff["format"] = _format(out["format"], "response.audio.output.format")
        if "voice" in out:
            eff["voice"] = _voice(out["voice"], "response.audio.output.voice")
    if "voice" in r:
        eff["voice"] = _voice(r["voice"], "response.voice")
    if "output_audio_format" in r:
        eff["format"] = _beta_format(r["output_audio_format"], "response.output_audio_format")
    if "max_output_tokens" in r:
        eff["max_output_tokens"] = _max_tokens(r["max_output_tokens"], "response.max_output_tokens")
    if "max_response_output_tokens" in r:
        eff["max_output_tokens"] = _max_tokens(
            r["max_response_output_tokens"], "response.max_response_output_tokens"
        )
    if "reasoning" in r:
        eff["reasoning"] = _reasoning(r["reasoning"], "response.reasoning")
    if "parallel_tool_calls" in r:
        eff["parallel_tool_calls"] = _bool(r["parallel_tool_calls"], "response.parallel_tool_calls")
    if "temperature" in r:
        eff["temperature"] = _num(r["temperature"], "response.temperature", 0.6, 1.2)
    return eff
