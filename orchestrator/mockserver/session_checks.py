"""Field checks of ``session.update`` / ``response.create`` values: small typed readers
and the audio, transcription, reasoning, format, voice and modality checks.

Each check takes the value the client sent and its param path (``p``, as the error
must name it) and returns the value to store, or raises :class:`~.errors.ClientError`
with the real service's code / message / param. Pure functions, no I/O.
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
    _in_range(v, v, p, lo, hi)
    return v


def _num(v: object, p: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise invalid_type(p, "a number", v)
    f = float(v)
    _in_range(f, v, p, lo, hi)
    return f


def _in_range(x: float, sent: object, p: str, lo: float | None, hi: float | None) -> None:
    if lo is not None and x < lo:
        raise below_min(p, lo, sent)
    if hi is not None and x > hi:
        raise above_max(p, hi, sent)


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


#: transcription ``delay`` values (``openai.types.realtime.AudioTranscription``)
TRANSCRIPTION_DELAYS = ("minimal", "low", "medium", "high", "xhigh")
#: reasoning ``effort`` values (``openai.types.realtime.RealtimeReasoningEffort``)
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


def _list(v: object, p: str) -> list[Any]:
    if not isinstance(v, list):
        raise invalid_type(p, "an array", v)
    return v


def _str_list(v: object, p: str) -> list[str]:
    return [_str(x, f"{p}[{i}]") for i, x in enumerate(_list(v, p))]


def _transcription(v: object, p: str, *, ga: bool = True) -> dict[str, Any] | None:
    """``audio.input.transcription`` (beta: ``input_audio_transcription``).

    Echoed as ``{model, language, prompt}`` like the real service, plus GA's newer
    ``delay`` / ``keywords`` / ``languages`` when they were given (beta has none of them).
    """
    if v is None:
        return None
    t = _obj(v, p)
    newer = ("delay", "keywords", "languages") if ga else ()
    _keys(t, ("model", "language", "prompt", *newer), p)
    out: dict[str, Any] = {
        "model": _str(t.get("model", "whisper-1"), f"{p}.model"),
        "language": _opt_str(t.get("language"), f"{p}.language"),
        "prompt": _opt_str(t.get("prompt"), f"{p}.prompt"),
    }
    if "delay" in t:
        out["delay"] = _enum(t["delay"], f"{p}.delay", TRANSCRIPTION_DELAYS)
    for key in ("keywords", "languages"):
        if key in t:
            out[key] = _str_list(t[key], f"{p}.{key}")
    return out


def _beta_transcription(v: object, p: str) -> dict[str, Any] | None:
    return _transcription(v, p, ga=False)


def _reasoning(v: object, p: str) -> dict[str, Any]:
    """``reasoning`` (session or ``response.create``; GA only): ``{effort}``."""
    r = _obj(v, p)
    _keys(r, ("effort",), p)
    out: dict[str, Any] = {}
    if "effort" in r:
        out["effort"] = _enum(r["effort"], f"{p}.effort", REASONING_EFFORTS)
    return out


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
