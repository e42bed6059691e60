"""The session actor over real loopback websockets against the embedded server
(127.0.0.1, port 0), on the real clock: every test has a ``trio.fail_after`` guard."""

from __future__ import annotations

import trio
from session_helpers import NO_VAD, WEATHER

from orchestrator.mockserver import (
    Distribution,
    FaultConfig,
    LatencyModel,
    ServerConfig,
    ToolRule,
    serve_realtime,
)
from orchestrator.protocol import Dialect, SessionConfig
from orchestrator.session import (
    AudioSource,
    PacingSpec,
    ReconnectPolicy,
    SessionSpec,
    ToolRegistry,
    open_session,
)
from orchestrator.transport import Secret, Target

FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:2"),
    first_delta_ms=Distribution.parse("fixed:20"),
    response_words=Distribution.parse("fixed:5"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:5"),
)


def _target(port: int, key: str | None = None) -> Target:
    return Target(
        url=f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
        dialect=Dialect.GA,
        api_key=Secret(key) if key else None,
    )


async def _serve(nursery: trio.Nursery, **kwargs: object) -> int:
    config = ServerConfig(port=0, latency=FAST, **kwargs)  # type: ignore[arg-type]
    return await nursery.start(serve_realtime, config)


async def test_text_audio_and_manual_turns_over_a_socket() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, api_key="sk-test-key")
            spec = SessionSpec(
                target=_target(port, "sk-test-key"),
                pacing=PacingSpec(chunk_ms=100, realtime_factor=5.0),
            )
            async with open_session(spec) as session:
                text = await session.say_text("Hello!")
                vad = await session.say_audio(AudioSource.synthetic(600, lead_ms=100))
                await session.configure(NO_VAD)
                manual = await session.say_audio(AudioSource.synthetic(400))
            nursery.cancel_scope.cancel()
    assert [t.status for t in (text, vad, manual)] == ["completed"] * 3
    assert [t.mode for t in (text, vad, manual)] == ["text", "audio", "manual"]
    assert vad.record.vad_delay_ms is not None and vad.record.voice_to_voice_ms is not None
    assert vad.record.voice_to_voice_ms >= vad.record.vad_delay_ms
    assert text.record.ttfb_ms is not None and text.record.ttfb_ms >= 20.0
    assert manual.record.ttfb_ms is not None
    result = session.result
    assert result is not None and result.status == "completed" and result.turns == 3
    assert result.connect_ms is not None and result.pacer_lateness_max_ms is not None


async def test_401_over_a_socket() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, api_key="sk-right-key")
            spec = SessionSpec(target=_target(port, "sk-wrong-key"))
            async with open_session(spec) as session:
                pass
            nursery.cancel_scope.cancel()
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason and "HTTP 401" in result.reason and "sk-wrong" not in result.reason


async def test_drop_and_reconnect_over_a_socket() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, faults=FaultConfig(close_after_responses=1))
            spec = SessionSpec(
                target=_target(port),
                config=SessionConfig(instructions="brief"),
                reconnect=ReconnectPolicy(initial_delay=0.05, jitter=0.0),
            )
            async with open_session(spec) as session:
                first = await session.say_text("one")
                await session.wait_for(lambda ev: type(ev).type == "session.updated")
                second = await session.say_text("two")
            nursery.cancel_scope.cancel()
    assert first.status == "completed" and second.status == "completed"
    assert session.result is not None and session.result.reconnects == 1
    assert session.result.gap_ms_total >= 50.0


async def test_tool_round_and_barge_in_over_a_socket() -> None:
    async def get_weather(city: str) -> str:
        return f"sunny in {city}"

    registry = ToolRegistry()
    registry.add("get_weather", get_weather, parameters=WEATHER)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await _serve(
                nursery, tool_rules=(ToolRule("weather", "get_weather", '{"city": "Rome"}'),)
            )
            spec = SessionSpec(target=_target(port), config=SessionConfig(), tools=registry)
            async with open_session(spec) as session:
                tool_turn = await session.say_text("What's the weather in Rome?")
                story = await session.start_text_turn("Tell me a story")
                barge = await session.say_audio(
                    AudioSource.synthetic(600), barge_in_at_ms=400, during=story
                )
                await story.wait()
            nursery.cancel_scope.cancel()
    assert tool_turn.status == "completed" and "sunny in Rome" in tool_turn.transcript
    assert [c.name for c in tool_turn.tool_calls] == ["get_weather"]
    # the server streams all audio at once: the response is complete long before the
    # user barges in, so only the unplayed rest is cut (no cancel)
    assert story.status == "completed" and barge.status == "completed"
    item = session.state.items[session.state.responses[story.response_ids[0]].output_item_ids[0]]
    assert item.truncated_ms is not None and 400 <= item.truncated_ms <= item.audio_bytes / 48
    assert session.result is not None and session.result.errors == 0
