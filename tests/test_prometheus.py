"""Live Prometheus metrics: ``SupervisorMetrics``, ``serve_metrics``, ``run --metrics-port``.

The exposition is parsed with ``prometheus_client.parser`` as a scraper would. Servers
listen on 127.0.0.1, port 0 only; every test is bounded (``fail_after`` / timeouts).
The metric content test runs on the autojump MockClock over memory streams.
"""

from __future__ import annotations

import asyncio
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from session_helpers import voice_server

from orchestrator.aio import open_aio_supervisor
from orchestrator.aio.prometheus import SupervisorMetrics, serve_metrics
from orchestrator.metrics import SessionResult
from orchestrator.metrics.failure import Failure
from orchestrator.metrics.names import SESSION_METRICS, TURN_METRICS
from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ClosedModel, ListSink, Workload, open_supervisor
from orchestrator.transport import build_target

FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:3"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:50"),
)
SHORT = BuiltinConversation(speech_ms=400, lead_ms=100, tail_ms=200)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed: dict[Any, float], name: str, **labels: str) -> float:
    return parsed[(name, tuple(sorted(labels.items())))]


def memory_server(**config: Any) -> AbstractAsyncContextManager[Callable[..., SessionSpec]]:
    return voice_server(ServerConfig(port=0, latency=FAST, **config))


async def test_counters_histograms_and_health_follow_the_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = SupervisorMetrics(scenario="builtin")
    other = SupervisorMetrics()  # a registry per supervisor: no duplicate-name clash
    sink = ListSink()
    async with memory_server() as make_spec:
        async with open_supervisor(sink=metrics.wrap(sink), timeline_interval_s=None) as sup:
            metrics.bind(sup)
            await sup.run_workload(
                Workload(
                    model=ClosedModel(concurrency=2, sessions=4),
                    spec=make_spec(label="voice"),
                    driver=SHORT,
                )
            )
            metrics.refresh()
    assert len(sink.sessions) == 4  # the wrapped sink still gets everything
    parsed = samples(generate_latest(metrics.registry).decode())
    assert value(parsed, "orchestrator_sessions_total", scenario="builtin", label="voice",
                 status="completed") == 4  # fmt: skip
    assert value(parsed, "orchestrator_turns_total", scenario="builtin", label="question",
                 status="completed") == 4  # fmt: skip
    assert value(parsed, "orchestrator_session_starts_total") == 4
    assert value(parsed, "orchestrator_restarts_total") == 0
    turn = {"scenario": "builtin", "label": "question"}
    assert value(parsed, "orchestrator_ttfb_ms_count", **turn) == 4
    assert value(parsed, "orchestrator_ttfb_ms_bucket", le="+Inf", **turn) == 4
    assert value(parsed, "orchestrator_ttfb_ms_bucket", le="5.0", **turn) == 0
    assert value(parsed, "orchestrator_connect_ms_count", scenario="builtin", label="voice") == 4
    for name in (*TURN_METRICS, *SESSION_METRICS):  # one histogram per metric name
        assert any(key[0] == f"orchestrator_{name}_count" for key in parsed) or not any(
            getattr(t, name, None) is not None for t in (*sink.turns, *sink.sessions)
        ), name
    assert value(parsed, "orchestrator_sessions_in_state", state="active") == 0
    assert value(parsed, "orchestrator_run_valid") in (0.0, 1.0)
    assert ("orchestrator_loop_lag_p99_ms", ()) in parsed
    assert ("orchestrator_pacer_p99_ms", ()) in parsed
    assert ("orchestrator_cpu_percent", ()) in parsed
    assert not any(k[0] == "orchestrator_sessions_total" for k in samples(
        generate_latest(other.registry).decode()))  # fmt: skip


async def test_serve_metrics_on_loopback_port_0() -> None:
    metrics = SupervisorMetrics(scenario="s")
    metrics.sessions.labels("s", "x", "failed").inc(3)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_metrics, metrics, "127.0.0.1", 0)
            assert port > 0

            def get() -> tuple[str, str]:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.headers["Content-Type"], r.read().decode()

            content_type, body = await trio.to_thread.run_sync(get)
            nursery.cancel_scope.cancel()
    assert content_type.startswith("text/plain")
    parsed = samples(body)
    assert (
        value(parsed, "orchestrator_sessions_total", scenario="s", label="x", status="failed") == 3
    )


def test_aio_supervisor_exposes_the_same_registry() -> None:
    async def main() -> dict[Any, float]:
        async with asyncio.timeout(30):
            async with open_aio_supervisor(metrics=True, timeline_interval_s=None) as sup:
                port = await sup.start_service(MockServer(ServerConfig(port=0, latency=FAST)).serve)
                target = build_target(
                    provider="custom", url=f"ws://127.0.0.1:{port}/v1", model="gpt-realtime"
                )
                spec = SessionSpec(target=target, config=voice_session_config(), label="aio")
                handle = await sup.start(spec, SHORT)
                await handle.wait()
                mport = await sup.start_service(serve_metrics, sup.metrics, "127.0.0.1", 0)
                url = f"http://127.0.0.1:{mport}/metrics"

                def get() -> str:
                    with urllib.request.urlopen(url, timeout=5) as r:
                        return r.read().decode()

                return samples(await asyncio.to_thread(get))

    parsed = asyncio.run(main())
    assert value(parsed, "orchestrator_sessions_total", scenario="", label="aio",
                 status="completed") == 1  # fmt: skip
    assert value(parsed, "orchestrator_ttfb_ms_count", scenario="", label="question") == 1


def test_run_metrics_port_serves_during_the_run() -> None:
    argv = [
        sys.executable, "-m", "orchestrator", "run", "--rate", "4", "--duration", "30",
        "--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100", "--realtime-factor", "4",
        "--server-realtime-factor", "0", "--server-ttfb-ms", "50", "--progress", "off",
        "--metrics-port", "0", "--grace-s", "1", "--out",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        argv.append(f"{tmp}/out")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            url = None
            assert proc.stderr is not None
            while url is None and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stderr], [], [], 1.0)
                if ready:
                    m = re.search(
                        r"metrics: (http://127\.0\.0\.1:\d+/metrics)", proc.stderr.readline()
                    )
                    url = m.group(1) if m else None
            assert url is not None, "no metrics URL on stderr"
            parsed: dict[Any, float] = {}
            while time.monotonic() < deadline:  # until a session has finished
                with urllib.request.urlopen(url, timeout=5) as r:
                    parsed = samples(r.read().decode())
                if any(k[0] == "orchestrator_ttfb_ms_count" for k in parsed):
                    break
                time.sleep(0.2)  # a poll (bounded by the deadline), not a timing assumption
            proc.send_signal(2)  # Ctrl-C: drain and stop
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert any(k[0] == "orchestrator_ttfb_ms_bucket" for k in parsed)
    assert sum(v for k, v in parsed.items() if k[0] == "orchestrator_sessions_total") >= 1
    assert ("orchestrator_loop_lag_p99_ms", ()) in parsed


def test_refusals_reconnects_and_dropped_starts_are_counted() -> None:
    metrics = SupervisorMetrics(scenario="sc")
    refused = Failure(
        type="HandshakeRejected", message="websocket handshake rejected with HTTP 429: slow down"
    )
    metrics.session(
        SessionResult(
            session_id="a", status="failed", failure=refused, planned_start_s=0.0, t_end_s=1.0
        )
    )
    metrics.session(
        SessionResult(
            session_id="b", status="completed", reconnects=2, label="L", planned_start_s=0.0,
            t_end_s=1.0, connect_ms=12.0,
        )
    )  # fmt: skip
    metrics.event("start_dropped", {"reason": "max_concurrency"})
    parsed = samples(generate_latest(metrics.registry).decode())
    assert value(parsed, "orchestrator_handshake_refusals_total", scenario="sc", status="429") == 1
    assert value(parsed, "orchestrator_reconnects_total", scenario="sc", label="L") == 2
    assert value(parsed, "orchestrator_dropped_starts_total", reason="max_concurrency") == 1
    assert value(parsed, "orchestrator_connect_ms_bucket", scenario="sc", label="L", le="25.0") == 1


async def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )

    metrics = SupervisorMetrics()
    metrics.turns.labels("", "q", "completed").inc()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_metrics, metrics, "127.0.0.1", 0)

            def get() -> tuple[str, str]:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/metrics",
                    headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                )
                with urllib.request.urlopen(request, timeout=5) as r:
                    return r.headers["Content-Type"], r.read().decode()

            content_type, body = await trio.to_thread.run_sync(get)
            nursery.cancel_scope.cancel()
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(body)}
    assert families["orchestrator_turns"].type == "counter"
    assert families["orchestrator_ttfb_ms"].type == "histogram"
