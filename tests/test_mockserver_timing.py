"""Exact latency-model timing on MockClock (autojump_clock + memory_stream_pair).

Client and server share trio's fake clock and a memory stream, so transport adds no
delay: what the client observes must equal the latency model exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from mockserver_helpers import (
    add_user_text,
    append_events,
    mem_connection,
    next_event,
    send,
    speech_turn,
)

from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig

MS = 1e-3


def _model(**kw: object) -> LatencyModel:
    base: dict[str, object] = {
        "response_created_ms": Distribution.parse("fixed:20"),
        "first_delta_ms": Distribution.parse("fixed:300"),
        "response_words": Distribution.parse("fixed:10"),
        "realtime_factor": 2.0,
        "audio_chunk_ms": 100,
        "speech_ms_per_word": 350,
    }
    base.update(kw)
    return LatencyModel(**base)  # type: ignore[arg-type]


async def test_response_create_fixed_ttfb_is_exact(autojump_clock: trio.testing.MockClock) -> None:
    server = MockServer(ServerConfig(port=0, latency=_model()))
    async with mem_connection(server) as ws:
        assert (await next_event(ws))["type"] == "session.created"
        await add_user_text(ws, "hi")
        t0 = trio.current_time()
        await ws.send_message(send({"type": "response.create"}))
        seen: dict[str, float] = {}
        audio_times: list[float] = []
        while True:
            event = await next_event(ws)
            now = trio.current_time()
            seen.setdefault(event["type"], now)
            if event["type"] == "response.output_audio.delta":
                audio_times.append(now)
            if event["type"] == "rate_limits.updated":
                break
    assert seen["response.created"] - t0 == pytest.approx(20 * MS, abs=1e-9)
    assert seen["response.output_audio_transcript.delta"] - t0 == pytest.approx(300 * MS, abs=1e-9)
    assert audio_times[0] - t0 == pytest.approx(300 * MS, abs=1e-9)  # ttfb_ms == 300
    # 10 words x 350 ms = 3500 ms of audio = 35 chunks, paced at 100 ms / 2.0
    assert len(audio_times) == 35
    gaps = {round((b - a) / MS, 6) for a, b in zip(audio_times, audio_times[1:], strict=False)}
    assert gaps == {50.0}
    assert seen["response.done"] == audio_times[-1]


async def test_vad_turn_anchor_is_speech_stopped(autojump_clock: trio.testing.MockClock) -> None:
    server = MockServer(
        ServerConfig(port=0, latency=_model(first_delta_ms=Distribution.parse("fixed:300")))
    )
    audio = speech_turn(1000, lead_ms=400, tail_ms=700)
    async with mem_connection(server) as ws:
        await next_event(ws)
        async with trio.open_nursery() as nursery:

            async def pace() -> None:
                # real-time pacing on absolute deadlines of the fake clock
                start = trio.current_time()
                for i, frame in enumerate(append_events(audio, 100)):
                    await trio.sleep_until(start + i * 0.1)
                    await ws.send_message(frame)

            nursery.start_soon(pace)
            times: dict[str, float] = {}
            events: dict[str, dict[str, object]] = {}
            while "response.output_audio.delta" not in times:
                event = await next_event(ws)
                times.setdefault(event["type"], trio.current_time())
                events.setdefault(event["type"], event)
            nursery.cancel_scope.cancel()
    stopped = times["input_audio_buffer.speech_stopped"]
    assert times["response.created"] - stopped == pytest.approx(20 * MS, abs=1e-9)
    assert times["response.output_audio.delta"] - stopped == pytest.approx(300 * MS, abs=1e-9)
    assert events["input_audio_buffer.speech_started"]["audio_start_ms"] == 100  # 400 - 300 padding
    # speech ends at 1400 ms of audio (its last window fades out); silence 200 ms
    assert 1580 <= events["input_audio_buffer.speech_stopped"]["audio_end_ms"] <= 1600
    assert times["input_audio_buffer.committed"] == stopped


async def test_groundtruth_matches_recording_client(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "gt.jsonl"
    model = _model(
        first_delta_ms=Distribution.parse("uniform:100:400"),
        response_words=Distribution.parse("uniform:3:9"),
    )
    server = MockServer(ServerConfig(port=0, seed=11, latency=model, groundtruth_path=path))
    observed: list[dict[str, object]] = []
    async with mem_connection(server) as ws:
        await next_event(ws)
        for turn in range(3):
            await add_user_text(ws, f"turn {turn}")
            t0 = trio.current_time()
            await ws.send_message(send({"type": "response.create"}))
            rec: dict[str, object] = {"sent": t0}
            transcript = ""
            while True:
                event = await next_event(ws)
                now = trio.current_time()
                if event["type"] == "response.created":
                    rec["created"] = now
                    rec["response_id"] = event["response"]["id"]
                elif event["type"] == "response.output_audio.delta" and "first" not in rec:
                    rec["first"] = now
                elif event["type"] == "response.output_audio_transcript.delta":
                    transcript += event["delta"]
                elif event["type"] == "response.done":
                    rec["done"] = now
                    rec["item_id"] = event["response"]["output"][0]["id"]
                elif event["type"] == "rate_limits.updated":
                    break
            rec["transcript"] = transcript
            observed.append(rec)
    server.groundtruth.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3
    for gt, rec in zip(lines, observed, strict=True):
        assert gt["response_id"] == rec["response_id"]
        assert gt["anchor"] == "response.create"
        assert gt["anchor_time"] == rec["sent"]
        assert gt["created"]["actual"] == rec["created"]
        assert gt["first_delta"]["actual"] == rec["first"]
        assert gt["first_delta"]["type"] == "response.output_audio.delta"
        assert gt["done"]["actual"] == rec["done"]
        for mark in ("created", "first_delta", "done"):
            assert gt[mark]["actual"] == pytest.approx(gt[mark]["intended"], abs=1e-9)
        assert 0.1 <= gt["first_delta"]["intended"] - gt["anchor_time"] <= 0.4 + 1e-9
        assert gt["item_ids"] == [rec["item_id"]]
        assert gt["text"] == rec["transcript"]
        assert gt["status"] == "completed"


async def test_same_seed_same_timings(autojump_clock: trio.testing.MockClock) -> None:
    async def run(seed: int) -> list[float]:
        model = _model(
            first_delta_ms=Distribution.parse("lognormal:300:0.5"),
            response_words=Distribution.parse("uniform:2:30"),
        )
        server = MockServer(ServerConfig(port=0, seed=seed, latency=model))
        out = []
        async with mem_connection(server) as ws:
            await next_event(ws)
            for _ in range(3):
                t0 = trio.current_time()
                await ws.send_message(send({"type": "response.create"}))
                while (event := await next_event(ws))["type"] != "rate_limits.updated":
                    if event["type"] in ("response.output_audio.delta", "response.done"):
                        out.append(round(trio.current_time() - t0, 9))
        return out

    a, b, c = await run(5), await run(5), await run(6)
    assert a == b
    assert a != c


async def test_barge_in_cancels_with_turn_detected(autojump_clock: trio.testing.MockClock) -> None:
    model = _model(
        first_delta_ms=Distribution.parse("fixed:100"),
        realtime_factor=1.0,
        response_words=Distribution.parse("fixed:20"),
    )
    server = MockServer(ServerConfig(port=0, latency=model))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        got = []
        audio = speech_turn(800, lead_ms=100, tail_ms=600)
        frames = append_events(audio, 100)
        # let 1 s of assistant audio stream, then speak over it
        while True:
            event = await next_event(ws)
            got.append(event)
            if event["type"] == "response.output_audio.delta" and trio.current_time() >= 1.0:
                break
        async with trio.open_nursery() as nursery:

            async def pace() -> None:
                start = trio.current_time()
                for i, frame in enumerate(frames):
                    await trio.sleep_until(start + i * 0.1)
                    await ws.send_message(frame)

            nursery.start_soon(pace)
            while True:
                event = await next_event(ws)
                got.append(event)
                if event["type"] == "response.done":
                    break
    names = [e["type"] for e in got]
    started = names.index("input_audio_buffer.speech_started")
    done = got[-1]["response"]
    assert started < len(names) - 1
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    tail = [n for n in names[started + 1 :] if not n.endswith(".delta")]
    assert tail == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    heard = sum(1 for n in names if n == "response.output_audio.delta") * 100
    # the item can be truncated at what was generated, not beyond
    item_id = done["output"][0]["id"]
    async with mem_connection(server) as ws2:  # a separate connection knows nothing of it
        await next_event(ws2)
        await ws2.send_message(
            send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": 0,
                }
            )
        )
        assert (await next_event(ws2))["error"]["code"] == "item_truncate_invalid_item_id"
    assert heard < 20 * 350


async def test_idle_timeout_triggers_after_playback(autojump_clock: trio.testing.MockClock) -> None:
    model = _model(
        first_delta_ms=Distribution.parse("fixed:100"),
        realtime_factor=0.0,
        response_words=Distribution.parse("fixed:4"),
    )
    server = MockServer(ServerConfig(port=0, latency=model))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(
            send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {
                            "input": {
                                "turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}
                            }
                        },
                    },
                }
            )
        )
        assert (await next_event(ws))["type"] == "session.updated"
        await ws.send_message(send({"type": "response.create"}))
        while (event := await next_event(ws))["type"] != "response.done":
            pass
        t_done = trio.current_time()
        audio_ms = event["response"]["output"][0]["content"][0]["transcript"] and 4 * 350
        names = []
        while True:
            event = await next_event(ws)
            names.append(event["type"])
            if event["type"] == "input_audio_buffer.timeout_triggered":
                t_idle = trio.current_time()
            if event["type"] == "response.created":
                break
    assert t_idle - t_done == pytest.approx(audio_ms / 1000 + 5.0, abs=1e-9)
    assert names[1:] == [
        "input_audio_buffer.timeout_triggered",
        "conversation.item.added",
        "conversation.item.done",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
