"""``:abort`` thresholds: parsing, live judging on rolling windows, and the run they stop.

The judge and the watcher run on trio's autojump MockClock (exact fake times), the
supervisor over memory streams to the mock server. One end-to-end ``orchestrator run``
uses the embedded server on 127.0.0.1, port 0 (nothing else is contacted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from session_helpers import voice_server

from orchestrator.cli import build_parser, main
from orchestrator.cli.run_setup import prepare
from orchestrator.metrics import SessionResult, ThresholdError, TurnRecord, parse_threshold
from orchestrator.mockserver import (
    Distribution,
    FaultConfig,
    LatencyModel,
    ServerConfig,
)
from orchestrator.scenario import BuiltinConversation
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import (
    ListSink,
    OpenModel,
    RestartPolicy,
    RestartType,
    Workload,
    open_supervisor,
    read_run_meta,
)
from orchestrator.supervisor.live_thresholds import (
    LiveThresholds,
    abort_thresholds,
    watch_abort_thresholds,
)
from orchestrator.supervisor.tee import TeeSink

FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:3"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:50"),
)


def session(status: str, **kw: Any) -> SessionResult:
    kw.setdefault("planned_start_s", 0.0)
    kw.setdefault("t_end_s", 0.0)
    return SessionResult(session_id="s", status=status, **kw)  # type: ignore[arg-type]


def done(live: LiveThresholds, record: SessionResult) -> None:
    """A session's last attempt, as the supervisor shows it: written, then done."""
    live.session(record)
    live.session_done(record)


# ---------------------------------------------------------------------- parsing


def test_abort_suffix_is_parsed_and_kept_in_the_expression() -> None:
    t = parse_threshold("session_error_rate < 0.1 : abort")
    assert (t.metric, t.op, t.target, t.abort) == ("session_error_rate", "<", 0.1, True)
    assert t.expr == "session_error_rate < 0.1 : abort"
    assert parse_threshold("ttfb_ms.p95<800").abort is False
    with pytest.raises(ThresholdError, match="unknown option 'stop'"):
        parse_threshold("ttfb_ms.p95<800:stop")


def test_abort_on_a_metric_not_known_live_is_refused_before_the_run() -> None:
    assert [t.metric for t in abort_thresholds(["ttfb_ms.p95<9", "turns_failed<3:abort"])] == [
        "turns_failed"
    ]
    with pytest.raises(ThresholdError, match="only known after the run"):
        abort_thresholds(["cost_usd<1:abort"])
    args = build_parser().parse_args(["run", "--threshold", "cost_usd<1:abort"])
    with pytest.raises(ThresholdError, match="cost_usd"):
        prepare(args)


# ---------------------------------------------------------------------- live judge


async def test_rates_and_distributions_are_judged_on_the_rolling_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    live = LiveThresholds(
        ["session_error_rate<0.5:abort", "ttfb_ms.max<1000:abort", "sessions_failed<3:abort"],
        window_s=10.0,
    )
    assert live.failed() is None  # no data is not a failure while the run goes
    done(live, session("failed"))
    done(live, session("completed"))
    live.turn(TurnRecord(session_id="s", turn_index=0, t_start_s=0, t_end_s=0, ttfb_ms=400.0))
    judged = {r.expr: r for r in live.judge()}
    assert judged["session_error_rate<0.5:abort"].actual == 0.5
    assert not judged["session_error_rate<0.5:abort"].ok
    assert judged["ttfb_ms.max<1000:abort"].ok
    assert live.failed() is not None and live.failed().metric == "session_error_rate"  # type: ignore[union-attr]
    await trio.sleep(11.0)  # the window forgets; the run-to-date count does not
    done(live, session("completed"))
    judged = {r.expr: r for r in live.judge()}
    assert judged["session_error_rate<0.5:abort"].actual == 0.0
    assert judged["ttfb_ms.max<1000:abort"].actual is None
    assert judged["sessions_failed<3:abort"].actual == 1.0
    done(live, session("failed"))
    done(live, session("failed"))
    assert live.failed() is not None and live.failed().metric == "session_error_rate"  # type: ignore[union-attr]
    assert {r.expr for r in live.judge() if not r.ok} == {
        "session_error_rate<0.5:abort",
        "sessions_failed<3:abort",
    }


async def test_watch_waits_for_the_grace_and_judges_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    live = LiveThresholds(["session_error_rate<0.1:abort"], window_s=30.0)
    t0 = trio.current_time()

    async def fail_at(t: float) -> None:
        await trio.sleep_until(t0 + t)
        done(live, session("failed"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fail_at, 0.5)  # fails early: grace holds the verdict
        verdict = await watch_abort_thresholds(live, t0=t0, grace_s=5.0, interval_s=1.0)
    assert verdict.t_s == pytest.approx(5.0)
    assert verdict.result.actual == 1.0
    assert "failed at 5.0 s" in verdict.message and "last 30 s" in verdict.message

    later = LiveThresholds(["session_error_rate<0.1:abort"], window_s=30.0)
    t1 = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def fail_later() -> None:
            await trio.sleep_until(t1 + 7.5)
            done(later, session("failed"))

        nursery.start_soon(fail_later)
        verdict = await watch_abort_thresholds(later, t0=t1, grace_s=2.0, interval_s=1.0)
    assert verdict.t_s == pytest.approx(8.0)  # the first judgement after the failure


# ---------------------------------------------------------------------- with a supervisor


def failing_server() -> AbstractAsyncContextManager[Callable[[], SessionSpec]]:
    """Specs connected over memory streams to a mock server failing every response."""
    faults = FaultConfig(error_probability=1.0)
    return voice_server(ServerConfig(port=0, latency=FAST, faults=faults), max_duration=30)


async def test_a_failing_target_is_aborted_after_the_grace_and_drained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = ListSink()
    live = LiveThresholds(["session_error_rate<0.1:abort"], window_s=30.0)
    conversation = BuiltinConversation(speech_ms=600, lead_ms=100, tail_ms=100)
    verdicts = []
    async with failing_server() as make_spec, trio.open_nursery() as nursery:
        async with open_supervisor(
            sink=TeeSink(sink, [live]),
            timeline_interval_s=None,
            restart=RestartPolicy(restart_type=RestartType.TEMPORARY),  # a failure is final
        ) as sup:

            async def abort() -> None:
                verdict = await watch_abort_thresholds(live, t0=sup.t0, grace_s=3.0)
                verdicts.append(verdict)
                nursery.start_soon(sup.drain, 1.0)

            nursery.start_soon(abort)
            stats = await sup.run_workload(
                Workload(
                    model=OpenModel(rate=5, duration_s=600), spec=make_spec(), driver=conversation
                )
            )
        nursery.cancel_scope.cancel()
    (verdict,) = verdicts
    assert verdict.t_s == pytest.approx(3.0)  # sessions failed before: judged at the grace
    assert stats.stopped_early and stats.planned < 30
    assert trio.current_time() - sup.t0 < 3.0 + 1.0 + 0.5  # grace + drain grace
    assert sink.sessions and {s.status for s in sink.sessions} <= {"failed", "cancelled"}


# ---------------------------------------------------------------------- orchestrator run


def test_run_against_a_failing_server_aborts_within_the_grace_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    grace = 2.0
    argv = [
        "run", "--rate", "5", "--duration", "120", "--out", str(out),
        "--server-error-rate", "1", "--server-ttfb-ms", "50", "--server-realtime-factor", "0",
        "--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100", "--realtime-factor", "4",
        "--threshold", "session_error_rate<0.1:abort", "--threshold", "ttfb_ms.p95<5000",
        "--abort-grace-s", str(grace), "--grace-s", "1", "--progress", "off",
    ]  # fmt: skip
    started = time.monotonic()
    rc = main(argv)
    elapsed = time.monotonic() - started
    assert rc == 2
    assert elapsed < grace + 6.0, elapsed
    err = capsys.readouterr().err
    assert "run aborted: threshold 'session_error_rate<0.1:abort' failed at" in err
    summary = orjson.loads((out / "summary.json").read_bytes())
    aborted = summary["run"]["aborted"]
    assert aborted["threshold"] == "session_error_rate<0.1:abort"
    assert aborted["actual"] == 1.0 and aborted["t_s"] >= grace
    assert summary["totals"]["sessions_failed"] >= 1
    assert not summary["thresholds_ok"]
    meta = read_run_meta(out / "results.jsonl")
    assert meta.ended and meta.aborted is not None
