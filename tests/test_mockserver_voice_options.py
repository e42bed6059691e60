"""Embedded-server options for caller-voice runs: leading silence of answers, a greeting
(the assistant speaks first), the audio pacing a stall interrupts, and their CLI.

Timing tests run on MockClock over a memory stream, so what the client sees equals the
latency model exactly.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
import trio_websocket
from mockserver_helpers import add_user_text, mem_connection, next_event, send

from orchestrator.audio import alaw_decode, b64_to_pcm16, rms_dbfs, ulaw_decode
from orchestrator.audio.meter import dbfs_to_rms
from orchestrator.audio.voices.layout import CACHE_ENV
from orchestrator.cli import build_parser
from orchestrator.cli.run_setup import prepare
from orchestrator.cli.serve import config_from_args
from orchestrator.mockserver import (
    ConfigError,
    Distribution,
    FaultConfig,
    LatencyModel,
    MockServer,
    ServerConfig,
    ToolRule,
)

MS = 1e-3


def _model(**kw: Any) -> LatencyModel:
    base: dict[str, Any] = {
        "response_created_ms": Distribution.parse("fixed:20"),
        "first_delta_ms": Distribution.parse("fixed:300"),
        "response_words": Distribution.parse("fixed:6"),
        "realtime_factor": 2.0,
    }
    base.update(kw)
    return LatencyModel(**base)


async def _answer(
    ws: trio_websocket.WebSocketConnection,
) -> tuple[list[tuple[float, str]], list[dict[str, Any]]]:
    """Every audio delta of the next response as (arrival time, payload), and all its
    events up to ``response.done`` (the ``rate_limits.updated`` after it is read too)."""
    deltas: list[tuple[float, str]] = []
    events: list[dict[str, Any]] = []
    while True:
        event = await next_event(ws)
        events.append(event)
        if event["type"] == "response.output_audio.delta":
            deltas.append((trio.current_time(), event["delta"]))
        if event["type"] == "response.done":
            assert (await next_event(ws))["type"] == "rate_limits.updated"
            return deltas, events


def _played(deltas: list[tuple[float, str]], rate: int, decode: Any) -> tuple[np.ndarray, float]:
    """The audio as a playback that starts at the first delta plays it, and how long that
    playback ran dry in between (ms)."""
    clock = deltas[0][0]
    underrun = 0.0
    chunks = []
    for arrival, payload in deltas:
        if arrival > clock:
            underrun += arrival - clock
            clock = arrival
        samples = decode(payload)
        clock += samples.size / rate
        chunks.append(samples)
    return np.concatenate(chunks), underrun * 1000.0


def _first_audible_ms(samples: np.ndarray, rate: int, dbfs: float = -50.0) -> float:
    """The first audible sample, in ms of audio, as a client measures it: in the first
    5 ms window (on a grid from the first sample) whose RMS reaches ``dbfs``, the first
    sample whose magnitude does."""
    window = rate // 200
    level = dbfs_to_rms(dbfs)
    for i in range(0, samples.size - window, window):
        if rms_dbfs(samples[i : i + window]) >= dbfs:
            loud = np.flatnonzero(np.abs(samples[i : i + window].astype(np.int32)) >= level)
            return (i + int(loud[0])) * 1000.0 / rate
    raise AssertionError("no audible window")


# -- leading silence ----------------------------------------------------------------------


async def test_answers_start_with_exactly_the_leading_silence(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    gt = tmp_path / "gt.jsonl"
    model = _model(leading_silence_ms=Distribution.parse("fixed:200"))
    server = MockServer(ServerConfig(port=0, seed=3, latency=model, groundtruth_path=gt))
    async with mem_connection(server) as ws:
        await next_event(ws)
        for _ in range(12):  # different answers start at different places of the bank
            await add_user_text(ws, "hi")
            t0 = trio.current_time()
            await ws.send_message(send({"type": "response.create"}))
            deltas, events = await _answer(ws)
            audio, underrun = _played(deltas, 24000, b64_to_pcm16)
            assert deltas[0][0] - t0 == pytest.approx(300 * MS, abs=1e-9)  # ttfb
            assert underrun == pytest.approx(0.0, abs=1e-9)
            assert not audio[: 200 * 24].any()  # digital silence
            # audible from the very first window after it: first_delta + leading silence
            assert _first_audible_ms(audio, 24000) == 200.0
            assert audio.size == (200 + 6 * 350) * 24  # counted in the audio length
            done = events[-1]["response"]
            assert done["output"][0]["content"][0]["transcript"].count(" ") == 5
    server.groundtruth.close()
    records = [json.loads(line) for line in gt.read_text().splitlines()]
    assert {(r["leading_silence_ms"], r["audio_ms"]) for r in records} == {(200, 2300)}


@pytest.mark.parametrize(
    ("fmt", "decode_bytes"), [("audio/pcmu", ulaw_decode), ("audio/pcma", alaw_decode)]
)
async def test_leading_silence_in_g711_and_partial_chunks(
    autojump_clock: trio.testing.MockClock, fmt: str, decode_bytes: Any
) -> None:
    model = _model(leading_silence_ms=Distribution.parse("fixed:250"), realtime_factor=1.0)
    server = MockServer(ServerConfig(port=0, seed=9, latency=model))

    def decode(payload: str) -> np.ndarray:
        return decode_bytes(base64.b64decode(payload))

    async with mem_connection(server) as ws:
        await next_event(ws)
        session = {"type": "realtime", "audio": {"output": {"format": {"type": fmt}}}}
        await ws.send_message(send({"type": "session.update", "session": session}))
        await next_event(ws)
        for _ in range(6):
            await add_user_text(ws, "hi")
            await ws.send_message(send({"type": "response.create"}))
            deltas, _ = await _answer(ws)
            sizes = [decode(p).size for _, p in deltas[:4]]
            assert sizes == [800, 800, 400, 800]  # 100 + 100 + 50 ms of silence, then speech
            audio, underrun = _played(deltas, 8000, decode)
            assert underrun == pytest.approx(0.0, abs=1e-9)  # paced by audio, not by delta
            assert np.abs(audio[: 250 * 8]).max() <= 8  # A-law has no zero: ±8 is its idle
            assert _first_audible_ms(audio, 8000) == 250.0


async def test_text_answers_and_tool_calls_have_no_leading_silence(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    gt = tmp_path / "gt.jsonl"
    model = _model(leading_silence_ms=Distribution.parse("fixed:200"))
    rule = ToolRule("weather", "get_weather", '{"city": "Paris"}')
    server = MockServer(
        ServerConfig(port=0, latency=model, groundtruth_path=gt, tool_rules=(rule,))
    )
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    async with mem_connection(server) as ws:
        await next_event(ws)
        await add_user_text(ws, "hi")
        await ws.send_message(
            send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        )
        _, events = await _answer(ws)
        assert events[-1]["response"]["status"] == "completed"
        session = {"type": "realtime", "tools": [tool]}
        await ws.send_message(send({"type": "session.update", "session": session}))
        assert (await next_event(ws))["type"] == "session.updated"
        await add_user_text(ws, "the weather please")
        await ws.send_message(send({"type": "response.create"}))
        _, events = await _answer(ws)
        assert events[-1]["response"]["output"][0]["type"] == "function_call"
    server.groundtruth.close()
    text, call = [json.loads(line) for line in gt.read_text().splitlines()]
    assert (text["modality"], text["leading_silence_ms"]) == ("text", 0)
    assert (call["tool_call"]["name"], call["leading_silence_ms"]) == ("get_weather", 0)


# -- greeting -----------------------------------------------------------------------------


async def test_greeting_is_spoken_after_the_first_session_update(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    gt = tmp_path / "gt.jsonl"
    greeting = "Hello! Thanks for calling, how can I help?"
    model = _model(leading_silence_ms=Distribution.parse("fixed:100"))
    server = MockServer(ServerConfig(port=0, latency=model, greeting=greeting, groundtruth_path=gt))
    async with mem_connection(server) as ws:
        assert (await next_event(ws))["type"] == "session.created"
        with trio.move_on_after(5):  # nothing before the caller's session is set up
            pytest.fail(f"unexpected {await next_event(ws)}")
        await ws.send_message(send({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await next_event(ws))["type"] == "session.updated"
        t_updated = trio.current_time()
        created = await next_event(ws)
        assert created["type"] == "response.created"
        assert trio.current_time() - t_updated == pytest.approx(20 * MS, abs=1e-9)
        deltas, events = await _answer(ws)
        assert deltas[0][0] - t_updated == pytest.approx(300 * MS, abs=1e-9)
        audio, _ = _played(deltas, 24000, b64_to_pcm16)
        assert _first_audible_ms(audio, 24000) == 100.0
        said = "".join(
            e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
        )
        assert said == greeting
        item = events[-1]["response"]["output"][0]
        assert (item["role"], item["content"][0]["transcript"]) == ("assistant", greeting)
        # a later update does not greet again; the caller's turn gets a normal answer
        await ws.send_message(send({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await next_event(ws))["type"] == "session.updated"
        await add_user_text(ws, "hi")
        await ws.send_message(send({"type": "response.create"}))
        _, events = await _answer(ws)
        assert events[0]["type"] == "response.created"
    server.groundtruth.close()
    first, second = [json.loads(line) for line in gt.read_text().splitlines()]
    assert (first["kind"], first["anchor"], first["input_item_id"]) == (
        "greeting",
        "session.updated",
        None,
    )
    assert first["anchor_time"] == pytest.approx(t_updated, abs=1e-9)
    assert (first["text"], first["leading_silence_ms"]) == (greeting, 100)
    assert (second["kind"], second["anchor"]) == ("answer", "response.create")


def test_an_empty_greeting_is_refused() -> None:
    with pytest.raises(ConfigError, match="greeting"):
        ServerConfig(greeting=" ")


# -- pacing under a stall ----------------------------------------------------------------


@pytest.mark.parametrize(("factor", "hidden_ms_per_delta"), [(1.0, 0.0), (2.0, 50.0)])
async def test_a_stall_is_heard_minus_the_audio_buffered_ahead(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    factor: float,
    hidden_ms_per_delta: float,
) -> None:
    """Audio deltas of ``chunk`` ms leave every ``chunk / realtime_factor`` ms, so before
    the stalled delta ``k`` a playback holds ``k * chunk * (1 - 1 / factor)`` ms in hand:
    a stall of 1500 ms is heard as a 1500 ms gap at real-time pacing, and shortened by
    50 ms per delta already sent at the default factor 2."""
    gt = tmp_path / "gt.jsonl"
    model = _model(realtime_factor=factor, response_words=Distribution.parse("fixed:10"))
    faults = FaultConfig(stall_probability=1.0, stall_ms=1500.0)
    server = MockServer(
        ServerConfig(port=0, seed=5, latency=model, faults=faults, groundtruth_path=gt)
    )
    gaps = []
    async with mem_connection(server) as ws:
        await next_event(ws)
        for _ in range(6):
            await add_user_text(ws, "hi")
            await ws.send_message(send({"type": "response.create"}))
            deltas, _ = await _answer(ws)
            times = [t for t, _ in deltas]
            stalled = int(np.argmax(np.diff(times))) + 1
            _, underrun = _played(deltas, 24000, b64_to_pcm16)
            heard = max(0.0, 1500.0 - stalled * hidden_ms_per_delta)
            assert underrun == pytest.approx(heard, abs=1e-6)
            gaps.append(stalled)
    server.groundtruth.close()
    assert all(json.loads(line)["stall_ms"] == 1500.0 for line in gt.read_text().splitlines())
    assert len(set(gaps)) > 1  # the stalled delta is drawn per response


# -- command line -------------------------------------------------------------------------


def test_serve_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    parser = build_parser()
    config = config_from_args(
        parser.parse_args(["serve", "--leading-silence", "uniform:75:341", "--greeting", "Hi!"])
    )
    assert config.latency.leading_silence_ms == Distribution("uniform", 75.0, 341.0)
    assert config.greeting == "Hi!"
    assert config.hearing_dir == tmp_path / "cache"  # hearing on, the default voice cache
    config = config_from_args(parser.parse_args(["serve", "--hear-dir", str(tmp_path)]))
    assert config.hearing_dir == tmp_path
    assert config.latency.leading_silence_ms == Distribution("fixed", 0.0)
    assert config.greeting is None
    assert config_from_args(parser.parse_args(["serve", "--no-hearing"])).hearing_dir is None
    with pytest.raises(ConfigError, match="exclude"):
        config_from_args(parser.parse_args(["serve", "--no-hearing", "--hear-dir", "x"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--leading-silence", "lognormal:200:50"])


def test_run_options_shape_the_embedded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "default"))
    argv = ["run", "--server-leading-silence", "200", "--server-greeting", "Welcome."]
    config = prepare(build_parser().parse_args(argv), env={}).server_config
    assert config is not None
    assert config.latency.leading_silence_ms == Distribution("fixed", 200.0)
    assert config.greeting == "Welcome."
    assert config.hearing_dir is None  # the built-in sound is no cached line: nothing to hear
    argv = ["run", "--speak", "Hello there."]
    config = prepare(build_parser().parse_args(argv), env={}).server_config
    assert config is not None and config.hearing_dir == tmp_path / "default"  # the run's cache
    argv = ["run", "--speak", "Hello there.", "--voice-cache", str(tmp_path / "mine")]
    config = prepare(build_parser().parse_args(argv), env={}).server_config
    assert config is not None and config.hearing_dir == tmp_path / "mine"
