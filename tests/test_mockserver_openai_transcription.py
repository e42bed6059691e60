"""Acceptance: transcription sessions with the official ``openai`` client (GA and beta).

GA: ``session.update`` with ``session.type = "transcription"``; beta:
``transcription_session.update``. Spoken audio committed by server VAD gives
``…input_audio_transcription.delta`` / ``.completed`` with the spoken transcript, and
no response. Every server event is validated against the package's models
(:class:`test_mockserver_openai.Recorder`).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from mockserver_helpers import collapse, fast_config, server_in_thread, speech_turn

from orchestrator.protocol import Dialect

openai = pytest.importorskip("openai")
pytest.importorskip("websockets")

from test_mockserver_openai import KEY, Recorder, _run  # noqa: E402

SAID = "please book a table for two tonight"
COMPLETED = "conversation.item.input_audio_transcription.completed"


async def _speak(conn: Any) -> None:
    audio = speech_turn()
    for i in range(0, audio.size, 2400):
        await conn.input_audio_buffer.append(
            audio=base64.b64encode(audio[i : i + 2400].tobytes()).decode()
        )


def _check_turn(turn: list[dict[str, Any]]) -> None:
    names = collapse([e["type"] for e in turn])
    assert names[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    assert "conversation.item.input_audio_transcription.delta" in names
    assert not any(n.startswith("response.") for n in names)
    deltas = "".join(
        e["delta"] for e in turn if e["type"].endswith("input_audio_transcription.delta")
    )
    assert turn[-1]["transcript"] == SAID and deltas.strip() == SAID


async def _ga_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        rec = Recorder(conn, Dialect.GA)
        await rec.until("session.created")
        await conn.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                    }
                },
            }
        )
        updated = (await rec.until("session.updated"))[-1]["session"]
        assert updated["type"] == "transcription"
        assert updated["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
        await _speak(conn)
        _check_turn(await rec.until(COMPLETED))
        assert rec.events[-1]["usage"]["type"] == "tokens"


async def _beta_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        rec = Recorder(conn, Dialect.BETA)
        await rec.until("session.created")
        await conn.transcription_session.update(
            session={
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
            }
        )
        updated = (await rec.until("transcription_session.updated"))[-1]["session"]
        assert updated["input_audio_transcription"]["model"] == "whisper-1"
        await _speak(conn)
        _check_turn(await rec.until(COMPLETED))
        assert rec.events[-1]["usage"]["type"] == "duration"


@pytest.mark.parametrize("flow", [_ga_flow, _beta_flow], ids=["ga", "beta"])
def test_openai_client_transcription_session(flow: Any) -> None:
    config = fast_config(api_key=KEY, spoken_transcripts=(SAID,))
    with server_in_thread(config) as (server, port):
        _run(flow(port))
    assert server.stats.crashes == 0
    assert not server.stats.responses_done


def test_ga_transcription_session_refuses_realtime_fields() -> None:
    async def flow(port: int) -> None:
        client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
        async with client.realtime.connect(model="gpt-realtime") as conn:
            rec = Recorder(conn, Dialect.GA)
            await rec.until("session.created")
            await conn.send(
                {
                    "type": "session.update",
                    "session": {"type": "transcription", "instructions": "x"},
                }
            )
            err = (await rec.until("error"))[-1]["error"]
            assert err["code"] == "unknown_parameter" and err["param"] == "session.instructions"

    with server_in_thread(fast_config(api_key=KEY)) as (server, port):
        _run(flow(port))
