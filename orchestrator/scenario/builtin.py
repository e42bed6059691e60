"""The built-in conversation: one spoken question, one answer.

What ``orchestrator run`` runs without a scenario file. The user's audio is
``lead_ms`` of silence, ``speech_ms`` of deterministic speech-like audio
(:func:`orchestrator.audio.speech_like`, seeded) and ``tail_ms`` of silence, streamed in
real time (or ``realtime_factor`` times faster); the server's VAD ends the turn
(``server_vad``, ``vad_silence_ms`` of silence). The conversation succeeds when the
assistant answered (the turn's response completed); anything else fails the session with
:class:`ScenarioFailed`, so "no answer" counts as an error in the run, not as a fast turn.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.session.actor import Session
from orchestrator.session.sources import AudioSource

from .errors import ScenarioFailed

__all__ = ["BuiltinConversation", "ScenarioFailed", "voice_session_config"]


def voice_session_config(
    *,
    voice: str | None = None,
    vad_silence_ms: int = 200,
    vad_threshold: float = 0.5,
    prefix_padding_ms: int = 300,
    instructions: str | None = None,
    model: str | None = None,
) -> Any:
    """A GA ``SessionConfig`` for a speech-to-speech call: PCM16 24 kHz in and out,
    audio output, server VAD with the given silence duration and threshold."""
    return P.SessionConfig(
        model=model,
        output_modalities=["audio"],
        instructions=instructions,
        audio=P.AudioConfig(
            input=P.AudioInput(
                format=P.AudioFormat(type="audio/pcm", rate=24000),
                turn_detection=P.TurnDetection(
                    type="server_vad",
                    threshold=vad_threshold,
                    prefix_padding_ms=prefix_padding_ms,
                    silence_duration_ms=vad_silence_ms,
                ),
            ),
            output=P.AudioOutput(format=P.AudioFormat(type="audio/pcm", rate=24000), voice=voice),
        ),
    )


@attrs.frozen(kw_only=True)
class BuiltinConversation:
    """The driver of the built-in conversation (call it with a ready session).

    ``speech_ms`` of speech between ``lead_ms`` and ``tail_ms`` of silence, seeded by
    ``seed``; ``linger_ms``: stay connected that long after the answer (a caller
    listening to the rest of it).
    """

    speech_ms: float = 1500.0
    lead_ms: float = 200.0
    tail_ms: float = 300.0
    seed: int = 0
    linger_ms: float = 0.0
    label: str = "question"
    _source: AudioSource | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for name in ("speech_ms", "lead_ms", "tail_ms", "linger_ms"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"BuiltinConversation.{name} must be >= 0, got {value!r}")
        if self.speech_ms <= 0:
            raise ValueError(f"BuiltinConversation.speech_ms must be > 0, got {self.speech_ms!r}")

    @property
    def name(self) -> str:
        """The scenario label used in records."""
        return "builtin:one-question"

    def prepare(self) -> None:
        """One-time work before a run's clock starts: synthesize the shared audio."""
        self.source()

    def source(self) -> AudioSource:
        """The user's audio: synthesized once (~10 ms of numpy work, which must not run in
        every session on the event loop) and shared, read-only, by every session."""
        if self._source is None:
            source = AudioSource.synthetic(
                self.speech_ms, lead_ms=self.lead_ms, tail_ms=self.tail_ms, seed=self.seed
            )
            source.samples.flags.writeable = False
            object.__setattr__(self, "_source", source)
        assert self._source is not None
        return self._source

    async def __call__(self, session: Session) -> None:
        """Speak the question, wait for the answer.

        Raises :class:`ScenarioFailed` when the turn did not complete. Cancellation:
        raises ``Cancelled``; the session is closed by its owner.
        """
        turn = await session.say_audio(self.source(), commit="vad", label=self.label)
        if turn.status != "completed":
            raise ScenarioFailed(
                f"turn 0 ({self.label}) {turn.status}: {turn.reason or 'no reason given'}"
            )
        if self.linger_ms:
            await trio.sleep(self.linger_ms / 1000.0)
