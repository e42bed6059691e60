"""Transcription sessions: speech-to-text only, no responses.

GA: a ``session.update`` whose ``session.type`` is ``"transcription"``
(``openai.types.realtime.RealtimeTranscriptionSessionCreateRequest``: ``audio.input``
with ``format`` / ``transcription`` / ``noise_reduction`` / ``turn_detection``, and
``include``). Beta: ``transcription_session.update`` (flat ``input_audio_format``,
``input_audio_transcription``, ``turn_detection``, ``input_audio_noise_reduction``,
``include``), answered with ``transcription_session.updated``.

The settings are validated by the realtime session's own checks (the same table,
:mod:`.session_update`) and stored in the connection's session; the conversation is
marked ``transcription`` so VAD-committed turns are transcribed (the seeded
transcription latency, :func:`.turns.transcribe`) and never answered.
"""

from __future__ import annotations

from typing import Any

from orchestrator.protocol.beta import FORMAT_TO_BETA

from .errors import ClientError, missing_parameter
from .port import ConnectionPort
from .session_checks import _keys, _obj
from .session_update import apply_beta_update, apply_ga_update

#: the model a transcription session transcribes with when none was set
DEFAULT_TRANSCRIPTION = {"model": "gpt-4o-transcribe", "language": None, "prompt": None}
_GA_KEYS = ("type", "audio", "include", "id", "object", "expires_at")
_GA_INPUT_KEYS = ("format", "transcription", "noise_reduction", "turn_detection")
_BETA_KEYS = (
    "input_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "include",
    "modalities",
    "client_secret",
)


def is_transcription_update(patch: object) -> bool:
    """Whether a GA ``session.update``'s session asks for a transcription session."""
    return isinstance(patch, dict) and patch.get("type") == "transcription"


def _refuse_with_responses(actor: ConnectionPort) -> None:
    if actor.runs:
        raise ClientError(
            "invalid_value",
            "Cannot change the session type while a response is in progress.",
            "session.type",
        )


def _ensure_model(actor: ConnectionPort) -> None:
    inp = actor.conv.session["audio"]["input"]
    if inp["transcription"] is None:
        inp["transcription"] = dict(DEFAULT_TRANSCRIPTION)


def ga_session(session: dict[str, Any]) -> dict[str, Any]:
    """The GA transcription session object (``session.updated``'s ``session``)."""
    inp = session["audio"]["input"]
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session["id"],
        "expires_at": session["expires_at"],
        "audio": {"input": {k: inp[k] for k in _GA_INPUT_KEYS}},
        "include": session["include"],
    }


def beta_session(session: dict[str, Any]) -> dict[str, Any]:
    """The beta ``TranscriptionSession`` (``transcription_session.updated``'s ``session``)."""
    inp = session["audio"]["input"]
    fmt = inp["format"]
    codec = FORMAT_TO_BETA[fmt["type"]]
    td = inp["turn_detection"]
    secret = {"value": "ek_mock_" + session["id"], "expires_at": session["expires_at"]}
    turn = None
    if td is not None:
        turn = {k: td.get(k) for k in ("type", "threshold", "prefix_padding_ms")}
        turn["silence_duration_ms"] = td.get("silence_duration_ms")
    return {
        "id": session["id"],
        "object": "realtime.transcription_session",
        "expires_at": session["expires_at"],
        "client_secret": secret,
        "input_audio_format": codec,
        "input_audio_transcription": inp["transcription"],
        "input_audio_noise_reduction": inp["noise_reduction"],
        "turn_detection": turn,
        "modalities": ["text"],
        "include": session["include"],
        # what the beta rendering (:func:`.wire.render`) puts back as ``client_secret``
        "_beta": {"client_secret": secret},
    }


async def _applied(actor: ConnectionPort, event: dict[str, Any]) -> None:
    actor.conv.transcription = True
    _ensure_model(actor)
    await actor.emit(event)
    actor.input.configure(actor.conv.session["audio"]["input"])
    actor.rearm_idle()


async def ga_transcription_update(actor: ConnectionPort, patch: object) -> None:
    """GA ``session.update`` with ``session.type = "transcription"``."""
    s = _obj(patch, "session")
    _keys(s, _GA_KEYS, "session")
    _refuse_with_responses(actor)
    as_realtime: dict[str, Any] = {"type": "realtime"}
    if "audio" in s:
        audio = _obj(s["audio"], "session.audio")
        _keys(audio, ("input",), "session.audio")
        inp = _obj(audio.get("input", {}), "session.audio.input")
        _keys(inp, _GA_INPUT_KEYS, "session.audio.input")
        as_realtime["audio"] = {"input": inp}
    if "include" in s:
        as_realtime["include"] = s["include"]
    conv = actor.conv
    conv.session = apply_ga_update(conv.session, as_realtime, has_assistant_audio=False)
    await _applied(actor, {"type": "session.updated", "session": ga_session(conv.session)})


async def beta_transcription_update(actor: ConnectionPort, data: dict[str, Any]) -> None:
    """``transcription_session.update`` (beta; accepted leniently in GA too)."""
    if "session" not in data:
        raise missing_parameter("session")
    s = _obj(data["session"], "session")
    _keys(s, _BETA_KEYS, "session")
    _refuse_with_responses(actor)
    flat = {k: v for k, v in s.items() if k not in ("modalities", "client_secret")}
    conv = actor.conv
    conv.session = apply_beta_update(conv.session, flat, has_assistant_audio=False)
    event = {"type": "transcription_session.updated", "session": beta_session(conv.session)}
    await _applied(actor, event)
