"""Stop signals of ``orchestrator run``: SIGTERM and SIGHUP drain like the first Ctrl-C, a
second stop signal of any kind cancels, every output file is written, and the exit code is
128 + the first signal (143 SIGTERM, 129 SIGHUP; 130 SIGINT is in test_cli_run.py).

Real subprocesses on the embedded server (loopback, port 0): each waits for evidence (turns
in results.jsonl, "draining" on stderr) under a deadline, never for a fixed time.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import trio

from orchestrator.cli import build_parser
from orchestrator.cli.run import execute
from orchestrator.cli.run_setup import prepare
from orchestrator.cli.signals import (
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    StopSignals,
    exit_code_for_signal,
    held_stop_signals,
)
from orchestrator.metrics import read_results
from orchestrator.supervisor import read_run_meta
from orchestrator.supervisor.sink import JsonlSink

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")

QUICK = [
    "--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100",
    "--realtime-factor", "4", "--server-realtime-factor", "0", "--server-ttfb-ms", "50",
]  # fmt: skip
GUARD_S = 30.0


def _start(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "orchestrator", "run", "--sessions", "200", "--concurrency", "4",
        "--grace-s", "60", "--out", str(out), "--progress", "plain", *QUICK, *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_turns(proc: subprocess.Popen[bytes], results: Path, n: int) -> None:
    """Until ``n`` turns are in results.jsonl (the run has started and answered)."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        if results.exists() and results.read_bytes().count(b'"kind":"turn"') >= n:
            return
        assert proc.poll() is None, "the run ended before any signal"
        time.sleep(0.02)  # polling the file for evidence, not a timing assumption
    pytest.fail(f"fewer than {n} turns within {GUARD_S} s")


def _read_stderr_until(proc: subprocess.Popen[bytes], needle: bytes) -> bytes:
    """Read stderr until it holds ``needle``; returns what was read."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + GUARD_S
    while needle not in seen:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            pytest.fail(f"{needle!r} not on stderr within {GUARD_S} s: {seen[-2000:]!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            pytest.fail(f"stderr closed without {needle!r}: {seen[-2000:]!r}")
        seen += chunk
    return seen


def _finish(proc: subprocess.Popen[bytes]) -> bytes:
    try:
        _, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err


def _check_outputs(out: Path) -> tuple[list[str], dict]:
    """Every output file is there and valid; returns session statuses and the summary."""
    assert {p.name for p in out.iterdir()} >= {
        "results.jsonl", "summary.json", "summary.csv", "report.html",
    }  # fmt: skip
    parsed = read_results(out / "results.jsonl")
    assert not parsed.truncated
    meta = read_run_meta(out / "results.jsonl")
    assert meta.ended and meta.interrupted  # run_end written, marked interrupted
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["run"]["interrupted"] is True
    assert summary["totals"]["sessions_total"] == len(parsed.sessions)
    assert b"<html" in (out / "report.html").read_bytes()[:500].lower()
    return [s.status for s in parsed.sessions], summary


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, EXIT_TERMINATED), (signal.SIGHUP, EXIT_HANGUP)]
)
def test_one_signal_drains_and_running_sessions_finish(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    out = tmp_path / "out"
    proc = _start(out)
    try:
        _wait_for_turns(proc, out / "results.jsonl", 4)
        proc.send_signal(sig)
        err = _read_stderr_until(proc, b"draining")
        err += _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err.decode()[-2000:]
    statuses, summary = _check_outputs(out)
    # Drained: no new starts, every started session ran to its end (none cancelled).
    assert 4 <= len(statuses) < 200 and set(statuses) == {"completed"}
    assert summary["totals"]["sessions_completed"] == len(statuses)


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        (signal.SIGHUP, signal.SIGINT, EXIT_HANGUP),
        (signal.SIGTERM, signal.SIGTERM, EXIT_TERMINATED),
    ],
)
def test_second_signal_cancels_and_the_first_decides_the_exit_code(
    tmp_path: Path, first: signal.Signals, second: signal.Signals, code: int
) -> None:
    out = tmp_path / "out"
    proc = _start(out, "--linger-ms", "60000")  # sessions stay connected after answering
    try:
        _wait_for_turns(proc, out / "results.jsonl", 4)
        proc.send_signal(first)
        err = _read_stderr_until(proc, b"draining")
        assert proc.poll() is None  # draining: the lingering sessions have 60 s left
        proc.send_signal(second)
        err += _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err.decode()[-2000:]
    assert b"cancelling" in err
    statuses, summary = _check_outputs(out)
    assert statuses == ["cancelled"] * 4
    assert summary["totals"]["sessions_cancelled"] == 4
    turns = read_results(out / "results.jsonl").turns
    assert len(turns) == 4 and {t.response_status for t in turns} == {"completed"}


# ------------------------------------------------------------------------ in process


def test_exit_codes_are_128_plus_the_signal() -> None:
    assert exit_code_for_signal(signal.SIGINT) == EXIT_INTERRUPTED == 130
    assert exit_code_for_signal(signal.SIGTERM) == EXIT_TERMINATED == 143
    assert exit_code_for_signal(signal.SIGHUP) == EXIT_HANGUP == 129


def test_signals_outside_the_run_are_held_not_fatal() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignals()
    with held_stop_signals(stop):
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGHUP)
    assert stop.signals == [signal.SIGTERM, signal.SIGHUP] and stop.first == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_before_the_run_drains_it_at_once(tmp_path: Path) -> None:
    """A stop signal held before the run's receiver listened (``stop`` already has it):
    the run starts nothing, still writes ``run_end``, and reports that signal."""
    out = tmp_path / "out"
    args = build_parser().parse_args(
        ["run", "--sessions", "50", "--concurrency", "2", "--out", str(out), "--quiet", *QUICK]
    )
    setup = prepare(args)
    stop = StopSignals()
    stop.note(signal.SIGTERM)

    async def guarded(sink: JsonlSink) -> int | None:
        with trio.fail_after(GUARD_S):
            return await execute(setup, args, sink, stop)

    with JsonlSink(out / "results.jsonl") as sink:
        first = trio.run(guarded, sink)
    assert first == signal.SIGTERM
    meta = read_run_meta(out / "results.jsonl")
    assert meta.ended and meta.interrupted
    assert read_results(out / "results.jsonl").sessions == []
