"""Pure parts of the session layer, no sockets: playback model, conversation state,
turn timer, reconnect policy, tool registry, audio sources, subscriptions."""

from __future__ import annotations

import random
import threading

import numpy as np
import orjson
import pytest
import trio

from orchestrator import protocol as P
from orchestrator.audio import SAMPLE_RATE, pcm16_to_b64, silence, speech_like
from orchestrator.metrics.records import to_json_line
from orchestrator.session import (
    AudioSource,
    ConversationState,
    PlaybackClock,
    ReconnectPolicy,
    Subscription,
    ToolRegistry,
    TurnTimer,
    find_speech,
)
from orchestrator.session.state import b64_decoded_len


def audio_b64(ms: int) -> str:
    return pcm16_to_b64(np.zeros(ms * SAMPLE_RATE // 1000, np.int16))


# ---------------------------------------------------------------------------- playback
def test_playback_plays_at_real_time_and_caps_at_received() -> None:
    pb = PlaybackClock()
    pb.on_audio("a", 500.0, 10.0)  # 500 ms arrives at t=10 s
    pb.on_audio("a", 500.0, 10.1)  # contiguous: merged
    assert len(pb.segments) == 1
    assert pb.played_ms("a", 10.25) == pytest.approx(250.0)
    assert pb.played_ms("a", 20.0) == pytest.approx(1000.0)  # never beyond received
    assert pb.playing(10.9) and not pb.playing(11.0)
    assert pb.time_at("a", 600.0) == pytest.approx(10.6)
    assert pb.time_at("a", 1500.0) is None


def test_playback_underrun_and_stop() -> None:
    pb = PlaybackClock(start_delay=0.05)
    pb.on_audio("a", 100.0, 0.0)  # plays 0.05..0.15
    pb.on_audio("a", 100.0, 0.5)  # underrun: plays 0.55..0.65
    assert len(pb.segments) == 2
    assert pb.played_ms("a", 0.3) == pytest.approx(100.0)
    assert pb.played_ms("a", 0.6) == pytest.approx(150.0)
    pb.stop(0.6)
    assert pb.played_ms("a", 5.0) == pytest.approx(150.0)
    pb.on_audio("a", 100.0, 0.7)  # arrives after the stop: counted, never played
    assert pb.received_ms("a") == pytest.approx(300.0)
    assert not pb.playing(0.7)


def test_playback_items_play_in_sequence() -> None:
    pb = PlaybackClock()
    pb.on_audio("a", 300.0, 0.0)
    pb.on_audio("b", 300.0, 0.1)  # queued after a
    assert pb.current_item(0.2) == "a"
    assert pb.current_item(0.35) == "b"
    assert pb.played_ms("b", 0.4) == pytest.approx(100.0)


# ---------------------------------------------------------------------------- state
def _resp(rid: str, status: str = "in_progress", output: list | None = None, usage=None):
    return P.Response(id=rid, status=status, output=output or [], usage=usage)


def _assistant_item(item_id: str, status: str = "in_progress") -> P.MessageItem:
    return P.MessageItem(id=item_id, role="assistant", status=status, content=[])


def feed(state: ConversationState, *events: object) -> None:
    for ev in events:
        state.apply(ev)


def test_state_orders_items_by_previous_item_id() -> None:
    st = ConversationState()
    user = P.MessageItem(
        id="u1", role="user", content=[P.ContentPart(type="input_text", text="hi")]
    )
    feed(
        st,
        P.ConversationItemAdded(previous_item_id=None, item=user),
        P.ConversationItemAdded(previous_item_id="u1", item=_assistant_item("a1")),
        # inserted between u1 and a1
        P.ConversationItemAdded(
            previous_item_id="u1",
            item=P.MessageItem(
                id="s1", role="system", content=[P.ContentPart(type="input_text", text="x")]
            ),
        ),
        # a spurious null previous id on .done must not move the item
        P.ConversationItemDone(previous_item_id=None, item=_assistant_item("a1", "completed")),
    )
    assert st.order == ["u1", "s1", "a1"]
    feed(st, P.ConversationItemDeleted(item_id="s1"), P.ConversationItemDeleted(item_id="zz"))
    assert st.order == ["u1", "a1"]


def _audio_response(
    st: ConversationState, rid: str, item: str, ms: int, *, done: bool, prev: str | None = None
) -> None:
    feed(
        st,
        P.ResponseCreated(response=_resp(rid)),
        P.ResponseOutputItemAdded(response_id=rid, output_index=0, item=_assistant_item(item)),
        P.ConversationItemAdded(previous_item_id=prev, item=_assistant_item(item)),
        P.ResponseOutputAudioTranscriptDelta(
            response_id=rid, item_id=item, output_index=0, content_index=0, delta="Hello"
        ),
        P.ResponseOutputAudioDelta(
            response_id=rid, item_id=item, output_index=0, content_index=0, delta=audio_b64(ms)
        ),
    )
    if done:
        feed(st, P.ResponseDone(response=_resp(rid, "completed")))


def test_state_tracks_responses_audio_and_truncate_rules() -> None:
    st = ConversationState()
    _audio_response(st, "r1", "a1", 2000, done=False)
    assert st.active_response_id == "r1"
    assert st.audio_item_id == "a1" and st.item_ms("a1") == pytest.approx(2000.0)
    assert st.items["a1"].text == "Hello"
    # played less than received: cut at the played position
    assert st.truncate_point("a1", 1234.7) == 1234
    # played more than received while still streaming: capped at what was received
    assert st.truncate_point("a1", 5000.0) == 2000
    # nothing played: never audio_end_ms=0
    assert st.truncate_point("a1", 0.0) is None
    assert st.truncate_point("unknown", 100.0) is None
    feed(st, P.ResponseDone(response=_resp("r1", "completed")))
    assert st.active_response_id is None
    # fully heard and finished: nothing to cut
    assert st.truncate_point("a1", 2000.0) is None
    feed(st, P.ConversationItemTruncated(item_id="a1", content_index=0, audio_end_ms=900))
    assert st.items["a1"].truncated_ms == 900 and st.items["a1"].text == ""
    assert st.truncate_point("a1", 1000.0) is None  # already cut earlier


def test_state_user_items_cannot_be_truncated() -> None:
    st = ConversationState()
    user = P.MessageItem(id="u1", role="user", content=[P.ContentPart(type="input_audio")])
    feed(st, P.ConversationItemAdded(previous_item_id=None, item=user))
    assert st.truncate_point("u1", 500.0) is None


def test_state_tool_calls_in_flight_and_replay() -> None:
    st = ConversationState()
    user = P.MessageItem(id="u1", role="user", content=[P.ContentPart(type="input_audio")])
    call = P.FunctionCallItem(id="f1", call_id="c1", name="get_weather", arguments='{"city":"x"}')
    feed(
        st,
        P.ConversationItemAdded(previous_item_id=None, item=user),
        P.ConversationItemInputAudioTranscriptionCompleted(
            item_id="u1", content_index=0, transcript="weather please"
        ),
        P.ResponseCreated(response=_resp("r1")),
        P.ResponseOutputItemAdded(response_id="r1", output_index=0, item=call),
        P.ConversationItemAdded(previous_item_id="u1", item=call),
        P.ResponseFunctionCallArgumentsDone(
            response_id="r1",
            item_id="f1",
            output_index=0,
            call_id="c1",
            name="get_weather",
            arguments='{"city":"x"}',
        ),
    )
    assert list(st.calls_in_flight) == ["c1"]
    assert [c.name for c in st.responses["r1"].function_calls] == ["get_weather"]
    out = P.FunctionCallOutputItem(id="o1", call_id="c1", output="sunny")
    feed(st, P.ConversationItemAdded(previous_item_id="f1", item=out))
    assert st.calls_in_flight == {}
    _audio_response(st, "r2", "a1", 300, done=True, prev="o1")
    replay = st.replay_items()
    assert [type(i).__name__ for i in replay] == [
        "MessageItem",
        "FunctionCallItem",
        "FunctionCallOutputItem",
        "MessageItem",
    ]
    assert replay[0].content[0].type == "input_text"
    assert replay[0].content[0].text == "weather please"  # user audio replays as transcript
    assert replay[-1].role == "assistant" and replay[-1].content[0].type == "output_text"


def test_b64_decoded_len_matches_decoding() -> None:
    import base64

    for n in range(0, 20):
        data = base64.b64encode(bytes(n)).decode()
        assert b64_decoded_len(data) == n


# ---------------------------------------------------------------------------- timer
def _usage(inp: int, out: int) -> P.Usage:
    return P.Usage(
        total_tokens=inp + out,
        input_tokens=inp,
        output_tokens=out,
        input_token_details=P.InputTokenDetails(
            text_tokens=inp - 2,
            audio_tokens=2,
            cached_tokens=1,
            cached_tokens_details=P.CachedTokensDetails(text_tokens=1, audio_tokens=0),
        ),
        output_token_details=P.OutputTokenDetails(text_tokens=out - 5, audio_tokens=5),
    )


def test_turn_timer_vad_turn_marks() -> None:
    tm = TurnTimer(opened_at=0.0)
    tm.planned_speech_start = 0.2
    tm.planned_speech_end = 1.19
    tm.on_event(P.InputAudioBufferSpeechStarted(audio_start_ms=0, item_id="u"), 0.3)
    tm.on_event(P.InputAudioBufferSpeechStopped(audio_end_ms=1390, item_id="u"), 1.4)
    tm.on_event(P.ResponseCreated(response=_resp("r1")), 1.405)
    tm.on_event(
        P.ResponseOutputAudioTranscriptDelta(
            response_id="r1", item_id="a", output_index=0, content_index=0, delta="Hi"
        ),
        1.7,
    )
    tm.on_event(
        P.ResponseOutputAudioDelta(
            response_id="r1", item_id="a", output_index=0, content_index=0, delta=audio_b64(100)
        ),
        1.7,
    )
    tm.on_event(P.ResponseDone(response=_resp("r1", "completed", usage=_usage(10, 20))), 3.05)
    for late in (0.0, 1.0, 3.0):
        tm.add_lateness(late)
    m = tm.metrics()
    assert m["vad_delay_ms"] == pytest.approx(210.0)
    assert m["voice_to_voice_ms"] == pytest.approx(510.0)
    assert m["ttfb_ms"] == pytest.approx(300.0)
    assert m["response_created_ms"] == pytest.approx(5.0)
    assert m["first_text_ms"] == pytest.approx(300.0)
    assert m["response_ms"] == pytest.approx(1650.0)
    assert m["audio_out_ms"] == pytest.approx(100.0)
    assert m["pacer_lateness_max_ms"] == 3.0 and m["pacer_lateness_p50_ms"] == 1.0
    rec = tm.record(session_id="s", turn_index=0, mode="audio", run_t0=0.0)
    assert rec.input_tokens == 10 and rec.output_tokens == 20
    assert rec.input_cached_text_tokens == 1 and rec.output_audio_tokens == 5
    assert rec.event_counts["response.output_audio.delta"] == 1
    line = orjson.loads(to_json_line(rec))
    assert line["kind"] == "turn" and line["ttfb_ms"] == pytest.approx(300.0)


def test_turn_timer_text_mode_tool_round() -> None:
    tm = TurnTimer(opened_at=0.0)
    item = P.MessageItem(id="u", role="user", content=[])
    tm.on_sent(P.ConversationItemCreate(item=item), 0.0)
    tm.on_sent(P.ResponseCreate(), 0.0)  # anchor
    tm.on_event(P.ResponseCreated(response=_resp("r1")), 0.01)
    tm.on_event(
        P.ResponseFunctionCallArgumentsDone(
            response_id="r1", item_id="f", output_index=0, call_id="c1", name="t", arguments="{}"
        ),
        0.2,
    )
    tm.on_event(P.ResponseDone(response=_resp("r1", "completed", usage=_usage(10, 3))), 0.21)
    tm.tool_result("c1", ok=False, error="boom")
    tm.on_sent(
        P.ConversationItemCreate(item=P.FunctionCallOutputItem(call_id="c1", output="x")), 0.25
    )
    tm.on_sent(P.ResponseCreate(), 0.25)  # follow-up
    tm.on_event(P.ResponseCreated(response=_resp("r2")), 0.26)
    tm.on_event(
        P.ResponseOutputTextDelta(
            response_id="r2", item_id="m", output_index=0, content_index=0, delta="ok"
        ),
        0.55,
    )
    tm.on_event(P.ResponseDone(response=_resp("r2", "completed", usage=_usage(20, 7))), 0.6)
    m = tm.metrics()
    assert m["ttfb_ms"] == pytest.approx(550.0)  # text mode: first text delta
    assert m["voice_to_voice_ms"] is None and m["vad_delay_ms"] is None
    assert m["tool_roundtrip_ms"] == pytest.approx(50.0)
    assert m["tool_to_audio_ms"] == pytest.approx(300.0)
    assert m["response_ms"] == pytest.approx(600.0)
    rec = tm.record(session_id="s", turn_index=3, mode="text", run_t0=0.0)
    assert rec.input_tokens == 30 and rec.output_tokens == 10  # summed over both responses
    assert rec.tool_calls[0].ok is False and rec.tool_calls[0].error == "boom"
    assert rec.response_id == "r2"


def test_turn_timer_barge_in_stop_is_clamped_at_zero() -> None:
    tm = TurnTimer(opened_at=0.0)
    tm.planned_barge_in = 2.0
    tm.mark_barge_in_stop(1.5)  # the audio had already stopped coming
    assert tm.metrics()["barge_in_stop_ms"] == 0.0
    tm2 = TurnTimer(opened_at=0.0, planned_barge_in=2.0)
    tm2.mark_barge_in_stop(2.12)
    assert tm2.metrics()["barge_in_stop_ms"] == pytest.approx(120.0)


# ---------------------------------------------------------------------------- policy
def test_reconnect_backoff_is_bounded_and_jittered() -> None:
    policy = ReconnectPolicy(max_attempts=5, initial_delay=0.5, max_delay=4.0, jitter=0.2)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(6)]
    for n, d in enumerate(delays):
        base = min(4.0, 0.5 * 2**n)
        assert base * 0.8 <= d <= base * 1.2
    assert ReconnectPolicy(jitter=0.0).delay(1, rng) == 0.5
    with pytest.raises(ValueError, match="max_attempts"):
        ReconnectPolicy(max_attempts=-1)


# ---------------------------------------------------------------------------- tools
async def test_tool_registry_async_sync_canned_and_failures() -> None:
    reg = ToolRegistry(deadline=1.0)
    threads: list[str] = []

    async def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    def sync_tool(city: str) -> str:
        threads.append(threading.current_thread().name)
        return f"sunny in {city}"

    def broken() -> None:
        raise RuntimeError("db down")

    reg.add("add", add)
    reg.add("weather", sync_tool)
    reg.add("canned", result={"ok": True})
    reg.add("broken", broken)
    assert (await reg.call("add", '{"a": 1, "b": 2}')).output == '{"sum":3}'
    out = await reg.call("weather", '{"city": "Paris"}')
    assert out.ok and out.output == "sunny in Paris"
    assert threads and threads[0] != threading.current_thread().name  # ran in a thread
    assert (await reg.call("canned", "")).output == '{"ok":true}'
    failed = await reg.call("broken", "{}")
    assert not failed.ok and orjson.loads(failed.output) == {"error": "RuntimeError: db down"}
    assert not (await reg.call("nope", "{}")).ok
    bad = await reg.call("add", "{not json")
    assert not bad.ok and "not valid JSON" in (bad.error or "")
    wrong = await reg.call("add", '{"a": 1}')
    assert not wrong.ok and "TypeError" in (wrong.error or "")
    tools = reg.function_tools()
    assert [t.name for t in tools] == ["add", "weather", "canned", "broken"]
    with pytest.raises(ValueError, match="exactly one"):
        reg.add("both", add, result=1)


async def test_tool_deadline_becomes_an_error_payload(autojump_clock: object) -> None:
    reg = ToolRegistry(deadline=2.0)

    async def slow() -> str:
        await trio.sleep(5)
        return "late"

    reg.add("slow", slow)
    reg.add("slower", slow, deadline=0.5)
    start = trio.current_time()
    late = await reg.call("slow", "{}")
    assert not late.ok and "deadline of 2s" in (late.error or "")
    assert trio.current_time() - start == pytest.approx(2.0)
    assert "deadline of 0.5s" in ((await reg.call("slower", "{}")).error or "")


# ---------------------------------------------------------------------------- sources
def test_sources_find_speech_and_constructors(tmp_path) -> None:
    src = AudioSource.synthetic(1000, lead_ms=300, tail_ms=500)
    assert src.duration_ms == pytest.approx(1800.0)
    assert src.speech_start == 300 * 24
    assert 1200 * 24 <= src.speech_end <= 1300 * 24
    assert find_speech(silence(500)) is None
    arr = np.concatenate([silence(100), speech_like(400, seed=3)])
    assert AudioSource.from_array(arr, speech_ms=(100, 450)).speech_end == 450 * 24
    as_float = AudioSource.from_array(arr.astype(np.float32) / 32768.0)
    assert as_float.samples.dtype == np.int16 and as_float.speech_start == 100 * 24
    from orchestrator.audio import write_wav

    path = tmp_path / "u.wav"
    write_wav(path, arr)
    assert AudioSource.from_wav(path).speech_start == 100 * 24
    with pytest.raises(ValueError, match="mono"):
        AudioSource.from_array(np.zeros((2, 10), np.int16))


# ---------------------------------------------------------------------------- subscription
async def test_subscription_never_blocks_and_counts_drops() -> None:
    sub = Subscription(4)
    for i in range(3):
        sub.offer(("audio", i), True)  # only half the buffer for audio
    sub.offer("ctl1", False)
    sub.offer("ctl2", False)
    sub.offer("ctl3", False)  # full: dropped
    assert sub.dropped_audio == 1 and sub.dropped_other == 1
    sub.close()
    got = [ev async for ev in sub]
    assert got == [("audio", 0), ("audio", 1), "ctl1", "ctl2"]
