"""``--transcription-failure-rate P``: input transcriptions fail as a seeded fault.

A failed transcription is ``conversation.item.input_audio_transcription.failed`` (valid
for the ``openai`` models, GA and beta) instead of its deltas and ``.completed``; the
response to the turn is not affected. Draws come from their own stream, so turning the
fault on does not reshuffle the response faults.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import pytest
import trio
import trio.testing
from mockserver_helpers import (
    append_events,
    fast_config,
    mem_connection,
    next_event,
    send,
    speech_turn,
)

from orchestrator.cli.options import add_server_options, build_server_config, server_values
from orchestrator.mockserver import FaultConfig, MockServer
from orchestrator.mockserver.faults import ConnectionFaults, transcription_failed_event

pydantic = pytest.importorskip("pydantic")
openai = pytest.importorskip("openai")

from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent  # noqa: E402
from openai.types.realtime import RealtimeServerEvent as GAServerEvent  # noqa: E402

FAILED = "conversation.item.input_audio_transcription.failed"
COMPLETED = "conversation.item.input_audio_transcription.completed"
BETA_HEADERS = [("OpenAI-Beta", "realtime=v1")]


async def _turn_events(server: MockServer, beta: bool) -> list[dict[str, Any]]:
    """Events of one VAD turn with transcription on, until its transcription ended."""
    headers = BETA_HEADERS if beta else None
    async with mem_connection(server, extra_headers=headers) as ws:
        await next_event(ws)  # session.created
        if beta:
            await next_event(ws)  # conversation.created
            session: dict[str, Any] = {"input_audio_transcription": {"model": "whisper-1"}}
        else:
            session = {
                "type": "realtime",
                "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
            }
        await ws.send_message(send({"type": "session.update", "session": session}))
        assert (await next_event(ws))["type"] == "session.updated"
        for frame in append_events(speech_turn(), 100):
            await ws.send_message(frame)
        events: list[dict[str, Any]] = []
        while not {FAILED, COMPLETED} & {e["type"] for e in events} or not any(
            e["type"] == "response.done" for e in events
        ):
            events.append(await next_event(ws))
        return events


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
async def test_failure_rate_one_fails_every_transcription(
    autojump_clock: trio.testing.MockClock, beta: bool
) -> None:
    server = MockServer(fast_config(faults=FaultConfig(transcription_failure_probability=1.0)))
    events = await _turn_events(server, beta)
    types = [e["type"] for e in events]
    assert FAILED in types and COMPLETED not in types
    assert "conversation.item.input_audio_transcription.delta" not in types
    assert "response.done" in types  # the turn is still answered
    failed = next(e for e in events if e["type"] == FAILED)
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    assert failed["item_id"] == committed["item_id"] and failed["content_index"] == 0
    assert failed["error"]["code"] == "transcription_failed"
    adapter: Any = pydantic.TypeAdapter(BetaServerEvent if beta else GAServerEvent)
    assert adapter.validate_python(failed).type == FAILED
    assert server.stats.faults["transcription_failed"] == 1


async def test_failure_rate_zero_completes(autojump_clock: trio.testing.MockClock) -> None:
    server = MockServer(fast_config())
    types = [e["type"] for e in await _turn_events(server, beta=False)]
    assert COMPLETED in types and FAILED not in types
    assert server.stats.faults["transcription_failed"] == 0


def test_transcription_draws_do_not_reshuffle_response_faults() -> None:
    config = FaultConfig(stall_probability=0.5, stall_ms=100)
    plain = ConnectionFaults(config, random.Random("s"))
    with_transcription = ConnectionFaults(
        FaultConfig(stall_probability=0.5, stall_ms=100, transcription_failure_probability=0.5),
        random.Random("s"),
    )
    drawn = [with_transcription.transcription_fails() for _ in range(50)]
    assert 5 < sum(drawn) < 45
    assert [plain.for_response(20) for _ in range(20)] == [
        with_transcription.for_response(20) for _ in range(20)
    ]
    again = ConnectionFaults(with_transcription.config, random.Random("s"))
    assert [again.transcription_fails() for _ in range(50)] == drawn  # seeded


def _parsed(prefix: str, argv: list[str]) -> Any:
    parser = argparse.ArgumentParser()
    add_server_options(parser, prefix, defer=bool(prefix))
    return build_server_config(server_values(parser.parse_args(argv), prefix))


def test_option_and_validation() -> None:
    serve = _parsed("", ["--transcription-failure-rate", "0.25"])
    assert serve.faults.transcription_failure_probability == 0.25
    run = _parsed("server-", ["--server-transcription-failure-rate", "0.5"])
    assert run.faults.transcription_failure_probability == 0.5
    assert _parsed("", []).faults.transcription_failure_probability == 0.0
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(transcription_failure_probability=1.5)
    event = transcription_failed_event("item_1")
    assert pydantic.TypeAdapter(GAServerEvent).validate_python({**event, "event_id": "e"})
