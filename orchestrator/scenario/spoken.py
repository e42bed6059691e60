"""A spoken line prepared for a run: its clips synthesized and its callers' variants
rendered before the clock starts, then handed out to sessions without any work.

:meth:`SpokenLine.prepare` asks the :class:`~orchestrator.audio.voices.cache.VoiceCache`
for every clip the variation can draw (each voice at each speed; a cache miss runs the
engine) and renders a bounded pool of ``variants`` callers (one when nothing varies).
Rendering one caller's 2.4 s line measured 0.1 ms (silence only), 1.5 ms (white noise),
4 ms (pink noise) and 40-60 ms (telephone band: two long resampling filters) in
``benchmarks/bench_audio.py``: above the ~1 ms a per-session step may take on the event
loop, so it is done here, once, and shared (a worker thread per session would also work,
but repeats the same work for every session and needs a limiter): caller ``i`` plays
variant ``i % variants``, deterministic for ``(seed, i)``. Memory: ``variants`` copies of
the line (32 x 3 s = 4.6 MB).

Each variant is an :class:`~orchestrator.session.sources.AudioSource` whose speech range
is exact (from the clean clip, see :mod:`orchestrator.audio.voices.variation`).
"""

from __future__ import annotations

import attrs

from orchestrator.audio.voices.cache import Line, VoiceCache
from orchestrator.audio.voices.engines import VoiceError
from orchestrator.audio.voices.variation import Variation, speech_bounds
from orchestrator.session.sources import AudioSource

__all__ = ["SpokenLine"]


@attrs.define(eq=False)
class SpokenLine:
    """``line`` as callers say it, varied by ``variation``, between ``lead_ms`` and
    ``tail_ms`` of silence; ``turn`` separates the draws of a caller's turns."""

    line: Line
    variation: Variation = attrs.field(factory=Variation)
    lead_ms: float = 200.0
    tail_ms: float = 300.0
    turn: int = 0
    variants: int = 32
    _pool: list[AudioSource] = attrs.field(init=False, factory=list)

    def prepare(self, cache: VoiceCache) -> None:
        """Synthesize (or load) every clip the callers can say and render the pool; does
        nothing when already prepared. Synchronous and possibly slow: call it before the
        clock. Raises ``VoiceError`` (engine, cache) or ``AudioFileError`` (noise file)."""
        if self._pool:
            return
        v = self.variation
        clips = {}
        for voice in v.voice_choices(self.line.voice):
            for speed in v.speeds(self.line.speed):
                line = attrs.evolve(self.line, voice=voice, speed=speed)
                clip = cache.clip(line)
                bounds = speech_bounds(clip)
                if bounds[1] == 0:
                    raise VoiceError(f"{line.engine}: {line.text!r} came out silent")
                clips[voice, speed] = (clip, bounds)
        noise_file = v.load_noise()
        count = self.variants if v.varies else 1
        for index in range(count):
            voice, speed = v.caller(index, voice=self.line.voice, speed=self.line.speed)
            clip, bounds = clips[voice, speed]
            rendered = v.render(
                clip,
                index=index,
                turn=self.turn,
                lead_ms=self.lead_ms,
                tail_ms=self.tail_ms,
                noise_file=noise_file,
                bounds=bounds,
            )
            self._pool.append(
                AudioSource(
                    rendered.samples,
                    rendered.speech_start,
                    rendered.speech_end,
                    name=f"<speak {self.line.text!r} caller {index}>",
                )
            )

    def source(self, caller: int) -> AudioSource:
        """The audio of caller ``caller`` (shared, read-only; no work done). Raises
        ``RuntimeError`` when :meth:`prepare` was not called."""
        if not self._pool:
            raise RuntimeError(f"spoken line {self.line.text!r}: prepare() it before the run")
        return self._pool[caller % len(self._pool)]
