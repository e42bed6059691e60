"""The built-in conversation: one spoken question, one answer.

What ``orchestrator run`` runs without a scenario file. The user's audio is
``lead_ms`` of silence, then ``speak`` (a :class:`~orchestrator.audio.voices.cache.Line`
synthesized before the run and varied per caller, see :mod:`.spoken`), else
``speech_ms`` of deterministic speech-like audio (:func:`orchestrator.audio.speech_like`,
seeded), then ``tail_ms`` of silence; or the WAV file ``audio`` as it is. It is streamed in
real time (or ``realtime_factor`` times faster); the server's VAD ends the turn
(``server_vad``, ``vad_silence_ms`` of silence). The conversation succeeds when the
assistant answered (the turn's response completed); anything else fails the session with
:class:`Unanswered` (a :class:`ScenarioFailed`), so "no answer" counts as an error in the
run, not as a fast turn. Its failure type and code are the turn's own
(:func:`~orchestrator.metrics.failure.turn_failure_kind`: ``ServerError`` with the
server's error code, the exception that failed the turn, ``turn_interrupted``…), so the
summary groups these failures by what went wrong, not as one generic type.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.audio.voices.cache import Line, VoiceCache
from orchestrator.audio.voices.variation import Variation
from orchestrator.metrics.failure import turn_failure_kind
from orchestrator.session.actor import Session
from orchestrator.session.sources import AudioSource

from .errors import ScenarioFailed
from .spoken import SpokenLine

__all__ = ["BuiltinConversation", "ScenarioFailed", "Unanswered", "voice_session_config"]


class Unanswered(ScenarioFailed):
    """The built-in conversation's question got no completed answer. ``failure_type`` /
    ``failure_code`` name what went wrong (see the module docstring); the session's
    ``Failure`` takes them (:meth:`orchestrator.metrics.failure.Failure.from_exception`).
    """

    def __init__(self, message: str, failure_type: str, failure_code: str | None) -> None:
        super().__init__(message)
        self.failure_type = failure_type
        self.failure_code = failure_code


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
    ``seed``; or ``speak``, a line spoken by a caller voice (varied per session by
    ``variation``, ``variants`` distinct callers, clips from ``cache``); or the WAV file
    ``audio``. ``linger_ms``: stay connected that long after the answer (a caller
    listening to the rest of it). Call :meth:`prepare` before the run's clock starts.
    """

    speech_ms: float = 1500.0
    lead_ms: float = 200.0
    tail_ms: float = 300.0
    seed: int = 0
    linger_ms: float = 0.0
    label: str = "question"
    speak: Line | None = None
    variation: Variation = attrs.field(factory=Variation)
    variants: int = 32
    audio: str | None = None
    cache: VoiceCache | None = attrs.field(default=None, eq=False)
    _source: AudioSource | None = attrs.field(default=None, init=False, eq=False, repr=False)
    _spoken: SpokenLine | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for name in ("speech_ms", "lead_ms", "tail_ms", "linger_ms"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"BuiltinConversation.{name} must be >= 0, got {value!r}")
        if self.speech_ms <= 0:
            raise ValueError(f"BuiltinConversation.speech_ms must be > 0, got {self.speech_ms!r}")
        if self.speak is not None and self.audio is not None:
            raise ValueError("BuiltinConversation: give speak or audio, not both")
        if self.speak is not None:
            spoken = SpokenLine(
                self.speak,
                self.variation,
                lead_ms=self.lead_ms,
                tail_ms=self.tail_ms,
                variants=self.variants,
            )
            object.__setattr__(self, "_spoken", spoken)

    @property
    def name(self) -> str:
        """The scenario label used in records."""
        return "builtin:one-question"

    @property
    def tags(self) -> dict[str, str]:
        """No user tags of its own (the run's ``--tag`` apply)."""
        return {}

    @property
    def speaks(self) -> bool:
        """Whether callers say a synthesized line (``speak``): only then is there anything
        for the embedded server to hear."""
        return self.speak is not None

    def prepare(self) -> None:
        """One-time work before a run's clock starts: make the shared audio (synthesize
        or load the spoken line and render its callers, or read the WAV file). Synchronous,
        possibly slow on a cold voice cache; does nothing the second time.

        Raises ``VoiceError`` (speak), ``AudioFileError`` (audio, a noise file) or
        ``ValueError`` (a WAV without speech)."""
        if self._spoken is not None:
            self._spoken.prepare(self.cache if self.cache is not None else VoiceCache())
        else:
            self.source()

    def source(self, caller: int = 0) -> AudioSource:
        """The audio of caller ``caller`` (the session's seed): made once (~10 ms of numpy
        work, which must not run in every session on the event loop) and shared,
        read-only, by every session. A spoken line must be prepared first."""
        if self._spoken is not None:
            return self._spoken.source(caller)
        if self._source is None:
            if self.audio is not None:
                source = AudioSource.from_wav(self.audio)
                if source.speech_start is None:
                    raise ValueError(f"{self.audio}: no speech found for the server's VAD")
            else:
                source = AudioSource.synthetic(
                    self.speech_ms, lead_ms=self.lead_ms, tail_ms=self.tail_ms, seed=self.seed
                )
            source.samples.flags.writeable = False
            object.__setattr__(self, "_source", source)
        assert self._source is not None
        return self._source

    async def __call__(self, session: Session) -> None:
        """Speak the question, wait for the answer.

        Raises :class:`Unanswered` when the turn did not complete. Cancellation:
        raises ``Cancelled``; the session is closed by its owner.
        """
        source = self.source(session.spec.seed or 0)
        turn = await session.say_audio(source, commit="vad", label=self.label)
        if turn.status != "completed":
            kind, code = turn_failure_kind(turn.record)
            raise Unanswered(
                f"turn 0 ({self.label}) {turn.status}: {turn.reason or 'no reason given'}",
                kind,
                code,
            )
        if self.linger_ms:
            await trio.sleep(self.linger_ms / 1000.0)
