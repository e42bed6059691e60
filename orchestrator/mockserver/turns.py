"""User turns: server-VAD speech start / stop, committed user audio, its
transcription, and the idle timeout.

Called by the connection's control task (VAD events come out of
``input_audio_buffer.append``) and its timers. A turn that ends while a response is
running is committed at once and answered when that response ends (by its run,
:func:`.runs.run_response`). Transcription runs in its own task
after the seeded transcription latency, so a slow transcript never holds up control.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

from orchestrator.protocol import new_id

from .groundtruth import Mark, TranscriptionRecord
from .port import ConnectionPort, Hook
from .runs import start_response
from .spec import make_sentence

IDLE_PROMPT = "No user speech was detected for a while. Please review the recorded audio."


async def speech_started(actor: ConnectionPort, audio_ms: int) -> None:
    actor.speech_item = new_id("item_")
    actor.idle_deadline = math.inf
    await actor.emit(
        {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": audio_ms,
            "item_id": actor.speech_item,
        }
    )
    td = actor.input.turn_detection or {}
    if td.get("interrupt_response") and actor.active is not None:
        actor.active.cancel("turn_detected")


async def speech_stopped(actor: ConnectionPort, audio_ms: int) -> None:
    item_id = actor.speech_item or new_id("item_")
    anchor = trio.current_time()
    await actor.emit(
        {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": audio_ms,
            "item_id": item_id,
        }
    )
    ms = actor.input.take()
    await commit_user_audio(actor, ms, item_id)
    td = actor.input.turn_detection or {}
    if not td.get("create_response") or actor.conv.transcription:
        return
    if actor.active is None:
        await start_response(actor, None, anchor, "speech_stopped", item_id)
    else:
        # The turn ended while a response is still running (interrupt_response false,
        # or the barge-in cancel is still closing): the turn is committed above and
        # answered as soon as that response is done, never dropped.
        actor.pending_turn = item_id


async def commit_user_audio(
    actor: ConnectionPort, ms: float, item_id: str, previous: str | None = None
) -> None:
    """Commit ``ms`` of buffered audio as the user item ``item_id`` (after ``previous``,
    else the last item) and start its transcription when the session asks for one."""
    conv = actor.conv
    actor.speech_item = None
    prev = conv.last_item_id() if previous is None else previous
    await actor.emit(
        {"type": "input_audio_buffer.committed", "previous_item_id": prev, "item_id": item_id}
    )
    item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    conv.insert(item)
    conv.audio_ms[item_id] = int(ms)
    await actor.emit({"type": "conversation.item.added", "previous_item_id": prev, "item": item})
    await actor.emit({"type": "conversation.item.done", "previous_item_id": prev, "item": item})
    transcript = spoken_transcript(actor, ms)
    actor.transcripts[item_id] = transcript
    transcription = conv.session["audio"]["input"]["transcription"]
    if transcription is not None and actor.nursery is not None:
        actor.nursery.start_soon(transcribe, actor, item_id, transcript, ms, transcription["model"])


def spoken_transcript(actor: ConnectionPort, ms: float) -> str:
    """What the user said in the turn just committed: the cached caller line heard in
    its audio, else the scripted hint of this turn, else a generated sentence."""
    scripted = actor.config.spoken_transcripts
    turn = actor.turns
    actor.turns += 1
    audio = actor.input.turn_audio()
    hearing = actor.server.hearing
    if audio is not None and hearing is not None:
        heard = hearing.hear(audio, actor.input.rate)
        if heard is not None:
            return heard
    if scripted:
        return scripted[turn % len(scripted)]
    return make_sentence(actor.rng, max(1, round(ms / 400)))


def transcription_usage(model: str, ms: float, transcript: str) -> dict[str, Any]:
    """The ``usage`` of a transcription: by duration for whisper, else by tokens."""
    if "whisper" in model:
        return {"type": "duration", "seconds": max(1, round(ms / 1000))}
    audio_tokens = max(1, round(ms / 100))
    text_tokens = max(1, len(transcript) // 4)
    return {
        "type": "tokens",
        "total_tokens": audio_tokens + text_tokens,
        "input_tokens": audio_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
        "output_tokens": text_tokens,
    }


async def transcribe(
    actor: ConnectionPort, item_id: str, transcript: str, ms: float, model: str
) -> None:
    """After the seeded transcription latency: the deltas and ``.completed`` (or the
    injected ``.failed``); the item's transcript is filled in. In a transcription
    session the turn's ground truth is written when that event leaves."""
    drawn = actor.config.latency.transcription_ms.sample(actor.rng)
    anchor = trio.current_time()
    await trio.sleep(drawn / 1000.0)
    hook = _groundtruth_hook(actor, item_id, anchor, drawn, transcript)
    if (failed := actor.faults.transcription_failure(item_id)) is not None:
        actor.stats.faults["transcription_failed"] += 1
        await actor.emit(failed, hook("failed"))
        return
    for piece in transcript.split(" "):
        if piece:
            await actor.emit(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": " " + piece,
                    "obfuscation": "x" * max(1, 12 - len(piece)),
                }
            )
    usage = transcription_usage(model, ms, transcript)
    conv = actor.conv
    idx = conv.find(item_id)
    if idx is not None:
        item = conv.items[idx]
        conv.items[idx] = {**item, "content": [{"type": "input_audio", "transcript": transcript}]}
    await actor.emit(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": usage,
        },
        hook("completed"),
    )


def _groundtruth_hook(
    actor: ConnectionPort, item_id: str, anchor: float, drawn_ms: float, text: str
) -> Callable[[str], Hook]:
    """For a transcription session: ``status`` -> the send hook writing the turn's
    :class:`~.groundtruth.TranscriptionRecord` (None outside such sessions)."""

    def for_status(status: str) -> Hook:
        if not actor.conv.transcription:
            return None
        record = TranscriptionRecord(
            connection=actor.index,
            session_id=actor.session_id,
            item_id=item_id,
            anchor_time=anchor,
            transcription_ms=drawn_ms,
            text=text,
            completed=Mark(anchor + drawn_ms / 1000.0),
            status=status,
        )

        def sent(t: float) -> None:
            assert record.completed is not None
            record.completed.actual = t
            actor.server.groundtruth.write(record)

        return sent

    return for_status


async def idle_timeout(actor: ConnectionPort) -> None:
    """Server VAD's ``idle_timeout_ms`` ran out: commit what is buffered after a system
    prompt and answer it (unless a response is running)."""
    if actor.active is not None:
        return
    item_id = new_id("item_")
    end = actor.input.audio_ms
    start = max(0, int(end - actor.input.buffered_ms))
    await actor.emit(
        {
            "type": "input_audio_buffer.timeout_triggered",
            "audio_start_ms": start,
            "audio_end_ms": end,
            "item_id": item_id,
        }
    )
    system: dict[str, Any] = {
        "id": new_id("item_"),
        "type": "message",
        "status": "completed",
        "role": "system",
        "content": [{"type": "input_text", "text": IDLE_PROMPT}],
    }
    prev = actor.conv.insert(system)
    await actor.emit({"type": "conversation.item.added", "previous_item_id": prev, "item": system})
    await actor.emit({"type": "conversation.item.done", "previous_item_id": prev, "item": system})
    anchor = trio.current_time()
    ms = actor.input.take()
    await commit_user_audio(actor, ms, item_id, previous=system["id"])
    actor.transcripts[item_id] = ""
    await start_response(actor, None, anchor, "idle_timeout", item_id)
