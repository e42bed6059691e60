"""Transcription sessions on the client side: the session config of a realtime
speech-to-text load test (``orchestrator run --mode transcription``).

The built-in conversation needs nothing else: in a transcription session a spoken turn
ends with ``…input_audio_transcription.completed`` (see
:mod:`orchestrator.session.transcribe`), which stamps ``transcription_ms``.
"""

from __future__ import annotations

from typing import Any

from orchestrator import protocol as P

__all__ = ["DEFAULT_TRANSCRIPTION_MODEL", "transcription_session_config"]

DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-transcribe"


def transcription_session_config(
    *,
    transcription_model: str = DEFAULT_TRANSCRIPTION_MODEL,
    language: str | None = None,
    vad_silence_ms: int = 200,
    vad_threshold: float = 0.5,
    prefix_padding_ms: int = 300,
) -> Any:
    """A GA transcription ``SessionConfig`` (``session.type = "transcription"``): PCM16
    24 kHz in, server VAD with the given silence and threshold, transcribed by
    ``transcription_model``."""
    return P.SessionConfig(
        type="transcription",
        audio=P.AudioConfig(
            input=P.AudioInput(
                format=P.AudioFormat(type="audio/pcm", rate=24000),
                transcription=P.Transcription(model=transcription_model, language=language),
                turn_detection=P.TurnDetection(
                    type="server_vad",
                    threshold=vad_threshold,
                    prefix_padding_ms=prefix_padding_ms,
                    silence_duration_ms=vad_silence_ms,
                ),
            )
        ),
    )
