"""The input audio buffer and turn detection of one connection (pure, no I/O).

Appended audio (base64 PCM16 at 24 kHz, or G.711 µ-law / A-law at 8 kHz) is decoded and
fed to :class:`orchestrator.audio.EnergyVad` configured from the session's
``turn_detection``:

- ``server_vad``: threshold / prefix_padding_ms / silence_duration_ms as given;
- ``semantic_vad``: approximated by the energy VAD with a silence wait that depends on
  ``eagerness`` (low 1200 ms, medium/auto 700 ms, high 300 ms);
- ``None``: no VAD; the client commits manually.

VAD times are on the appended-audio clock (ms of all audio appended on the connection),
which keeps running across commits, clears and format changes (PROTOCOL_NOTES §3).

With ``keep_turns`` (the server hears turns, :mod:`.hearing`) the decoded samples of the
current turn are kept (at most the last 30 s) and handed over by :meth:`InputAudio.take`
as :meth:`InputAudio.turn_audio`; without it nothing is kept.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from orchestrator.audio import (
    SAMPLE_RATE,
    EnergyVad,
    VadEvent,
    alaw_decode,
    b64_to_pcm16,
    ulaw_decode,
)
from orchestrator.protocol.beta import FORMAT_TO_BETA

from .defaults import SEMANTIC_SILENCE_MS, codec_rate
from .errors import ClientError
from .hearing import TurnAudio

#: The real service refuses to commit less than this much audio.
MIN_COMMIT_MS = 100.0


class InputAudio:
    """Input buffer + VAD for one connection."""

    def __init__(self, audio_input: dict[str, Any], *, keep_turns: bool = False) -> None:
        self._keep = keep_turns
        self._turn: TurnAudio | None = None
        self._last_turn: np.ndarray | None = None
        self._codec = ""
        self._td: dict[str, Any] | None = None
        self._vad: EnergyVad | None = None
        self._rate = SAMPLE_RATE
        self._fed = 0  # samples fed at the current rate
        self._base_ms = 0  # clock value when the current rate began
        self._buffered = 0  # samples in the buffer since the last commit / clear
        self.configure(audio_input)

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        return self._td

    @property
    def rate(self) -> int:
        """Sample rate of the input format (24000, or 8000 for G.711)."""
        return self._rate

    @property
    def audio_ms(self) -> int:
        """The appended-audio clock in ms."""
        return self._base_ms + self._fed * 1000 // self._rate

    @property
    def buffered_ms(self) -> float:
        """Milliseconds of audio in the buffer (since the last commit or clear)."""
        return self._buffered * 1000.0 / self._rate

    def configure(self, audio_input: dict[str, Any]) -> None:
        """Apply the session's ``audio.input`` (format + turn_detection)."""
        codec = FORMAT_TO_BETA[audio_input["format"]["type"]]  # codec names = beta names
        td = audio_input["turn_detection"]
        if codec != self._codec:
            self._base_ms = self.audio_ms
            self._fed = 0
            self._buffered = 0
            self._codec = codec
            self._rate = codec_rate(codec)
            self._turn = TurnAudio(self._rate) if self._keep else None
            self._vad = None
            self._td = None
        if td != self._td or (td is not None and self._vad is None):
            self._td = td
            self._vad = self._make_vad(td)

    def _make_vad(self, td: dict[str, Any] | None) -> EnergyVad | None:
        if td is None:
            return None
        if td["type"] == "semantic_vad":
            params = (0.5, 300, SEMANTIC_SILENCE_MS[td.get("eagerness", "auto")])
        else:
            params = (td["threshold"], td["prefix_padding_ms"], td["silence_duration_ms"])
        if self._vad is not None:
            self._vad.reconfigure(
                threshold=params[0], prefix_padding_ms=params[1], silence_duration_ms=params[2]
            )
            return self._vad
        vad = EnergyVad(params[0], params[1], params[2], rate=self._rate)
        if self._fed:
            # keep the clock: pretend the audio so far was silence already seen
            vad.feed(np.zeros(self._fed, np.int16))
        return vad

    def decode(self, audio: object) -> np.ndarray:
        """Decode one ``append`` payload (raises ClientError naming ``audio``)."""
        if not isinstance(audio, str):
            raise ClientError(
                "invalid_type",
                f"Invalid type for 'audio': expected a base64 string, but got {type(audio).__name__}.",
                "audio",
            )
        if self._codec == "pcm16":
            try:
                return b64_to_pcm16(audio)
            except ValueError:
                raise ClientError(
                    "invalid_value",
                    "Invalid 'audio'. Expected base64-encoded PCM16 audio (an even number of bytes).",
                    "audio",
                ) from None
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ClientError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio.", "audio"
            ) from None
        return ulaw_decode(raw) if self._codec == "g711_ulaw" else alaw_decode(raw)

    def append(self, samples: np.ndarray) -> list[VadEvent]:
        """Add decoded samples to the buffer; return VAD events (clock-adjusted)."""
        self._fed += samples.size
        self._buffered += samples.size
        if self._turn is not None:
            self._turn.append(samples)
        if self._vad is None:
            return []
        events = self._vad.feed(samples)
        if self._base_ms and events:
            events = [VadEvent(e.kind, e.audio_ms + self._base_ms) for e in events]
        return events

    def take(self) -> float:
        """Empty the buffer (commit); returns the committed milliseconds."""
        ms = self.buffered_ms
        self._buffered = 0
        if self._turn is not None:
            self._last_turn = self._turn.take()
        if self._vad is not None:
            self._vad.reset()
        return ms

    def turn_audio(self) -> np.ndarray | None:
        """The samples (at :attr:`rate`) of the turn last emptied by :meth:`take`, or None
        when turns are not kept."""
        return self._last_turn

    def commit(self) -> float:
        """A manual commit: refuses less than 100 ms like the real service."""
        ms = self.buffered_ms
        if ms < MIN_COMMIT_MS:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {ms:.2f}ms of audio.",
                None,
            )
        return self.take()

    def clear(self) -> None:
        """Drop the buffered audio (``input_audio_buffer.clear``); nothing of it is kept
        for hearing."""
        self._buffered = 0
        if self._turn is not None:
            self._turn.clear()
        self._last_turn = None
        if self._vad is not None:
            self._vad.reset()
