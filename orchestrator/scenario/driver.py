"""Playing a :class:`~.model.Scenario` through one session and checking its expectations.

:class:`ScenarioDriver` is a driver callable (``async (Session) -> None``) for the
supervisor, plus what a run needs to set sessions up for it: :meth:`~ScenarioDriver.
session_config` (the ``session.update``), :meth:`~ScenarioDriver.tool_registry` (the
scenario's tools, run by the session) and :meth:`~ScenarioDriver.server_hints`.

Playing: with ``[session] wait_for_greeting`` the caller first waits for the assistant's
greeting (none in time fails the session: ``ScenarioFailed("no greeting within 5.0
s")``) and lets it finish playing; the history is seeded, then each turn is started in order and awaited before
the next one starts, except when the next turn barges in (``barge_in_at_ms``): then the
next turn starts while this one's answer is playing, and both are awaited together.
Each turn's expectations are checked by the session when the turn is finalized (a
``check`` given to ``start_*_turn``), so the failures are on the turn's own record in
``results.jsonl``: one ``ErrorRecord(code="expectation_failed", message="<expectation>:
<what was seen>")`` per failed expectation (the record counts as failed; its
``status`` stays what the conversation did). Two exceptions: a turn ``cancelled``
because the session ended first is not marked (its session's status says why), and
``expect_user_transcript_regex`` on a turn whose user transcription had not arrived when
it ended is judged later (waiting up to :data:`TRANSCRIPT_WAIT_S`), so a failure of it
appears in the session's ``reason`` only.

When turns are over, their outcomes are taken in order; the first turn with a failed
expectation ends the script (the conversation would no longer be the scripted one) and
:meth:`~ScenarioDriver.__call__` raises :class:`ScenarioFailed`, which the supervisor
records as the session's failure (``reason`` names the turn and each failed
expectation). A session that fails by itself (lost connection, server error) fails as
usual; the driver never turns that into an expectation failure of its own.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.audio import AudioFileError, EnergyVad, silence
from orchestrator.audio.voices.cache import Line, VoiceCache
from orchestrator.audio.voices.engines import VoiceError
from orchestrator.audio.voices.variation import Variation
from orchestrator.session.actor import Session
from orchestrator.session.sources import AudioSource
from orchestrator.session.tools import ToolRegistry
from orchestrator.session.turns import Turn

from .errors import ScenarioError, ScenarioFailed
from .expect import ExpectationFailure, Observed, check_turn
from .model import BUDGET_METRICS, McpServerSpec, Scenario, ToolSpec, TurnSpec, VoiceSettings
from .spoken import SpokenLine
from .transcription import transcription_session_config

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TRANSCRIPTION_MODEL", "ScenarioDriver", "TurnOutcome"]

DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"

#: Synthetic turns: silence before and after the speech unless the turn says otherwise.
DEFAULT_LEAD_MS = 200.0
DEFAULT_TAIL_MS = 300.0

#: How long to wait, after a turn ended, for the transcription of its user audio when an
#: expectation needs it (transcription runs beside the response and may finish later).
TRANSCRIPT_WAIT_S = 5.0


@attrs.frozen(kw_only=True)
class TurnOutcome:
    """A checked turn: its index, spec, the session's :class:`Turn` handle and the
    expectations it failed (empty = passed)."""

    index: int
    spec: TurnSpec
    turn: Turn = attrs.field(eq=False, repr=False)
    failures: tuple[ExpectationFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@attrs.define(eq=False)
class _TurnCheck:
    """The session-side ``check`` of one scenario turn: observes the finished turn,
    keeps the observation and failures for the driver, and returns the messages that go
    on the turn's record. Fast and free of I/O (no awaiting), as a turn check must be."""

    index: int
    spec: TurnSpec
    observed: Observed | None = None
    failures: tuple[ExpectationFailure, ...] = ()

    def __call__(self, turn: Turn) -> list[str]:
        self.observed = _observe(self.spec, turn)
        self.failures = tuple(check_turn(self.spec, self.index, self.observed))
        if turn.status == "cancelled":
            return []  # the session ended first: not this turn's verdict
        return [f"{f.expectation}: {f.message}" for f in self.failures]


def _observe(spec: TurnSpec, turn: Turn) -> Observed:
    record = turn.record
    pending = (
        spec.expect_user_transcript_regex is not None
        and turn.user_transcript is None
        and turn.user_item_id is not None
    )
    return Observed(
        status=turn.status,
        reason=turn.reason,
        tool_calls=tuple((c.name, c.arguments) for c in turn.tool_calls),
        transcript=turn.transcript,
        user_transcript=turn.user_transcript,
        user_transcript_pending=pending,
        metrics={m: getattr(record, m) for m in BUDGET_METRICS},
    )


def _tool_handler(tool: ToolSpec) -> Any:
    async def handler(**arguments: Any) -> Any:
        if tool.delay_ms:
            await trio.sleep(tool.delay_ms / 1000.0)
        return tool.render(arguments)

    return handler


@attrs.define(eq=False)
class ScenarioDriver:
    """The driver of ``scenario`` (call it with a ready session; share one instance
    across sessions: it keeps no per-session state).

    Construction loads the user audio once (WAV files are read, synthetic speech made)
    and shares it read-only; a WAV that cannot be read, or holds no speech where the
    server's VAD must find some, raises :class:`ScenarioError` naming the scenario file
    and ``turns[i].audio`` (every such turn in one error). ``speak`` turns are
    synthesized by :meth:`prepare` (through ``cache``, default a
    :class:`~orchestrator.audio.voices.cache.VoiceCache` of the default directory). Build
    and prepare it before the run starts.
    """

    scenario: Scenario
    cache: VoiceCache | None = None
    _sources: list[AudioSource | None] = attrs.field(init=False, factory=list)
    _spoken: dict[int, SpokenLine] = attrs.field(init=False, factory=dict)
    _prepared: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for i, turn in enumerate(self.scenario.turns):
            try:
                self._sources.append(self._load(i, turn))
            except ScenarioError as exc:  # keep going: every bad file in one report
                problems.extend(exc.problems)
        if problems:
            raise ScenarioError(self.scenario.origin, problems)

    def _load(self, index: int, spec: TurnSpec) -> AudioSource | None:
        if spec.kind == "text":
            return None
        if spec.kind == "speak":
            self._spoken[index] = _spoken_line(self.scenario.voices, index, spec)
            return None
        if spec.kind == "synth":
            assert spec.synth_ms is not None
            source = AudioSource.synthetic(
                spec.synth_ms,
                lead_ms=DEFAULT_LEAD_MS if spec.lead_ms is None else spec.lead_ms,
                tail_ms=DEFAULT_TAIL_MS if spec.tail_ms is None else spec.tail_ms,
                seed=index if spec.seed is None else spec.seed,
            )
        else:
            assert spec.audio is not None
            field = f"turns[{index}].audio"
            try:
                source = AudioSource.from_wav(spec.audio)
            except (AudioFileError, OSError, ValueError) as exc:
                raise ScenarioError(self.scenario.origin, [(field, str(exc))]) from None
            vad = spec.commit == "vad" or (spec.commit == "auto" and self.scenario.session.vad)
            if vad and source.speech_start is None:
                raise ScenarioError(
                    self.scenario.origin,
                    [(field, f"{spec.audio}: no speech found for the server's VAD to detect")],
                )
        source.samples.flags.writeable = False
        return source

    @property
    def name(self) -> str:
        """The scenario's name (the session label in records)."""
        return self.scenario.name

    @property
    def tags(self) -> dict[str, str]:
        """The scenario file's user ``tags`` (for ``SessionSpec.tags``)."""
        return dict(self.scenario.tags)

    @property
    def speaks(self) -> bool:
        """Whether callers say synthesized lines (``speak`` turns): only then is there
        anything for the embedded server to hear."""
        return bool(self._spoken)

    def prepare(self) -> None:
        """One-time work before a run's clock starts: synthesize (or load from the cache)
        every line of the ``speak`` turns and render their callers' variants. Synchronous
        and possibly slow (seconds on a cold cache): never call it on the event loop of a
        running load. Does nothing the second time.

        Raises :class:`ScenarioError` naming ``turns[i].speak`` (or ``voices.noise``) when
        an engine, the cache directory or the noise file fails.
        """
        if self._prepared:
            return
        cache = self.cache if self.cache is not None else VoiceCache()
        problems: list[tuple[str, str]] = []
        for index, spoken in self._spoken.items():
            try:
                spoken.prepare(cache)
            except VoiceError as exc:
                problems.append((f"turns[{index}].speak", str(exc)))
            except (AudioFileError, ValueError) as exc:
                problems.append(("voices.noise", str(exc)))
        if problems:
            raise ScenarioError(self.scenario.origin, problems)
        for index, spoken in self._spoken.items():
            self._warn_of_pauses(index, spoken)
        self._prepared = True

    def _warn_of_pauses(self, index: int, spoken: SpokenLine) -> None:
        """Log a warning when the server VAD the scenario asks for would end the caller's
        turn inside a spoken line (a pause in the synthesized speech longer than
        ``vad_silence_ms``): the rest would arrive as a second turn that interrupts the
        first one's answer. Judged on the first caller's variant with the same energy
        VAD the embedded server uses; a real server's VAD may differ."""
        s = self.scenario.session
        if s.turn_detection != "server_vad":
            return
        source = spoken.source(0)
        if source.speech_start is None or source.speech_end is None:
            return
        threshold, _, silence_ms = s.server_vad_params
        vad = EnergyVad(
            threshold=threshold,
            prefix_padding_ms=0,
            silence_duration_ms=silence_ms,
        )
        speech = source.samples[source.speech_start : source.speech_end]
        events = vad.feed(speech) + vad.feed(silence(2000))
        starts = sum(1 for e in events if e.kind == "speech_started")
        if starts > 1:
            log.warning(
                "%s: turns[%d].speak: the line has %d pause(s) longer than vad_silence_ms "
                "(%d ms); a server VAD would end the turn at the first one. Split the "
                "line into turns or raise [session] vad_silence_ms.",
                self.scenario.origin,
                index,
                starts - 1,
                silence_ms,
            )

    # ------------------------------------------------------------------ session setup
    def session_config(self) -> Any:
        """The GA ``SessionConfig`` of the scenario's ``[session]`` (PCM16 24 kHz in and
        out); tools are added by the session from :meth:`tool_registry`."""
        s = self.scenario.session
        if s.type == "transcription":
            return transcription_session_config(
                transcription_model=s.transcription_model or DEFAULT_TRANSCRIPTION_MODEL,
                vad_silence_ms=s.server_vad_params[2],
                vad_threshold=s.server_vad_params[0],
                prefix_padding_ms=s.server_vad_params[1],
            )
        pcm = P.AudioFormat(type="audio/pcm", rate=24000)
        turn_detection: Any
        if s.turn_detection == "none":
            turn_detection = P.NULL
        elif s.turn_detection == "semantic_vad":
            turn_detection = P.TurnDetection(type="semantic_vad", eagerness=s.vad_eagerness)
        else:
            threshold, prefix_ms, silence_ms = s.server_vad_params
            turn_detection = P.TurnDetection(
                type="server_vad",
                threshold=threshold,
                prefix_padding_ms=prefix_ms,
                silence_duration_ms=silence_ms,
            )
        transcription = None
        if s.transcription:
            transcription = P.Transcription(
                model=s.transcription_model or DEFAULT_TRANSCRIPTION_MODEL
            )
        tools = None
        if self.scenario.mcp:  # the session adds function tools only to a config without any
            registry = self.tool_registry()
            functions = registry.function_tools() if registry is not None else []
            tools = [*functions, *(_mcp_tool(m) for m in self.scenario.mcp)]
        return P.SessionConfig(
            output_modalities=[s.output_modality],
            tools=tools,
            instructions=s.instructions,
            tool_choice=s.tool_choice,
            audio=P.AudioConfig(
                input=P.AudioInput(
                    format=pcm, transcription=transcription, turn_detection=turn_detection
                ),
                output=P.AudioOutput(format=pcm, voice=s.voice),
            ),
        )

    def tool_registry(self) -> ToolRegistry | None:
        """The scenario's tools as a registry the session runs for function calls (None
        when the scenario declares no tools)."""
        if not self.scenario.tools and not self.scenario.mcp:
            return None
        registry = ToolRegistry(approve_mcp=self.scenario.session.mcp_approval == "approve")
        for tool in self.scenario.tools:
            registry.add(
                tool.name,
                _tool_handler(tool),
                description=tool.description,
                parameters=tool.parameters,
            )
        return registry

    def server_hints(self) -> dict[str, Any]:
        """The ``[server]`` hints as plain data for the embedded server's config:
        ``tool_rules`` as ``(pattern, tool, JSON arguments text)``,
        ``spoken_transcripts`` and ``greeting`` (None: the server does not speak first)."""
        import orjson

        hints = self.scenario.server
        return {
            "tool_rules": [
                (r.pattern, r.tool, orjson.dumps(r.arguments).decode()) for r in hints.tool_rules
            ],
            "spoken_transcripts": list(hints.spoken_transcripts),
            "greeting": hints.greeting,
        }

    # ------------------------------------------------------------------ playing
    async def __call__(self, session: Session) -> None:
        """Play the scenario through ``session`` and check every turn.

        Raises :class:`ScenarioFailed` (message: the first failing turn and each of its
        failed expectations, ``; ``-joined) when an expectation did not hold. Session
        errors (``SessionEnded``, ``RequestRejected``, ...) propagate unchanged.
        Cancellation: raises ``Cancelled``; the session is closed by its owner.
        """
        outcomes = await self.play(session)
        failures = [f for o in outcomes for f in o.failures]
        if failures:
            raise ScenarioFailed("; ".join(str(f) for f in failures), failures)

    async def play(self, session: Session) -> list[TurnOutcome]:
        """Play the turns and return their outcomes, in order; stops after the first
        turn that failed an expectation (its outcome is the last one). Never raises for
        a failed expectation; errors and cancellation as for :meth:`__call__`."""
        turns = self.scenario.turns
        settings = self.scenario.session
        if settings.wait_for_greeting:
            timeout = settings.greeting_timeout_s
            if not await session.wait_for_greeting(timeout):
                raise ScenarioFailed(f"no greeting within {timeout:.1f} s")
            # A polite caller lets the greeting finish playing before speaking.
            played = session.playback.ends_at
            if played is not None:
                await trio.sleep_until(played)
        if self.scenario.history:
            await session.seed_history([(h.role, h.text) for h in self.scenario.history])
        outcomes: list[TurnOutcome] = []
        pending: list[tuple[Turn, _TurnCheck]] = []
        previous: Turn | None = None
        for index, spec in enumerate(turns):
            if spec.pause_ms:
                await trio.sleep(spec.pause_ms / 1000.0)
            check = _TurnCheck(index=index, spec=spec)
            turn = await self._start(session, index, spec, previous, check)
            pending.append((turn, check))
            previous = turn
            if index + 1 < len(turns) and turns[index + 1].barge_in_at_ms is not None:
                continue  # the next turn speaks over this one's answer
            for started, _ in pending:
                await started.wait()
            for started, check in pending:
                outcome = await self._check(session, started, check)
                outcomes.append(outcome)
                if not outcome.ok:
                    return outcomes
            pending.clear()
        return outcomes

    async def _start(
        self,
        session: Session,
        index: int,
        spec: TurnSpec,
        previous: Turn | None,
        check: _TurnCheck,
    ) -> Turn:
        if spec.say is not None:
            return await session.start_text_turn(spec.say, label=spec.label, check=check)
        source = self._sources[index]
        if index in self._spoken:
            source = self._spoken[index].source(session.spec.seed or 0)
        return await session.start_audio_turn(
            source,
            commit=spec.commit,
            barge_in_at_ms=spec.barge_in_at_ms,
            during=previous if spec.barge_in_at_ms is not None else None,
            label=spec.label,
            check=check,
        )

    async def _check(self, session: Session, turn: Turn, check: _TurnCheck) -> TurnOutcome:
        """The outcome of a finished turn from what its check saw at the end; only a
        user transcription still pending then is waited for and judged now."""
        index, spec, observed = check.index, check.spec, check.observed
        failures = check.failures
        if observed is None:  # cannot happen once the turn is done; judge it now
            observed = _observe(spec, turn)
            failures = tuple(check_turn(spec, index, observed))
        if observed.user_transcript_pending:
            if turn.user_transcript is None:
                await _await_transcription(session, turn.user_item_id)
            observed = attrs.evolve(
                observed, user_transcript=turn.user_transcript, user_transcript_pending=False
            )
            failures = tuple(check_turn(spec, index, observed))
        return TurnOutcome(index=index, spec=spec, turn=turn, failures=failures)


def _spoken_line(voices: VoiceSettings, index: int, spec: TurnSpec) -> SpokenLine:
    """The :class:`SpokenLine` of speak turn ``index``: the ``[voices]`` engine, voice and
    speed unless the turn sets its own (then its callers do not vary that)."""
    assert spec.speak is not None
    speed_range = voices.speed_range if spec.speed is None else None
    variation = Variation(
        speed_range=(speed_range[0], speed_range[1]) if speed_range else None,
        voices=voices.voices if spec.voice is None else (),
        noise=voices.noise,
        snr_db=20.0 if voices.snr_db is None else voices.snr_db,
        jitter_ms=voices.jitter_ms,
        telephone=voices.telephone,
        seed=voices.seed,
    )
    line = Line(
        text=spec.speak,
        engine=voices.engine,
        voice=spec.voice or voices.voice,
        speed=voices.speed if spec.speed is None else spec.speed,
    )
    return SpokenLine(
        line,
        variation,
        lead_ms=DEFAULT_LEAD_MS if spec.lead_ms is None else spec.lead_ms,
        tail_ms=DEFAULT_TAIL_MS if spec.tail_ms is None else spec.tail_ms,
        turn=index,
        variants=voices.variants,
    )


async def _await_transcription(session: Session, item_id: str | None) -> None:
    """Wait (at most :data:`TRANSCRIPT_WAIT_S`) for the transcription of the user audio
    item ``item_id`` to complete or fail."""
    with trio.move_on_after(TRANSCRIPT_WAIT_S):
        await session.wait_for(
            lambda ev: (
                type(ev)
                in (
                    P.ConversationItemInputAudioTranscriptionCompleted,
                    P.ConversationItemInputAudioTranscriptionFailed,
                )
                and ev.item_id == item_id
            )
        )


def _mcp_tool(spec: McpServerSpec) -> P.McpTool:
    return P.McpTool(
        server_label=spec.server_label,
        server_url=spec.server_url,
        require_approval=spec.require_approval,
        allowed_tools=None if spec.allowed_tools is None else list(spec.allowed_tools),
    )
