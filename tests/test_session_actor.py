"""The session actor end to end on the fake clock: against the embedded server over
memory streams, and against a scripted fake transport for what the embedded server does
not produce (two parallel tool calls, quota failures, garbage frames)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from session_helpers import (
    NO_VAD,
    URL,
    WEATHER,
    ScriptedConnection,
    frame,
    memory_factory,
    scripted_factory,
    server_config,
)

from orchestrator import protocol as P
from orchestrator.mockserver import FaultConfig, MockServer, ToolRule
from orchestrator.protocol import Dialect, SessionConfig
from orchestrator.session import (
    AudioSource,
    ReconnectPolicy,
    RequestRejected,
    SessionEnded,
    SessionSpec,
    ToolRegistry,
    open_session,
    run_session,
)
from orchestrator.transport import ConnectFailed, Secret, Target
from orchestrator.transport.errors import ConnectStage


def sent_types(conn: Any) -> list[str]:
    return [type(ev).type for ev in conn.sent]


# ---------------------------------------------------------------------------- tools
async def test_tool_round_against_embedded_server(autojump_clock: object) -> None:
    async def get_weather(city: str) -> str:
        return f"sunny in {city}"

    registry = ToolRegistry()
    registry.add("get_weather", get_weather, parameters=WEATHER)
    config = server_config(tool_rules=(ToolRule("weather", "get_weather", '{"city": "Paris"}'),))
    spec = SessionSpec(
        connect=memory_factory(config), config=SessionConfig(instructions="x"), tools=registry
    )
    async with open_session(spec) as session:
        turn = await session.say_text("What's the weather in Paris?")
    assert turn.status == "completed"
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [
        ("get_weather", '{"city": "Paris"}')
    ]
    assert "sunny in Paris" in turn.transcript  # the follow-up answer used the output
    rec = turn.record
    assert len(rec.response_id or "") > 0 and len(turn.response_ids) == 2
    assert [t.name for t in rec.tool_calls] == ["get_weather"] and rec.tool_calls[0].ok
    assert rec.tool_roundtrip_ms == 0.0  # instant handler on the fake clock
    assert rec.status == "completed" and rec.user_transcript == "What's the weather in Paris?"
    assert round(rec.tool_to_audio_ms or 0, 6) == 300.0


def _parallel_tool_script() -> tuple[ScriptedConnection, list[str]]:
    """A fake server answering the first response.create with two parallel function
    calls and the next one with text."""
    counter = itertools.count()
    creates: list[str] = []

    def rid() -> str:
        return f"resp_{next(counter)}"

    def on_send(ev: Any) -> list[str]:
        if isinstance(ev, P.ConversationItemCreate):
            item = P.converter.unstructure(ev.item)
            item.setdefault("id", f"item_{next(counter)}")
            return [
                frame({"type": "conversation.item.added", "previous_item_id": None, "item": item})
            ]
        if not isinstance(ev, P.ResponseCreate):
            return []
        creates.append(ev.event_id or "")
        r = rid()
        out = [
            frame(
                {
                    "type": "response.created",
                    "response": {"id": r, "status": "in_progress", "output": []},
                }
            )
        ]
        if len(creates) == 1:
            for n, city in enumerate(("Paris", "Oslo")):
                fc = {
                    "id": f"fc_{n}",
                    "type": "function_call",
                    "call_id": f"call_{n}",
                    "name": "get_weather",
                    "arguments": "",
                }
                out.append(
                    frame(
                        {
                            "type": "response.output_item.added",
                            "response_id": r,
                            "output_index": n,
                            "item": fc,
                        }
                    )
                )
                out.append(
                    frame({"type": "conversation.item.added", "previous_item_id": None, "item": fc})
                )
                out.append(
                    frame(
                        {
                            "type": "response.function_call_arguments.done",
                            "response_id": r,
                            "item_id": f"fc_{n}",
                            "output_index": n,
                            "call_id": f"call_{n}",
                            "name": "get_weather",
                            "arguments": f'{{"city": "{city}"}}',
                        }
                    )
                )
            out.append(
                frame(
                    {
                        "type": "response.done",
                        "response": {"id": r, "status": "completed", "output": []},
                    }
                )
            )
        else:
            msg = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
            out.append(
                frame(
                    {
                        "type": "response.output_item.added",
                        "response_id": r,
                        "output_index": 0,
                        "item": msg,
                    }
                )
            )
            out.append(
                frame({"type": "conversation.item.added", "previous_item_id": None, "item": msg})
            )
            out.append(
                frame(
                    {
                        "type": "response.output_text.delta",
                        "response_id": r,
                        "item_id": "msg_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": "Both sunny.",
                    }
                )
            )
            out.append(
                frame(
                    {
                        "type": "response.done",
                        "response": {"id": r, "status": "completed", "output": []},
                    }
                )
            )
        return out

    conn = ScriptedConnection(
        [frame({"type": "session.created", "session": {"id": "sess_1"}})], on_send=on_send
    )
    return conn, creates


async def test_parallel_tool_calls_run_concurrently_with_one_follow_up(
    autojump_clock: object,
) -> None:
    conn, creates = _parallel_tool_script()
    started: list[str] = []
    both = trio.Event()

    async def get_weather(city: str) -> str:
        started.append(city)
        if len(started) == 2:
            both.set()
        await both.wait()  # deadlocks unless the two calls run at the same time
        await trio.sleep(0.25 if city == "Paris" else 0.1)
        return f"sunny in {city}"

    registry = ToolRegistry(deadline=5.0)
    registry.add("get_weather", get_weather, parameters=WEATHER)
    spec = SessionSpec(connect=scripted_factory(conn), tools=registry)
    with trio.fail_after(10):
        async with open_session(spec) as session:
            turn = await session.say_text("weather in Paris and Oslo?")
    assert turn.status == "completed" and turn.transcript == "Both sunny."
    assert sorted(started) == ["Oslo", "Paris"]
    types = sent_types(conn)
    assert types.count("response.create") == 2 == len(creates)  # the turn's + one follow-up
    outputs = [
        i
        for i, ev in enumerate(conn.sent)
        if isinstance(ev, P.ConversationItemCreate)
        and isinstance(ev.item, P.FunctionCallOutputItem)
    ]
    assert len(outputs) == 2
    assert types.index("response.create", outputs[0]) > max(outputs)  # follow-up after both
    rec = turn.record
    assert {t.call_id: round(t.roundtrip_ms or 0, 6) for t in rec.tool_calls} == {
        "call_0": 250.0,
        "call_1": 100.0,
    }
    assert round(rec.tool_roundtrip_ms or 0, 6) == 250.0


class _Recording:
    """Passes a connection through, keeping every client event sent (decoded)."""

    def __init__(self, conn: Any, sent: list[Any]) -> None:
        self.conn = conn
        self.sent = sent

    async def send(self, text: str) -> None:
        self.sent.append(P.decode_client_event(text, Dialect.GA))
        await self.conn.send(text)

    async def receive(self) -> str:
        return await self.conn.receive()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self.conn.aclose(code, reason)


def _recording(factory: Any, sent: list[Any]) -> Any:
    @asynccontextmanager
    async def wrapped() -> AsyncIterator[_Recording]:
        async with factory() as conn:
            yield _Recording(conn, sent)

    return wrapped


async def test_parallel_tool_calls_against_embedded_server(autojump_clock: object) -> None:
    """A tool call round with two parallel calls (exactly one follow-up response.create)."""
    spans: dict[str, tuple[float, float]] = {}

    async def get_weather(city: str) -> str:
        start = trio.current_time()
        await trio.sleep(0.25 if city == "Paris" else 0.2)
        spans[city] = (start, trio.current_time())
        return f"sunny in {city}"

    registry = ToolRegistry(deadline=5.0)
    registry.add("get_weather", get_weather, parameters=WEATHER)
    rules = (
        ToolRule("paris", "get_weather", '{"city": "Paris"}'),
        ToolRule("oslo", "get_weather", '{"city": "Oslo"}'),
    )
    config = server_config(tool_rules=rules)
    server = MockServer(config)
    sent: list[Any] = []
    spec = SessionSpec(
        connect=_recording(memory_factory(config, server=server), sent),
        config=SessionConfig(instructions="x"),
        tools=registry,
    )
    async with open_session(spec) as session:
        turn = await session.say_text("Weather in Paris and Oslo?")
    assert turn.status == "completed"
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_weather", '{"city": "Oslo"}'),
    ]
    assert len({c.call_id for c in turn.tool_calls}) == 2
    # both handlers ran at the same time: each started before the other one ended
    assert set(spans) == {"Paris", "Oslo"}
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values())
    # both outputs went out before exactly one follow-up response.create
    types = [type(ev).type for ev in sent]
    creates = [i for i, t in enumerate(types) if t == "response.create"]
    outputs = [
        i
        for i, ev in enumerate(sent)
        if isinstance(ev, P.ConversationItemCreate)
        and isinstance(ev.item, P.FunctionCallOutputItem)
    ]
    assert len(creates) == 2 and len(outputs) == 2  # the turn's request + one follow-up
    assert creates[0] < min(outputs) and max(outputs) < creates[1]
    assert sorted(sent[i].item.output for i in outputs) == ["sunny in Oslo", "sunny in Paris"]
    assert {sent[i].item.call_id for i in outputs} == {c.call_id for c in turn.tool_calls}
    # the follow-up answer is audio built from both outputs
    assert "sunny in Paris" in turn.transcript and "sunny in Oslo" in turn.transcript
    rec = turn.record
    assert len(turn.response_ids) == 2 and rec.audio_out_ms
    assert [t.ok for t in rec.tool_calls] == [True, True]
    assert round(rec.tool_roundtrip_ms or 0, 6) == 250.0  # the slower handler
    assert round(rec.tool_to_audio_ms or 0, 6) == 300.0  # FIXED: first audio 300 ms later
    assert server.stats.responses_started == 2
    assert session.result is not None and session.result.errors == 0


async def test_tool_failure_is_sent_as_error_payload(autojump_clock: object) -> None:
    conn, _ = _parallel_tool_script()

    async def get_weather(city: str) -> str:  # sync handlers: see test_session_pure
        raise LookupError(f"no data for {city}")

    registry = ToolRegistry()
    registry.add("get_weather", get_weather, parameters=WEATHER)
    spec = SessionSpec(connect=scripted_factory(conn), tools=registry)
    with trio.fail_after(10):
        async with open_session(spec) as session:
            turn = await session.say_text("weather?")
    assert turn.status == "completed"
    payloads = [
        ev.item.output
        for ev in conn.sent
        if isinstance(ev, P.ConversationItemCreate)
        and isinstance(ev.item, P.FunctionCallOutputItem)
    ]
    assert sorted(payloads) == [
        '{"error":"LookupError: no data for Oslo"}',
        '{"error":"LookupError: no data for Paris"}',
    ]
    assert [t.ok for t in turn.record.tool_calls] == [False, False]
    assert turn.record.failed  # a broken tool is recorded as an error of the turn
    assert session.result is not None and session.result.status == "completed"


# ---------------------------------------------------------------------------- barge-in
@asynccontextmanager
async def collect(session: Any, cls: type) -> AsyncIterator[list[Any]]:
    """Collect the server events of class ``cls`` seen while the block runs."""
    got: list[Any] = []
    async with session.events(capacity=4096) as sub, trio.open_nursery() as nursery:

        async def run() -> None:
            async for ev in sub:
                if isinstance(ev, cls):
                    got.append(ev)

        nursery.start_soon(run)
        yield got
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def test_barge_in_with_server_vad_truncates_at_played_position(
    autojump_clock: object,
) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))
    async with open_session(spec) as session:
        async with collect(session, P.ConversationItemTruncated) as truncated:
            first = await session.start_text_turn("Tell me a long story")
            second = await session.say_audio(
                AudioSource.synthetic(800), barge_in_at_ms=1000, during=first
            )
            await first.wait()
    assert first.status == "interrupted" and first.record.response_status == "cancelled"
    assert first.reason == "turn_detected"
    assert first.record.status == "interrupted" and first.record.reason == "turn_detected"
    assert not first.record.failed  # a barge-in is not a failure
    assert second.status == "completed"
    item_id = session.state.responses[first.response_ids[0]].output_item_ids[0]
    st = session.state.items[item_id]
    # speech starts at the planned offset; the server's VAD confirms it with the first
    # 100 ms frame, so the client had played 1000 + 100 ms when it learned of it
    assert [ev.audio_end_ms for ev in truncated] == [1100]
    assert st.truncated_ms == 1100 and st.truncated_ms <= st.audio_bytes / 48
    assert st.text == ""  # the server dropped the unheard transcript
    # the server cancelled the response when it detected the speech, 100 ms in
    assert round(second.record.barge_in_stop_ms or 0, 6) == 100.0
    assert session.result is not None and session.result.errors == 0  # nothing rejected


async def test_barge_in_without_vad_cancels_and_truncates_itself(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()), config=NO_VAD)
    async with open_session(spec) as session:
        async with collect(session, P.ConversationItemTruncated) as truncated:
            first = await session.start_text_turn("Tell me a long story")
            second = await session.start_audio_turn(
                AudioSource.synthetic(500), barge_in_at_ms=700, during=first
            )
            await first.wait()
            await second.wait()
    assert first.status == "interrupted" and first.reason == "client_cancelled"
    assert [t.audio_end_ms for t in truncated] == [700]
    assert second.mode == "manual" and second.status == "completed"
    assert round(second.record.barge_in_stop_ms or 0, 6) == 0.0  # cancelled at once
    assert session.result is not None and session.result.errors == 0


async def test_barge_in_after_the_audio_ended_sends_no_truncate(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))
    async with open_session(spec) as session:
        first = await session.say_text("short answer please")
        total_ms = first.record.audio_out_ms or 0
        second = await session.say_audio(
            AudioSource.synthetic(500), barge_in_at_ms=total_ms + 5000, during=first
        )
    assert second.status == "completed"
    assert all(st.truncated_ms is None for st in session.state.items.values())
    assert session.result is not None and session.result.errors == 0


# ---------------------------------------------------------------------------- reconnect
async def test_server_drop_reconnects_replays_and_next_turn_completes(
    autojump_clock: object,
) -> None:
    cfg = server_config(faults=FaultConfig(close_after_responses=1))
    server = MockServer(cfg)
    spec = SessionSpec(
        connect=memory_factory(cfg, server=server),
        config=SessionConfig(instructions="be brief"),
        reconnect=ReconnectPolicy(max_attempts=2, initial_delay=0.2, jitter=0.0),
    )
    async with open_session(spec) as session:
        first = await session.say_text("one")
        # the server closes after that response; the next request meets a dead link
        await session.wait_for(lambda ev: isinstance(ev, P.SessionCreated))
        replayed = [session.state.items[i] for i in session.state.order]
        second = await session.say_text("two")
    assert first.status == "completed"
    assert [st.role for st in replayed] == ["user", "assistant"]  # conversation restored
    assert second.status == "completed" and second.transcript
    result = session.result
    assert result is not None and result.status == "completed"
    assert result.reconnects == 1
    assert round(result.gap_ms_total, 6) == 200.0  # one backoff step, nothing else
    assert [t.status for t in session.turns] == ["completed", "completed"]
    # "two" was opened once the new link was up: no turn was open during the gap
    assert [t.record.gap_ms for t in session.turns] == [0.0, 0.0]


async def test_turn_in_flight_fails_on_drop_and_session_recovers(autojump_clock: object) -> None:
    cfg = server_config(faults=FaultConfig(close_after_responses=1))
    spec = SessionSpec(
        connect=memory_factory(cfg),
        reconnect=ReconnectPolicy(max_attempts=3, initial_delay=0.1, jitter=0.0),
    )
    async with open_session(spec) as session:
        await session.say_text("one")
        lost = await session.say_text("two")  # sent into the closing socket
        third = await session.say_text("three")
    if lost.status == "failed":
        assert lost.reason and lost.reason.startswith("connection lost")
        assert lost.record.errors[0].code == "connection_lost"
        assert lost.record.status == "failed" and lost.record.reason == lost.reason
    assert third.status == "completed"
    assert session.result is not None and session.result.reconnects >= 1


async def test_reconnects_exhausted_fail_the_session(autojump_clock: object) -> None:
    attempts = 0

    def factory() -> Any:
        nonlocal attempts
        attempts += 1
        conn = ScriptedConnection([], close_code=1011)
        return scripted_factory(conn)()

    spec = SessionSpec(
        connect=factory,
        reconnect=ReconnectPolicy(max_attempts=2, jitter=0.0),
        wait_session_created=False,
    )
    async with open_session(spec) as session:
        turn = await session.say_text("hello")  # a turn ends as data, even a failed one
        assert turn.status == "failed"
        with pytest.raises(SessionEnded):
            await session.wait_for(lambda ev: False)
        with pytest.raises(SessionEnded):
            await session.say_text("again")
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason and "gave up after 2 failed reconnect attempt(s)" in result.reason
    assert attempts == 3
    # every connection opened (three handshakes, no failed connect; two reconnects made),
    # but none completed a response: each reconnect attempt failed to recover
    assert (result.connect_attempts, result.connect_failed, result.reconnects) == (3, 0, 2)


async def test_connects_failed_before_the_handshake_are_counted_apart(
    autojump_clock: object,
) -> None:
    """TCP/TLS failures (``ConnectFailed.stage``) are ``connect_failed``; a failure in the
    upgrade, or of unknown stage, was a handshake tried."""
    stages: list[ConnectStage | None] = ["tcp", "tls", "upgrade", None]

    def factory() -> Any:
        stage = stages.pop(0)

        @asynccontextmanager
        async def refuse() -> AsyncIterator[Any]:
            raise ConnectFailed(f"cannot connect ({stage})", recoverable=True, stage=stage)
            yield  # pragma: no cover  # makes this a generator

        return refuse()

    spec = SessionSpec(
        connect=factory,
        reconnect=ReconnectPolicy(max_attempts=3, jitter=0.0),
        wait_session_created=False,
    )
    async with open_session(spec) as session:
        with pytest.raises(SessionEnded):
            await session.say_text("hello")
    result = session.result
    assert result is not None and result.status == "failed" and not stages
    assert (result.connect_attempts, result.connect_failed, result.reconnects) == (4, 2, 0)
    assert result.reason and result.reason.startswith(
        "ConnectFailed: gave up after 3 failed reconnect attempt(s); last: ConnectFailed: "
    )


# ---------------------------------------------------------------------------- failures
async def test_401_fails_the_session_with_a_clear_reason(autojump_clock: object) -> None:
    target = Target(url=URL, dialect=Dialect.GA, api_key=Secret("sk-wrong-0123456789"))
    spec = SessionSpec(connect=memory_factory(server_config(api_key="sk-right"), target=target))
    async with open_session(spec) as session:
        with pytest.raises(SessionEnded):
            await session.say_text("hello")
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason is not None
    assert result.reason.startswith("HandshakeRejected: ") and "401" in result.reason
    assert "invalid_api_key" in result.reason
    assert "sk-wrong" not in result.reason
    assert result.turns == 0 and result.reconnects == 0


async def test_run_session_task_status_form(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()), session_id="sup-1", label="demo")
    async with trio.open_nursery() as nursery:
        session = await nursery.start(run_session, spec)
        assert session.state.session is not None  # started once ready
        await session.say_text("hi")
        await session.close()
    result = session.result
    assert result.status == "completed" and result.session_id == "sup-1" and result.label == "demo"
    assert result.turns == 1 and result.events_received > 10


async def test_cancellation_is_not_an_error(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))
    with trio.move_on_after(0.4):
        async with open_session(spec) as session:
            await session.say_text("a long answer")
    assert session.result is not None and session.result.status == "cancelled"
    assert session.result.reason is None
    assert [t.status for t in session.turns] == ["cancelled"]


async def test_max_duration_ends_the_session_as_data(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()), max_duration=0.5)
    async with open_session(spec) as session:
        turn = await session.say_text("a long answer")
        with pytest.raises(SessionEnded):
            await session.say_text("more")
    assert turn.status == "failed" and turn.reason and "MaxDurationExceeded" in turn.reason
    assert session.result is not None and session.result.status == "failed"
    assert session.result.reason and session.result.reason.startswith("MaxDurationExceeded")
    assert session.turns[0].status == "failed"


def _script(*events: dict[str, Any], reply: Any = None) -> ScriptedConnection:
    return ScriptedConnection([frame(e) for e in events], on_send=reply)


async def test_server_errors_are_recorded_not_fatal(autojump_clock: object) -> None:
    def reply(ev: Any) -> list[str]:
        if isinstance(ev, P.ResponseCreate):
            return [
                frame(
                    {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "conversation_already_has_active_response",
                            "message": "busy",
                            "event_id": ev.event_id,
                        },
                    }
                )
            ]
        if isinstance(ev, P.ConversationItemDelete):
            return [
                frame(
                    {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "item_delete_invalid_item_id",
                            "message": "no such item",
                            "event_id": ev.event_id,
                        },
                    }
                )
            ]
        return []

    conn = _script({"type": "session.created", "session": {"id": "s"}}, reply=reply)
    async with open_session(SessionSpec(connect=scripted_factory(conn))) as session:
        with pytest.raises(RequestRejected, match="conversation_already_has_active_response"):
            await session.create_response()
        with pytest.raises(RequestRejected) as info:
            await session.delete_item("nope")
        assert info.value.code == "item_delete_invalid_item_id"
        assert await session.cancel_response() is False  # nothing active: nothing sent
    assert "response.cancel" not in sent_types(conn)
    result = session.result
    assert result is not None and result.status == "completed" and result.errors == 2


async def test_quota_failure_is_fatal(autojump_clock: object) -> None:
    def reply(ev: Any) -> list[str]:
        if isinstance(ev, P.ResponseCreate):
            status = {
                "type": "failed",
                "error": {
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                    "message": "You exceeded your current quota",
                },
            }
            return [
                frame(
                    {"type": "response.created", "response": {"id": "r1", "status": "in_progress"}}
                ),
                frame(
                    {
                        "type": "response.done",
                        "response": {"id": "r1", "status": "failed", "status_details": status},
                    }
                ),
            ]
        return []

    conn = _script({"type": "session.created", "session": {"id": "s"}}, reply=reply)
    async with open_session(SessionSpec(connect=scripted_factory(conn))) as session:
        turn = await session.start_text_turn("hi")
        with pytest.raises(SessionEnded):
            await session.wait_for(lambda ev: False)
    assert turn.status == "failed" and turn.record.errors[0].code == "insufficient_quota"
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason and "insufficient_quota" in result.reason


async def test_auth_error_event_then_close_3000_is_final(autojump_clock: object) -> None:
    err = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "message": "Incorrect API key provided",
        },
    }
    conn = ScriptedConnection([frame(err)], close_code=3000)
    spec = SessionSpec(connect=scripted_factory(conn), wait_session_created=False)
    async with open_session(spec) as session:
        pass
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason and "invalid_api_key" in result.reason


async def test_protocol_errors_past_the_limit_fail(autojump_clock: object) -> None:
    frames = [frame({"type": "session.created", "session": {"id": "s"}})] + ["{not json"] * 4
    conn = ScriptedConnection(frames)
    spec = SessionSpec(connect=scripted_factory(conn), max_protocol_errors=3)
    async with open_session(spec) as session:
        await conn.drained.wait()
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason and "4 undecodable server events (limit 3)" in result.reason
    assert session.protocol_errors == 4 == result.protocol_errors


# ---------------------------------------------------------------------------- driver API
async def test_item_operations_and_history(autojump_clock: object) -> None:
    spec = SessionSpec(
        connect=memory_factory(server_config()), config=SessionConfig(output_modalities=["text"])
    )
    async with open_session(spec) as session:
        ids = await session.seed_history([("user", "My name is Ada."), ("assistant", "Hi Ada!")])
        assert session.state.order == ids
        item = await session.retrieve_item(ids[0])
        assert item.content[0].text == "My name is Ada."
        extra = await session.send_text("scratch")
        await session.delete_item(extra)
        assert extra not in session.state.items
        with pytest.raises(RequestRejected) as info:
            await session.truncate(ids[0], 100)  # a user text item cannot be truncated
        assert info.value.code == "unsupported_content_type"
        turn = await session.say_text("What is my name?")
        assert turn.status == "completed" and turn.transcript
        assert turn.record.ttfb_ms is not None  # text mode: first text delta
        async with session.events(capacity=8) as sub:
            rid = await session.create_response()
            got = []
            async for ev in sub:
                got.append(ev)
                if isinstance(ev, P.ResponseDone):
                    break
        assert rid == got[-1].response.id
    assert session.result is not None and session.result.errors == 1


# ---------------------------------------------------------------------------- rollover
async def test_rollover_at_a_turn_boundary_replays_the_conversation(
    autojump_clock: object,
) -> None:
    opened: list[Any] = []
    spec = SessionSpec(
        connect=memory_factory(server_config(), opened=opened),
        config=SessionConfig(instructions="brief"),
        rollover_after=5.0,
    )
    async with open_session(spec) as session:
        first = await session.say_text("one")
        await trio.sleep(6.0)  # the connection is now older than rollover_after
        second = await session.say_text("two")
    assert len(opened) == 2
    assert first.status == "completed" and second.status == "completed"
    result = session.result
    assert result is not None and result.reconnects == 1 and session.rollovers == 1
    assert result.rollovers == 1
    assert result.gap_ms_total == 0.0  # a planned move: nothing waited
    roles = [session.state.items[i].role for i in session.state.order]
    assert roles == ["user", "assistant", "user", "assistant"]  # replayed, then the new turn


async def test_session_expiry_close_1001_reconnects(autojump_clock: object) -> None:
    cfg = server_config(faults=FaultConfig(session_max_s=3.0))
    spec = SessionSpec(
        connect=memory_factory(cfg),
        reconnect=ReconnectPolicy(initial_delay=0.1, jitter=0.0),
        expiry_margin=0.0,  # expires_at is wall-clock time; the fake clock does not move it
    )
    async with open_session(spec) as session:
        await session.say_text("one")
        expired = await session.wait_for(lambda ev: isinstance(ev, P.ErrorEvent))
        await session.wait_for(lambda ev: isinstance(ev, P.SessionCreated))
        later = await session.say_text("two")
    assert expired.error.code == "session_expired"
    assert later.status == "completed"
    result = session.result
    assert result is not None and result.status == "completed" and result.reconnects == 1
    assert session.rollovers == 0


async def test_expires_at_soon_rolls_over_before_the_next_turn(autojump_clock: object) -> None:
    cfg = server_config(faults=FaultConfig(session_max_s=30.0))
    spec = SessionSpec(connect=memory_factory(cfg), expiry_margin=60.0)
    async with open_session(spec) as session:
        await session.say_text("one")  # expires_at is 30 s away: within the margin
        second = await session.say_text("two")
    assert second.status == "completed" and session.rollovers >= 1


# ---------------------------------------------------------------------------- slow readers
async def test_a_slow_subscriber_never_stalls_the_receiver(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))
    async with open_session(spec) as session:
        async with session.events(capacity=4) as sub:  # never read
            turn = await session.say_text("a long answer")
            assert turn.status == "completed"
            assert sub.dropped_audio > 0
            buffered = []
            while len(buffered) < 4:
                buffered.append(await sub.receive())
    result = session.result
    assert result is not None and result.notifications_dropped == sub.dropped_total
    assert result.notifications_dropped > 20


async def test_driver_exception_aborts_the_session(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))
    with pytest.raises(ExceptionGroup) as info:
        async with open_session(spec) as session:
            await session.start_text_turn("hi")
            raise KeyError("driver bug")
    assert info.group_contains(KeyError)
    # aborted because the driver raised: the actor says "failed", with the driver's error
    assert session.result is not None and session.result.status == "failed"
    assert session.result.reason == "KeyError: 'driver bug'"
    assert session.turns[0].status == "failed"
    assert session.turns[0].reason == "KeyError: 'driver bug'"


async def test_driver_exception_group_fails_with_its_first_error(autojump_clock: object) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))

    async def crash(exc: Exception) -> None:
        await trio.sleep(0.1)
        raise exc

    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError), flatten_subgroups=False) as info:
        async with open_session(spec) as session, trio.open_nursery() as nursery:
            nursery.start_soon(crash, ValueError("bad script"))
            await trio.sleep_forever()
    assert info.value is not None
    assert session.result is not None and session.result.status == "failed"
    assert session.result.reason == "ValueError: bad script"


async def test_driver_exception_after_a_session_failure_keeps_the_first_reason(
    autojump_clock: object,
) -> None:
    target = Target(url=URL, dialect=Dialect.GA, api_key=Secret("sk-wrong-0123456789"))
    spec = SessionSpec(connect=memory_factory(server_config(api_key="sk-right"), target=target))
    with pytest.RaisesGroup(RuntimeError):
        async with open_session(spec) as session:
            raise RuntimeError("driver noticed")
    assert session.result is not None and session.result.status == "failed"
    assert session.result.reason is not None
    assert session.result.reason.startswith("HandshakeRejected: ")


async def test_abort_without_an_error_is_cancelled(
    autojump_clock: object,
) -> None:
    spec = SessionSpec(connect=memory_factory(server_config()))
    async with trio.open_nursery() as nursery:
        session = await nursery.start(run_session, spec)
        session.abort()
    assert session.result is not None and session.result.status == "cancelled"
    # aborted with an error and cancelled from outside at once (as open_session does)
    async with trio.open_nursery() as nursery:
        session2 = await nursery.start(run_session, spec)
        session2.abort(KeyError("gone"))
        nursery.cancel_scope.cancel()
    assert session2.result is not None and session2.result.status == "failed"
    assert session2.result.reason == "KeyError: 'gone'"


async def test_expires_at_is_judged_on_the_trio_clock(autojump_clock: object) -> None:
    """``expires_at`` is converted to the trio clock when it arrives: fake time passing
    brings the expiry closer (no wall clock involved), and the next turn rolls over."""
    cfg = server_config(faults=FaultConfig(session_max_s=600.0))
    spec = SessionSpec(connect=memory_factory(cfg), expiry_margin=60.0)
    async with open_session(spec) as session:
        first = await session.say_text("one")
        assert session.rollovers == 0  # 600 s away: outside the 60 s margin
        await trio.sleep(545.0)  # fake time only: about 55 s left now
        second = await session.say_text("two")
    assert first.status == second.status == "completed"
    assert session.rollovers == 1


async def test_a_negative_output_rate_never_gives_negative_audio(autojump_clock: object) -> None:
    session_event = {
        "type": "session.updated",
        "session": {
            "type": "realtime",
            "id": "s",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": -24000}}},
        },
    }
    delta = {
        "type": "response.output_audio.delta",
        "response_id": "r1",
        "item_id": "i1",
        "output_index": 0,
        "content_index": 0,
        "delta": "AAAAAAAAAAAAAAAA",
    }
    done = {"type": "response.done", "response": {"id": "r1", "status": "completed"}}
    created = {"type": "response.created", "response": {"id": "r1", "status": "in_progress"}}

    def reply(ev: Any) -> list[str]:
        if isinstance(ev, P.ResponseCreate):
            return [frame(created), frame(delta), frame(done)]
        return []

    conn = _script({"type": "session.created", "session": {"id": "s"}}, session_event, reply=reply)
    async with open_session(SessionSpec(connect=scripted_factory(conn))) as session:
        await conn.drained.wait()
        turn = await session.say_text("hi")
    assert turn.status == "completed"
    assert turn.record.audio_out_ms is not None and turn.record.audio_out_ms > 0
