"""``orchestrator run`` end to end on the embedded server (real loopback sockets).

Kept few and small: each run is a handful of short conversations (user audio sent 4x
faster than real time, answers streamed as fast as possible).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import build_parser, main
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.metrics import ThresholdError, read_results
from orchestrator.supervisor import ClosedModel, OpenModel, PlanError, read_run_meta

QUICK = [
    "--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100",
    "--realtime-factor", "4", "--server-realtime-factor", "0", "--server-ttfb-ms", "50",
    "--quiet",
]  # fmt: skip


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_run_writes_all_outputs_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "--sessions", "6", "--concurrency", "3", "--out", str(out), *QUICK]) == 0
    assert {p.name for p in out.iterdir()} == {
        "results.jsonl", "summary.json", "summary.csv", "report.html", "groundtruth.jsonl",
    }  # fmt: skip
    results = read_results(out / "results.jsonl")
    assert len(results.sessions) == 6 and {s.status for s in results.sessions} == {"completed"}
    assert len(results.turns) == 6 and not results.truncated
    summary = orjson.loads((out / "summary.json").read_bytes())
    for metric in ("voice_to_voice_ms", "ttfb_ms"):
        stats = summary["metrics"][metric]
        assert stats["count"] == 6 and all(stats[p] is not None for p in ("p50", "p95", "p99"))
    assert summary["config"]["load"] == {
        "model": "closed", "concurrency": 3, "ramp_up_s": 0.0, "sessions": 6, "duration_s": None,
    }  # fmt: skip
    assert summary["validity"]["valid"] in (True, False)  # judged, whatever this box's load
    meta = read_run_meta(out / "results.jsonl")
    assert meta.ended and not meta.interrupted


def test_failed_threshold_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["run", "--sessions", "2", "--concurrency", "2", "--out", str(out), *QUICK]
    code = main([*argv, "--threshold", "ttfb_ms.p95<1", "--threshold", "session_error_rate<0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "ttfb_ms.p95<1" in err and "session_error_rate" not in err
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert [t["ok"] for t in summary["thresholds"]] == [False, True]


@pytest.mark.parametrize(
    ("argv", "error", "needle"),
    [
        (["--threshold", "voice_to_voice_ms.p95<"], ThresholdError, "voice_to_voice_ms.p95<"),
        (["--threshold", "nonsense_ms.p95<3"], ThresholdError, "nonsense_ms"),
        (["--rate", "5"], UsageError, "--duration"),
        (["--rate", "5", "--duration", "2", "--concurrency", "3"], UsageError, "--max-concurrency"),
        (["--rate-to", "5"], UsageError, "--rate"),
        (["--url", "ws://127.0.0.1:1/v1", "--server-ttfb-ms", "5"], UsageError, "--server-ttfb-ms"),
        (["--api-key-env", "X"], UsageError, "--url"),
        (["--url", "ws://127.0.0.1:1/v1", "--api-key-env", "NOPE_KEY"], UsageError, "NOPE_KEY"),
        (["--url", "ftp://example"], UsageError, "--url"),
        (["--server-ttfb-ms", "bogus:1"], UsageError, "--server-ttfb-ms: distribution 'bogus:1'"),
        (["my_script.json"], UsageError, "my_script.json"),
        (["--rate", "0", "--duration", "-1"], SystemExit, ""),
    ],
)
def test_bad_arguments_are_rejected_before_running(
    argv: list[str], error: type[BaseException], needle: str
) -> None:
    with pytest.raises(error) as info:
        prepare(parse(*argv), env={})
    assert needle in str(info.value)


def test_bad_arguments_exit_1_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    assert main(["run", "--out", str(out), "--threshold", "ttfb_ms.p95<"]) == 1
    assert "threshold" in capsys.readouterr().err
    assert not out.exists()


def test_load_options_build_the_models() -> None:
    closed = prepare(parse("--concurrency", "25", "--sessions", "50"), env={}).model
    assert closed == ClosedModel(concurrency=25, sessions=50)
    assert prepare(parse(), env={}).model == ClosedModel(concurrency=10, sessions=10)
    open_ = prepare(parse("--rate", "20", "--duration", "10", "--poisson"), env={}).model
    assert isinstance(open_, OpenModel) and open_.poisson and open_.duration_s == 10
    ramp = prepare(parse("--rate", "1", "--rate-to", "5", "--ramp", "3", "--duration", "6"), env={})
    assert ramp.model == OpenModel(rate=1, rate_to=5, ramp_s=3, duration_s=6)
    assert prepare(parse("--rate", "4", "--sessions", "8"), env={}).model.duration_s == 2.0
    with pytest.raises(PlanError):
        prepare(parse("--rate", "1", "--ramp", "2", "--duration", "3"), env={})


def test_api_key_is_never_stored(tmp_path: Path) -> None:
    setup = prepare(
        parse("--url", "ws://127.0.0.1:9/v1", "--api-key-env", "MY_KEY"),
        env={"MY_KEY": "sk-test-secret-value-123"},
    )
    assert "sk-test" not in orjson.dumps(setup.config).decode()
    assert setup.config["api_key_env"] == "MY_KEY"


def test_all_sessions_failing_says_why_on_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's reproduction: a server wanting another key. The reason (HTTP 401) is
    on stdout with its count and on stderr as a warning; the key is printed nowhere; the
    exit code stays 0 (no threshold) and is 2 with a session_error_rate threshold."""
    secret = "sk-wrong-key-0123456789abcdef"
    monkeypatch.setenv("AUDIT_KEY", secret)
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--api-key", "K"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)  # guard: the server starts
        assert ready, "orchestrator serve printed nothing within 30 s"
        banner = proc.stdout.readline()  # "mock realtime server on ws://127.0.0.1:PORT/v1/..."
        url = banner.split(" on ", 1)[1].split("/realtime", 1)[0]
        assert url.startswith("ws://127.0.0.1:"), banner
        argv = ["run", "--url", url, "--api-key-env", "AUDIT_KEY", "--sessions", "3",
                "--progress", "plain", "--max-session-s", "20"]  # fmt: skip
        assert main([*argv, "--out", str(tmp_path / "a")]) == 0
        out, err = capsys.readouterr()
        code = main([*argv, "--out", str(tmp_path / "b"), "--threshold", "session_error_rate<0.01"])
        out_b, err_b = capsys.readouterr()
    finally:
        proc.kill()
        proc.wait()
    assert "3 failed" in out
    assert "session failure reasons:" in out
    assert "  3 x HandshakeRejected: websocket handshake rejected with HTTP 401" in out
    warning = [line for line in err.splitlines() if line.startswith("WARNING: all 3 sessions")]
    assert len(warning) == 1 and "HTTP 401" in warning[0], err
    assert "last error: HandshakeRejected" in err  # the plain progress line
    assert code == 2 and "thresholds failed: session_error_rate<0.01" in err_b
    for text in (out, err, out_b, err_b):
        assert secret not in text


def test_existing_run_folder_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["run", "--sessions", "1", "--out", str(out), *QUICK]) == 0  # no results yet
    before = (out / "results.jsonl").read_bytes()
    assert main(["run", "--sessions", "2", "--out", str(out), *QUICK]) == 1
    err = capsys.readouterr().err
    assert f"orchestrator run: error: --out {out}: already holds the results of a run" in err
    assert "--overwrite" in err
    assert (out / "results.jsonl").read_bytes() == before  # untouched, nothing started
    with pytest.raises(UsageError, match="--overwrite"):
        prepare(parse("--out", str(out)), env={})
    assert prepare(parse("--out", str(out), "--overwrite"), env={}).out_dir == out
    assert main(["run", "--sessions", "2", "--out", str(out), "--overwrite", *QUICK]) == 0
    assert len(read_results(out / "results.jsonl").sessions) == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_server_option_errors_have_one_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--server-ttfb-ms", "lognormal:350"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("orchestrator run: error: --server-ttfb-ms: distribution ")
    assert "--server-* option" not in err
    assert err.endswith("e.g. lognormal:350:0.25")
    # a value the server itself refuses names the option too, not "--server-*"
    assert main(["run", "--server-audio-chunk-ms", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "orchestrator run: error: --server-audio-chunk-ms: audio_chunk_ms must be in 10..5000"
    )


def test_openai_without_key_names_the_cli_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--url", "wss://api.example.invalid/v1", "--provider", "openai"]
    with pytest.raises(UsageError) as info:
        prepare(parse(*argv[1:]), env={})
    message = str(info.value)
    assert "--api-key-env NAME" in message and "OPENAI_API_KEY" in message
    assert "pass api_key" not in message
    azure = ["--url", "https://r.example.invalid", "--provider", "azure", "--deployment", "d"]
    with pytest.raises(UsageError, match="AZURE_OPENAI_API_KEY"):
        prepare(parse(*azure), env={})
    assert prepare(parse(*argv[1:]), env={"OPENAI_API_KEY": "k"}).target_kwargs["api_key"] is None


def test_ctrl_c_drains_then_cancels_and_keeps_results(tmp_path: Path) -> None:
    """SIGINT to a real ``orchestrator run``: the first press drains, the second cancels;
    results.jsonl stays valid, summary.json is written, exit code 130."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "orchestrator", "run", "--sessions", "200", "--concurrency", "4",
        "--linger-ms", "60000", "--grace-s", "60", "--out", str(out), "--progress", "plain", *QUICK[:-1],
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        results = out / "results.jsonl"
        while time.monotonic() < deadline:  # wait until the 4 sessions have answered
            if results.exists() and results.read_bytes().count(b'"kind":"turn"') >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no turn finished within 30 s")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # draining: lingering sessions may still finish
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"draining" in err and b"cancelling" in err
    parsed = read_results(results)
    assert not parsed.truncated
    assert len(parsed.sessions) == 4 and {s.status for s in parsed.sessions} == {"cancelled"}
    assert len(parsed.turns) == 4 and {t.response_status for t in parsed.turns} == {"completed"}
    meta = read_run_meta(results)
    assert meta.ended and meta.interrupted
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["totals"]["sessions_cancelled"] == 4
    assert summary["run"]["interrupted"] is True


def test_the_api_key_is_not_shipped_to_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.cli.run_fleet import RunSpecs
    from orchestrator.cli.run_setup import build_target
    from orchestrator.fleet.job import WorkerJob, WorkOrder, dumps_order, loads_order

    secret = "sk-test-secret-value-456"
    monkeypatch.setenv("MY_KEY", secret)
    args = parse("--url", "ws://127.0.0.1:9/v1", "--api-key-env", "MY_KEY",
                 "--out", str(tmp_path / "r"))  # fmt: skip
    setup = prepare(args)
    target = build_target(setup.target_kwargs)
    specs = RunSpecs.of(setup, target, args, dict(setup.target_kwargs))
    assert specs(0).target.api_key.reveal() == secret  # the coordinator's own
    job = WorkerJob(model=setup.model, spec=specs, driver=setup.conversation, restart=setup.restart)
    data = dumps_order(WorkOrder(job=job, worker=0, workers=2))
    assert secret.encode() not in data
    shipped = loads_order(data).job.spec
    assert shipped(1).target.api_key.reveal() == secret  # resolved from the environment
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(UsageError, match="MY_KEY"):
        loads_order(data).job.spec(1)


def test_workers_default_to_none_so_ray_workers_1_means_one() -> None:
    from orchestrator.cli.run_fleet import wants_fleet

    assert parse().workers is None and not wants_fleet(parse())
    assert parse("--workers", "1").workers == 1 and not wants_fleet(parse("--workers", "1"))
    assert parse("--ray", "--workers", "1").workers == 1
    assert wants_fleet(parse("--ray")) and parse("--ray").workers is None
