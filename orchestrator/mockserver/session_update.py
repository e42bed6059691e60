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
from typing import Any

from orchestrator.protocol.beta import (
    FORMAT_FROM_BETA,
    FORMAT_TO_BETA,
    format_from_beta,
    modalities_from_beta,
)

from .defaults import SEMANTIC_VAD_DEFAULTS, SERVER_VAD_DEFAULTS, VOICES
from .errors import (
    ClientError,
    above_max,
    below_min,
    invalid_type,
    invalid_value,
    missing_parameter,
    unknown_parameter,
)

# -- small typed readers ----------------------------------------------------------------


def _obj(v: object, p: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise invalid_type(p, "an object", v)
    return v


def _str(v: object, p: str) -> str:
    if not isinstance(v, str):
        raise invalid_type(p, "a string", v)
    return v


def _opt_str(v: object, p: str) -> str | None:
    return None if v is None else _str(v, p)


def _bool(v: object, p: str) -> bool:
    if not isinstance(v, bool):
        raise invalid_type(p, "a boolean", v)
    return v


def _int(v: object, p: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise invalid_type(p, "an integer", v)
    if lo is not None and v < lo:
        raise below_min(p, lo, v)
    if hi is not None and v > hi:
        raise above_max(p, hi, v)
    return v


def _num(v: object, p: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise invalid_type(p, "a number", v)
    f = float(v)
    if lo is not None and f < lo:
        raise below_min(p, lo, v)
    if hi is not None and f > hi:
        raise above_max(p, hi, v)
    return f


def _enum(v: object, p: str, values: tuple[str, ...]) -> str:
    if not isinstance(v, str):
        raise invalid_type(p, "a string", v)
    if v not in values:
        raise invalid_value(p, v, values)
    return v


def _keys(obj: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise unknown_parameter(f"{prefix}.{key}")


# -- shared sub-objects -----------------------------------------------------------------


def _max_tokens(v: object, p: str) -> int | str:
    if v == "inf":
        return "inf"
    if isinstance(v, str):
        raise invalid_value(p, v, ("inf",))
    return _int(v, p, 1, 4096)


def _turn_detection(v: object, p: str) -> dict[str, Any] | None:
    if v is None:
        return None
    td = _obj(v, p)
    kind = td.get("type", "server_vad")
    kind = _enum(kind, f"{p}.type", ("server_vad", "semantic_vad"))
    if kind == "server_vad":
        _keys(
            td,
            (
                "type",
                "threshold",
                "prefix_padding_ms",
                "silence_duration_ms",
                "idle_timeout_ms",
                "create_response",
                "interrupt_response",
            ),
            p,
        )
        out = copy.deepcopy(SERVER_VAD_DEFAULTS)
        if "threshold" in td:
            out["threshold"] = _num(td["threshold"], f"{p}.threshold", 0.0, 1.0)
        if "prefix_padding_ms" in td:
            out["prefix_padding_ms"] = _int(td["prefix_padding_ms"], f"{p}.prefix_padding_ms", 0)
        if "silence_duration_ms" in td:
            out["silence_duration_ms"] = _int(
                td["silence_duration_ms"], f"{p}.silence_duration_ms", 0
            )
        if td.get("idle_timeout_ms") is not None:
            out["idle_timeout_ms"] = _int(
                td["idle_timeout_ms"], f"{p}.idle_timeout_ms", 5000, 30000
            )
    else:
        _keys(td, ("type", "eagerness", "create_response", "interrupt_response"), p)
        out = copy.deepcopy(SEMANTIC_VAD_DEFAULTS)
        if "eagerness" in td:
            out["eagerness"] = _enum(
                td["eagerness"], f"{p}.eagerness", ("low", "medium", "high", "auto")
            )
    for flag in ("create_response", "interrupt_response"):
        if flag in td:
            out[flag] = _bool(td[flag], f"{p}.{flag}")
    return out


def _transcription(v: object, p: str) -> dict[str, Any] | None:
    if v is None:
        return None
    t = _obj(v, p)
    _keys(t, ("model", "language", "prompt"), p)
    return {
        "model": _str(t.get("model", "whisper-1"), f"{p}.model"),
        "language": _opt_str(t.get("language"), f"{p}.language"),
        "prompt": _opt_str(t.get("prompt"), f"{p}.prompt"),
    }


def _noise(v: object, p: str) -> dict[str, Any] | None:
    if v is None:
        return None
    n = _obj(v, p)
    _keys(n, ("type",), p)
    return {"type": _enum(n.get("type"), f"{p}.type", ("near_field", "far_field"))}


def _format(v: object, p: str) -> dict[str, Any]:
    f = _obj(v, p)
    _keys(f, ("type", "rate"), p)
    if "type" not in f:
        raise missing_parameter(f"{p}.type")
    kind = _enum(f["type"], f"{p}.type", tuple(FORMAT_TO_BETA))
    if kind == "audio/pcm":
        rate = _int(f.get("rate", 24000), f"{p}.rate", 24000, 24000)
        return {"type": kind, "rate": rate}
    return {"type": kind}


def _beta_format(v: object, p: str) -> dict[str, Any]:
    """A beta format name (``"pcm16"``...) as the GA format object (a fresh copy)."""
    fmt: dict[str, Any] = format_from_beta(_enum(v, p, tuple(FORMAT_FROM_BETA)))
    return fmt


def _voice(v: object, p: str) -> str:
    if isinstance(v, dict) and isinstance(v.get("id"), str):
        return v["id"]  # custom voice object
    return _enum(v, p, VOICES)


def _set_voice(aout: dict[str, Any], v: object, p: str, has_assistant_audio: bool) -> None:
    voice = _voice(v, p)
    if voice != aout["voice"] and has_assistant_audio:
        raise ClientError(
            "cannot_update_voice",
            "Cannot update a conversation's voice if assistant audio is present.",
            p,
        )
    aout["voice"] = voice


def tools_list(v: object, p: str) -> list[dict[str, Any]]:
    """Validate a ``tools`` array (function and MCP tools)."""
    if not isinstance(v, list):
        raise invalid_type(p, "an array", v)
    out = []
    for i, raw in enumerate(v):
        tp = f"{p}[{i}]"
        t = _obj(raw, tp)
        kind = _enum(t.get("type", "function"), f"{tp}.type", ("function", "mcp"))
        if kind == "function":
            _keys(t, ("type", "name", "description", "parameters"), tp)
            if "name" not in t:
                raise missing_parameter(f"{tp}.name")
            tool = {"type": "function", "name": _str(t["name"], f"{tp}.name")}
            if "description" in t:
                tool["description"] = _str(t["description"], f"{tp}.description")
            if "parameters" in t:
                tool["parameters"] = _obj(t["parameters"], f"{tp}.parameters")
            out.append(tool)
        else:
            if "server_label" not in t:
                raise missing_parameter(f"{tp}.server_label")
            out.append(copy.deepcopy(t))
    return out


def tool_choice(v: object, p: str) -> str | dict[str, Any]:
    """Validate ``tool_choice``."""
    if isinstance(v, str):
        return _enum(v, p, ("auto", "none", "required"))
    c = _obj(v, p)
    kind = _enum(c.get("type"), f"{p}.type", ("function", "mcp"))
    if kind == "function":
        _keys(c, ("type", "name"), p)
        return {"type": "function", "name": _str(c.get("name"), f"{p}.name")}
    return copy.deepcopy(c)


def _tracing(v: object, p: str) -> object:
    if v is None or v == "auto":
        return v
    t = _obj(v, p)
    _keys(t, ("workflow_name", "group_id", "metadata"), p)
    return copy.deepcopy(t)


def _modalities_ga(v: object, p: str) -> list[str]:
    if not isinstance(v, list) or not v:
        raise invalid_type(p, "an array", v)
    for i, m in enumerate(v):
        _enum(m, f"{p}[{i}]", ("text", "audio"))
    if len(set(v)) != 1:
        raise ClientError(
            "invalid_value",
            f"Invalid '{p}': output modalities must be either ['text'] or ['audio'], not both.",
            p,
        )
    return [v[0]]


def _modalities_beta(v: object, p: str) -> list[str]:
    if not isinstance(v, list) or not v:
        raise invalid_type(p, "an array", v)
    for i, m in enumerate(v):
        _enum(m, f"{p}[{i}]", ("text", "audio"))
    return modalities_from_beta(v)[:1]  # ["audio"], or a text-only list: one "text"


# -- whole updates ----------------------------------------------------------------------

_GA_KEYS = (
    "type",
    "model",
    "output_modalities",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "tracing",
    "truncation",
    "prompt",
    "include",
    "audio",
    "id",
    "object",
    "expires_at",
)


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
    new = copy.deepcopy(current)
    if "model" in s:
        new["model"] = _str(s["model"], "session.model")
    if "output_modalities" in s:
        new["output_modalities"] = _modalities_ga(
            s["output_modalities"], "session.output_modalities"
        )
    if "instructions" in s:
        text = _str(s["instructions"], "session.instructions")
        if text:
            new["instructions"] = text
    if "tools" in s:
        new["tools"] = tools_list(s["tools"], "session.tools")
    if "tool_choice" in s:
        new["tool_choice"] = tool_choice(s["tool_choice"], "session.tool_choice")
    if "max_output_tokens" in s:
        new["max_output_tokens"] = _max_tokens(s["max_output_tokens"], "session.max_output_tokens")
    if "tracing" in s:
        new["tracing"] = _tracing(s["tracing"], "session.tracing")
    if "truncation" in s:
        tr = s["truncation"]
        if isinstance(tr, str):
            new["truncation"] = _enum(tr, "session.truncation", ("auto", "disabled"))
        else:
            new["truncation"] = copy.deepcopy(_obj(tr, "session.truncation"))
    if "prompt" in s:
        new["prompt"] = (
            None if s["prompt"] is None else copy.deepcopy(_obj(s["prompt"], "session.prompt"))
        )
    if "include" in s:
        inc = s["include"]
        if inc is not None:
            if not isinstance(inc, list):
                raise invalid_type("session.include", "an array", inc)
            for i, x in enumerate(inc):
                _enum(x, f"session.include[{i}]", ("item.input_audio_transcription.logprobs",))
        new["include"] = inc
    if "audio" in s:
        audio = _obj(s["audio"], "session.audio")
        _keys(audio, ("input", "output"), "session.audio")
        if "input" in audio:
            ain = _obj(audio["input"], "session.audio.input")
            _keys(
                ain,
                ("format", "transcription", "noise_reduction", "turn_detection"),
                "session.audio.input",
            )
            dst = new["audio"]["input"]
            if "format" in ain:
                dst["format"] = _format(ain["format"], "session.audio.input.format")
            if "transcription" in ain:
                dst["transcription"] = _transcription(
                    ain["transcription"], "session.audio.input.transcription"
                )
            if "noise_reduction" in ain:
                dst["noise_reduction"] = _noise(
                    ain["noise_reduction"], "session.audio.input.noise_reduction"
                )
            if "turn_detection" in ain:
                dst["turn_detection"] = _turn_detection(
                    ain["turn_detection"], "session.audio.input.turn_detection"
                )
        if "output" in audio:
            aout = _obj(audio["output"], "session.audio.output")
            _keys(aout, ("format", "voice", "speed"), "session.audio.output")
            dst = new["audio"]["output"]
            if "format" in aout:
                dst["format"] = _format(aout["format"], "session.audio.output.format")
            if "voice" in aout:
                _set_voice(dst, aout["voice"], "session.audio.output.voice", has_assistant_audio)
            if "speed" in aout:
                dst["speed"] = _num(aout["speed"], "session.audio.output.speed", 0.25, 1.5)
    return new


_BETA_KEYS = (
    "model",
    "modalities",
    "instructions",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "tools",
    "tool_choice",
    "temperature",
    "max_response_output_tokens",
    "speed",
    "tracing",
    "include",
    "id",
    "object",
    "expires_at",
    "client_secret",
)


def apply_beta_update(
    current: dict[str, Any], patch: object, *, has_assistant_audio: bool
) -> dict[str, Any]:
    """Return the new session after a beta (flat) ``session.update`` (raises ClientError)."""
    s = _obj(patch, "session")
    _keys(s, _BETA_KEYS, "session")
    new = copy.deepcopy(current)
    ain = new["audio"]["input"]
    aout = new["audio"]["output"]
    if "model" in s:
        new["model"] = _str(s["model"], "session.model")
    if "modalities" in s:
        new["output_modalities"] = _modalities_beta(s["modalities"], "session.modalities")
    if "instructions" in s:
        text = _str(s["instructions"], "session.instructions")
        if text:
            new["instructions"] = text
    if "voice" in s:
        _set_voice(aout, s["voice"], "session.voice", has_assistant_audio)
    if "input_audio_format" in s:
        ain["format"] = _beta_format(s["input_audio_format"], "session.input_audio_format")
    if "output_audio_format" in s:
        aout["format"] = _beta_format(s["output_audio_format"], "session.output_audio_format")
    if "input_audio_transcription" in s:
        ain["transcription"] = _transcription(
            s["input_audio_transcription"], "session.input_audio_transcription"
        )
    if "input_audio_noise_reduction" in s:
        ain["noise_reduction"] = _noise(
            s["input_audio_noise_reduction"], "session.input_audio_noise_reduction"
        )
    if "turn_detection" in s:
        ain["turn_detection"] = _turn_detection(s["turn_detection"], "session.turn_detection")
    if "tools" in s:
        new["tools"] = tools_list(s["tools"], "session.tools")
    if "tool_choice" in s:
        new["tool_choice"] = tool_choice(s["tool_choice"], "session.tool_choice")
    if "temperature" in s:
        new["_beta"]["temperature"] = _num(s["temperature"], "session.temperature", 0.6, 1.2)
    if "max_response_output_tokens" in s:
        new["max_output_tokens"] = _max_tokens(
            s["max_response_output_tokens"], "session.max_response_output_tokens"
        )
    if "speed" in s:
        aout["speed"] = _num(s["speed"], "session.speed", 0.25, 1.5)
    if "tracing" in s:
        new["tracing"] = _tracing(s["tracing"], "session.tracing")
    if "include" in s:
        new["include"] = s["include"]
    return new


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
    (raw list or None), ``voice``, ``format``, ``max_output_tokens``, ``temperature``.
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
    if "temperature" in r:
        eff["temperature"] = _num(r["temperature"], "response.temperature", 0.6, 1.2)
    return eff
