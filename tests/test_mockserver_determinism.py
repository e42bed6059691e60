"""A fixed seed fixes the server's wire stream (MockClock + memory stream pair).

Two runs of the same conversation with the same seed must produce byte-identical
server frames once the ids are masked: ids (``event_…``, ``item_…``, ``resp_…``) come
from ``os.urandom`` by design (unique across processes), and ``expires_at`` from the
wall clock. Everything else -- timing, words, audio, tool calls and the ``obfuscation``
padding of every delta -- is drawn from the connection's seeded generators.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import trio
import trio.testing

from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from tests.mockserver_helpers import append_events, mem_connection, send, speech_turn

_ID = re.compile(rb"\b(event|item|resp|sess|call|conv)_[A-Za-z0-9]+")
_EXPIRES = re.compile(rb'"expires_at":\d+')


def _mask(frames: list[bytes]) -> list[bytes]:
    """Replace each distinct id by its order of first appearance (keeps id equality)."""
    seen: dict[bytes, bytes] = {}

    def sub(m: re.Match[bytes]) -> bytes:
        return seen.setdefault(m.group(0), m.group(1) + b"_%d" % len(seen))

    return [_EXPIRES.sub(b'"expires_at":0', _ID.sub(sub, f)) for f in frames]


async def _conversation(seed: int) -> list[bytes]:
    model = LatencyModel(
        response_created_ms=Distribution.parse("uniform:5:50"),
        first_delta_ms=Distribution.parse("lognormal:300:0.5"),
        response_words=Distribution.parse("uniform:4:12"),
        realtime_factor=1.0,
        transcription_ms=Distribution.parse("uniform:10:80"),
    )
    server = MockServer(ServerConfig(port=0, seed=seed, latency=model))
    frames: list[bytes] = []
    async with mem_connection(server) as ws:

        async def until(etype: str, count: int = 1) -> None:
            while True:
                raw = await ws.get_message()
                frames.append(raw.encode() if isinstance(raw, str) else raw)
                if f'"type":"{etype}"'.encode() in frames[-1]:
                    count -= 1
                    if count == 0:
                        return

        await until("session.created")
        await ws.send_message(
            send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "output_modalities": ["audio"],
                        "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                    },
                }
            )
        )
        await until("session.updated")
        for frame in append_events(speech_turn(900, lead_ms=200, tail_ms=700), 100):
            await ws.send_message(frame)
            await trio.sleep(0.1)
        await until("response.done")
        await ws.send_message(send({"type": "response.create"}))
        await until("response.done")
        await trio.sleep(1)  # let the transcription land
        with trio.move_on_after(0.5):
            while True:
                raw = await ws.get_message()
                frames.append(raw.encode() if isinstance(raw, str) else raw)
    return frames


async def test_same_seed_byte_identical_frames(autojump_clock: trio.testing.MockClock) -> None:
    a = await _conversation(7)
    b = await _conversation(7)
    assert any(b'"obfuscation"' in f for f in a)
    assert any(b"transcription.completed" in f for f in a)
    assert _mask(a) == _mask(b)


async def test_other_seed_other_frames(autojump_clock: trio.testing.MockClock) -> None:
    assert _mask(await _conversation(7)) != _mask(await _conversation(8))


async def test_obfuscation_follows_the_seed(autojump_clock: trio.testing.MockClock) -> None:
    """The padding alone (not just the timing) is fixed by the seed."""

    def pads(frames: list[bytes]) -> list[bytes]:
        return re.findall(rb'"obfuscation":"([^"]*)"', b"".join(frames))

    assert pads(await _conversation(3)) == pads(await _conversation(3))


#: The keys of a ground-truth JSON line, in the order written before the record was typed
#: (readers: ``orchestrator/cli/run.py`` validity, ``read_groundtruth``).
GROUNDTRUTH_KEYS = [
    "connection", "session_id", "conversation_id", "response_id", "item_ids",
    "input_item_id", "anchor", "anchor_time", "kind", "created", "first_delta", "done",
    "status", "reason", "modality", "tool_call", "tool_calls", "text", "audio_ms",
    "leading_silence_ms", "stall_ms", "fault", "send_late_ms",
]  # fmt: skip


async def test_groundtruth_lines_keep_their_shape(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "gt.jsonl"
    server = MockServer(ServerConfig(port=0, seed=1, groundtruth_path=path))
    async with mem_connection(server) as ws:
        await ws.get_message()
        await ws.send_message(send({"type": "response.create"}))
        while '"response.done"' not in await ws.get_message():
            pass
        await trio.sleep(0.1)
    server.groundtruth.close()
    (line,) = path.read_bytes().splitlines()
    record = orjson.loads(line)
    assert list(record) == GROUNDTRUTH_KEYS
    assert list(record["created"]) == ["intended", "actual"]
    assert list(record["first_delta"]) == ["intended", "actual", "type"]
    assert record["tool_call"] is None and record["tool_calls"] == []
    assert record["status"] == "completed" and record["kind"] == "answer"
    assert server.groundtruth.records == [record]
