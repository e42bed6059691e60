"""Transcription sessions on the embedded server (MockClock): every committed turn
writes its ground truth (drawn transcription latency, when the event left, the text),
and ``response.create`` is refused with an error naming the session type."""

from __future__ import annotations

from typing import Any

import orjson
import trio
import trio.testing
from mockserver_helpers import (
    FAST,
    append_events,
    mem_connection,
    next_event,
    recv_until,
    send,
    speech_turn,
)

from orchestrator import protocol as P
from orchestrator.mockserver import FaultConfig, MockServer, ServerConfig
from orchestrator.mockserver.groundtruth import send_lateness
from orchestrator.mockserver.runs import TRANSCRIPTION_REFUSAL
from orchestrator.session.state import ConversationState
from orchestrator.session.transcribe import session_update

COMPLETED = "conversation.item.input_audio_transcription.completed"
SESSION = {
    "type": "transcription",
    "audio": {
        "input": {
            "transcription": {"model": "gpt-4o-transcribe"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
        }
    },
}


async def _turn(server: MockServer, last: str) -> tuple[list[dict[str, Any]], float]:
    async with mem_connection(server) as ws:
        await next_event(ws)  # session.created
        await ws.send_message(send({"type": "session.update", "session": SESSION}))
        await recv_until(ws, "session.updated")
        for frame in append_events(speech_turn()):
            await ws.send_message(frame)
        await recv_until(ws, "input_audio_buffer.committed")
        committed = trio.current_time()
        events = await recv_until(ws, last)
        await ws.send_message(send({"type": "response.create", "event_id": "ev_1"}))
        events += await recv_until(ws, "error")
        return events, committed


async def test_transcription_turn_writes_ground_truth(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = MockServer(ServerConfig(port=0, latency=FAST, spoken_transcripts=("book a table",)))
    events, committed = await _turn(server, COMPLETED)
    (record,) = server.groundtruth.records
    assert record["kind"] == "transcription" and record["status"] == "completed"
    assert record["text"] == "book a table" == events[-2]["transcript"]
    assert record["transcription_ms"] == 10.0  # FAST: fixed:10
    assert record["anchor_time"] == committed
    assert record["completed"]["intended"] == committed + 0.010
    assert record["completed"]["actual"] == record["completed"]["intended"]
    assert record["send_late_ms"] == 0.0
    assert send_lateness(server.groundtruth.records)["responses"] == 0
    # no responses in a transcription session
    error = events[-1]["error"]
    assert (error["type"], error["message"], error["event_id"]) == (
        "invalid_request_error",
        TRANSCRIPTION_REFUSAL,
        "ev_1",
    )
    assert server.stats.responses_started == 0


async def test_failed_transcription_is_in_the_ground_truth(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = FaultConfig(transcription_failure_probability=1.0)
    server = MockServer(ServerConfig(port=0, latency=FAST, faults=faults))
    await _turn(server, "conversation.item.input_audio_transcription.failed")
    (record,) = server.groundtruth.records
    assert record["status"] == "failed" and record["completed"]["actual"] is not None


async def test_beta_client_configures_a_transcription_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The client's beta form (``transcription_session.update``) is what the server
    answers with ``transcription_session.updated``, and that answer marks the client
    state's session as a transcription session."""
    config = P.SessionConfig(
        type="transcription",
        audio=P.AudioConfig(input=P.AudioInput(transcription=P.Transcription(model="whisper-1"))),
    )
    event, answers = session_update(config, P.Dialect.BETA)
    ga_event, ga_answers = session_update(config, P.Dialect.GA)
    assert type(ga_event) is P.SessionUpdate and ga_answers(P.SessionUpdated(session=config))
    server = MockServer(ServerConfig(port=0, latency=FAST))
    headers = [("OpenAI-Beta", "realtime=v1")]
    async with mem_connection(server, extra_headers=headers) as ws:
        await recv_until(ws, "conversation.created")
        await ws.send_message(P.encode_client_event(event, P.Dialect.BETA))
        (updated,) = [
            e for e in await recv_until(ws, "transcription_session.updated") if "session" in e
        ]
    decoded = P.decode_server_event(orjson.dumps(updated).decode(), P.Dialect.BETA)
    assert answers(decoded) and not answers(P.SessionUpdated(session=config))
    state = ConversationState()
    state.apply(decoded)
    assert state.session.type == "transcription"
    assert state.session.audio.input.transcription.model == "whisper-1"
