"""Scheduled server-wide freeze (``FaultConfig.freeze_at_s`` / ``freezes``).

Timing tests run on the autojump MockClock over memory streams, where a frame is
received at the very moment the server sends it: a frame due inside a freeze must
arrive exactly at the freeze's end, every other frame exactly when it would without
the freeze, in the same order.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio.testing
from mockserver_helpers import fast_config, mem_connection, send

from orchestrator.mockserver import (
    Distribution,
    FaultConfig,
    FreezeWindow,
    LatencyModel,
    MockServer,
)
from orchestrator.mockserver.faults import freeze_end

#: response.create at 0.9 s: created at 0.905, deltas every 100 ms from 1.1 s to ~3.1 s.
PACED = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:200"),
    delta_interval_ms=Distribution.parse("fixed:100"),
    response_words=Distribution.parse("fixed:6"),
    transcription_ms=Distribution.parse("fixed:10"),
)


# -- pure -------------------------------------------------------------------------------


def test_freeze_window_parse_and_validation() -> None:
    assert FreezeWindow.parse("5:2000") == FreezeWindow(at_s=5.0, ms=2000.0)
    assert FreezeWindow.parse("0.5:250").end_s == pytest.approx(0.75)
    for bad in ("5", "5:", "x:100", "5:0", "-1:100", "5:inf", "5:100:3"):
        with pytest.raises(ValueError, match="AT_S:MS|at_s|ms"):
            FreezeWindow.parse(bad)
    with pytest.raises(ValueError, match="freeze_ms"):
        FaultConfig(freeze_at_s=1.0)
    with pytest.raises(ValueError, match="freeze_at_s"):
        FaultConfig(freeze_ms=100.0)
    with pytest.raises(TypeError, match="FreezeWindow"):
        FaultConfig(freezes=((1.0, 100.0),))  # type: ignore[arg-type]
    config = FaultConfig(freeze_at_s=2.0, freeze_ms=500.0, freezes=[FreezeWindow(9.0, 1.0)])
    assert config.freeze_windows == (FreezeWindow(2.0, 500.0), FreezeWindow(9.0, 1.0))
    assert FaultConfig().freeze_windows == ()


def test_freeze_end_covers_half_open_windows_and_chains_overlaps() -> None:
    windows = (FreezeWindow(4.0, 1000.0), FreezeWindow(1.0, 500.0), FreezeWindow(1.5, 250.0))
    assert freeze_end(windows, 0.99) is None
    assert freeze_end(windows, 1.0) == pytest.approx(1.75)  # [1, 1.5) touches [1.5, 1.75)
    assert freeze_end(windows, 1.6) == pytest.approx(1.75)
    assert freeze_end(windows, 1.75) is None
    assert freeze_end(windows, 4.999) == pytest.approx(5.0)
    assert freeze_end(windows, 5.0) is None
    assert freeze_end((), 1.0) is None


# -- on the wire (MockClock) -------------------------------------------------------------


async def _timed_response(faults: FaultConfig) -> tuple[MockServer, list[tuple[float, Any]]]:
    """One connection opened at t0; response.create at t0 + 0.9 s. Returns every frame
    received until response.done as (seconds since t0, event without event_id)."""
    server = MockServer(fast_config(latency=PACED, faults=faults, seed=3))
    t0 = trio.current_time()
    server.started_at = t0
    got: list[tuple[float, Any]] = []

    async def read_all(ws: Any) -> None:  # always reading: receive time == send time
        while not got or got[-1][1]["type"] != "response.done":
            event = orjson.loads(await ws.get_message())
            event.pop("event_id", None)
            got.append((trio.current_time() - t0, event))

    async with mem_connection(server) as ws, trio.open_nursery() as nursery:
        nursery.start_soon(read_all, ws)
        await trio.sleep_until(t0 + 0.9)
        await ws.send_message(send({"type": "response.create"}))
    return server, got


async def test_frames_due_in_a_freeze_leave_exactly_at_its_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    windows = ((1.0, 1.45), (2.05, 2.35))  # edges away from frame times
    _, calm = await _timed_response(FaultConfig())
    server, frozen = await _timed_response(
        FaultConfig(freeze_at_s=1.0, freeze_ms=450.0, freezes=(FreezeWindow(2.05, 300.0),))
    )
    # same frames, same order (ids are random; types and deltas are seeded); only the
    # send times of frames due in a window moved
    assert [(e["type"], e.get("delta")) for _, e in frozen] == [
        (e["type"], e.get("delta")) for _, e in calm
    ]
    held = {w: 0 for w in windows}
    unaffected = 0
    for (t_calm, _), (t_frozen, event) in zip(calm, frozen, strict=True):
        window = next((w for w in windows if w[0] <= t_calm < w[1]), None)
        if window is None:
            assert t_frozen == pytest.approx(t_calm, abs=1e-9), event["type"]
            unaffected += 1
        else:
            assert t_frozen == pytest.approx(window[1], abs=1e-9), event["type"]
            held[window] += 1
    # frames before (session.created, response.created at 0.905), in both windows and after
    assert held[windows[0]] >= 4 and held[windows[1]] >= 3 and unaffected >= 10
    assert calm[0][0] == pytest.approx(0.0) and calm[0][1]["type"] == "session.created"
    # ground truth: intended stays the plan, actual is the held send time
    (record,) = server.groundtruth.records
    assert record["first_delta"]["intended"] - server.started_at == pytest.approx(1.1)  # type: ignore[operator]
    assert record["first_delta"]["actual"] - server.started_at == pytest.approx(1.45)  # type: ignore[operator]
    assert record["created"]["actual"] == pytest.approx(record["created"]["intended"])
    assert server.stats.faults["freeze_holds"] >= 2


async def test_frozen_server_accepts_and_reads_but_sends_at_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = MockServer(
        fast_config(latency=PACED, faults=FaultConfig(freeze_at_s=0.5, freeze_ms=1000))
    )
    async with mem_connection(server) as first:
        t0 = server.started_at  # the first connection started the server's clock
        assert t0 is not None
        assert orjson.loads(await first.get_message())["type"] == "session.created"
        assert trio.current_time() == pytest.approx(t0)
        await trio.sleep_until(t0 + 1.0)
        async with mem_connection(server) as second:  # handshake inside the freeze
            assert trio.current_time() == pytest.approx(t0 + 1.0)
            await second.send_message(send({"type": "response.create"}))
            await first.send_message(
                send(
                    {
                        "type": "session.update",
                        "session": {"type": "realtime", "instructions": "hi"},
                    }
                )
            )
            event = orjson.loads(await second.get_message())
            assert event["type"] == "session.created"
            assert trio.current_time() == pytest.approx(t0 + 1.5)
            event = orjson.loads(await first.get_message())
            assert event["type"] == "session.updated"
            assert event["session"]["instructions"] == "hi"
            assert trio.current_time() == pytest.approx(t0 + 1.5)
            # the response.create read during the freeze is anchored at its receipt
            while event["type"] != "response.done":
                event = orjson.loads(await second.get_message())
    (record,) = server.groundtruth.records
    assert record["anchor_time"] == pytest.approx(t0 + 1.0)
    assert record["created"]["intended"] == pytest.approx(t0 + 1.005)
    assert record["created"]["actual"] == pytest.approx(t0 + 1.5)
    assert record["first_delta"]["intended"] == pytest.approx(t0 + 1.2)
    assert record["first_delta"]["actual"] == pytest.approx(t0 + 1.5)
