"""The audio-in task: paces user audio onto the ``out`` channel on absolute deadlines.

Frame ``n`` (1-based) carries the audio ``[(n-1)*chunk, n*chunk)`` and is due at
``t0 + n*chunk / realtime_factor`` (a microphone can send audio only once it was
spoken). ``t0`` is the planned start (a barge-in instant, or now aligned to the shared
pacer's grid). The link's sender records each frame's lateness against its deadline, so a
stalled loop shows up as lateness, never as a shifted plan.

PCM16 frames of a read-only source (e.g. the built-in conversation's audio, shared by
every session) are base64-encoded once per run (:func:`shared_b64_frames`), not once per
session and frame: ~6 µs per 100 ms frame saved on the event loop.
"""

from __future__ import annotations

import base64
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from orchestrator import protocol as P
from orchestrator.audio import (
    SAMPLE_RATE,
    Resampler,
    alaw_encode,
    pcm16_to_b64,
    samples_for_ms,
    silence,
    ulaw_encode,
)

from .messages import Out, Utterance
from .pacer import Pacer

if TYPE_CHECKING:
    from .core import SessionCore

__all__ = ["AudioIn", "input_encoder", "shared_b64_frames"]

#: per read-only source: ``(chunk, pad_last) -> base64 of every frame`` (freed with it)
_B64_FRAMES: weakref.WeakKeyDictionary[Any, dict[tuple[int, bool], tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def input_encoder(session: Any) -> Callable[[np.ndarray], str]:
    """Frame encoder for the session's input format: PCM16 24 kHz as is, G.711
    (``audio/pcmu`` / ``audio/pcma``) resampled to 8 kHz with a streaming resampler."""
    try:
        kind = session.audio.input.format.type
    except AttributeError:
        kind = None
    if kind in ("audio/pcmu", "g711_ulaw", "audio/pcma", "g711_alaw"):
        law = ulaw_encode if kind in ("audio/pcmu", "g711_ulaw") else alaw_encode
        resampler = Resampler(SAMPLE_RATE, 8000)

        def g711(frame: np.ndarray) -> str:
            return base64.b64encode(law(resampler.process(frame)).tobytes()).decode()

        return g711
    return pcm16_to_b64


def _immutable(arr: np.ndarray) -> bool:
    """True when neither ``arr`` nor any buffer under it can be written."""
    base: Any = arr
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def shared_b64_frames(source: Any, chunk: int, pad_last: bool) -> tuple[str, ...] | None:
    """``pcm16_to_b64`` of each ``chunk``-sample frame of ``source.samples`` (the last one
    zero-padded to ``chunk`` when ``pad_last``), computed once per source and cached while
    the source lives; ``None`` (encode per frame) unless the samples are an immutable
    int16 array (``samples.flags.writeable = False``, not a view of writable memory), since
    a cached encoding of mutable audio could go stale."""
    samples = getattr(source, "samples", None)
    if not (isinstance(samples, np.ndarray) and samples.dtype == np.int16):
        return None
    if not _immutable(samples):
        return None
    try:
        per_source = _B64_FRAMES.setdefault(source, {})
    except TypeError:  # not weak-referenceable or not hashable
        return None
    key = (chunk, pad_last)
    encoded = per_source.get(key)
    if encoded is None:
        encoded = per_source[key] = tuple(map(pcm16_to_b64, _frames(samples, chunk, pad_last)))
    return encoded


def _frames(samples: np.ndarray, chunk: int, pad_last: bool) -> Iterator[np.ndarray]:
    """Consecutive ``chunk``-sample frames; the last one zero-padded to ``chunk`` when
    ``pad_last`` (a microphone keeps its frame grid), else kept short."""
    for pos in range(0, len(samples), chunk):
        frame = samples[pos : pos + chunk]
        if len(frame) < chunk and pad_last:
            frame = np.concatenate([frame, np.zeros(chunk - len(frame), np.int16)])
        yield frame


class AudioIn:
    """The audio-in task of one session: reads utterances from ``utter`` and paces
    their frames onto its own clone of the ``out`` channel (closed when it ends).

    Resource handling: closes its ``utter`` receive end and its ``out`` clone when it
    returns or is cancelled. An utterance it finishes is marked done through the core;
    one it could not finish (cancelled: the session is ending) is failed by the core's
    ``release``."""

    def __init__(
        self,
        core: SessionCore,
        utter: trio.MemoryReceiveChannel[Utterance],
        out: trio.MemorySendChannel[Out],
        pacer: Pacer,
    ) -> None:
        self._core = core
        self._utter = utter
        self._out = out
        self._pacer = pacer

    async def run(self) -> None:
        with self._utter, self._out:
            async for utt in self._utter:
                await self._play(utt)
                self._core.utterance_done(utt)

    async def _play(self, utt: Utterance) -> None:
        core = self._core
        pacing = core.spec.pacing
        pacer = self._pacer
        rf = pacing.realtime_factor
        chunk = samples_for_ms(pacing.chunk_ms)
        src = utt.source
        samples = src.samples
        t0 = utt.start_at if utt.start_at is not None else pacer.align(trio.current_time())
        turn = utt.turn
        if turn is not None:
            end = None if src.speech_end is None else t0 + src.speech_end / SAMPLE_RATE / rf
            core.on_planned(turn, t0 + (src.speech_start or 0) / SAMPLE_RATE / rf, end)
        core.tail_stop = utt.stop_tail if utt.tail else None
        epoch = core.epoch
        send = self._out.send
        encode = input_encoder(core.input_format_source())
        pcm = encode is pcm16_to_b64
        cached = shared_b64_frames(src, chunk, utt.tail) if pcm else None
        pos = 0
        # with a tail, the last frame is completed with the silence the tail would send
        for index, frame in enumerate(_frames(samples, chunk, utt.tail)):
            pos += len(frame)
            deadline = t0 + pos / SAMPLE_RATE / rf
            await pacer.wait_until(deadline)
            audio = cached[index] if cached is not None else encode(frame)
            event = P.InputAudioBufferAppend(audio=audio)
            await send(Out(event, turn, planned=deadline, audio=True, epoch=epoch))
        if utt.tail:
            quiet = silence(pacing.chunk_ms)
            quiet_b64 = encode(quiet) if pcm else None  # G.711: the resampler streams on
            end_pos = pos + pacing.max_tail_ms * SAMPLE_RATE // 1000
            while pos < end_pos and not utt.stop_tail.is_set() and epoch == core.epoch:
                pos += chunk
                deadline = t0 + pos / SAMPLE_RATE / rf
                await pacer.wait_until(deadline)
                if utt.stop_tail.is_set():
                    break
                event = P.InputAudioBufferAppend(audio=quiet_b64 or encode(quiet))
                await send(Out(event, turn, planned=deadline, audio=True, epoch=epoch))
