"""The embedded server's log goes to a file in the run folder, never to the terminal
(where it would land above the live panel): its processes' stderr, and the in-process
server's logger. Rules: loopback only; a ``fail_after`` guard on every test that runs trio;
the child processes here are tiny Python one-liners."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import trio

from orchestrator.cli import main
from orchestrator.cli.target_process import (
    EmbeddedTarget,
    TargetError,
    in_process_log,
    serve_target,
)


def _python(code: str) -> list[str]:
    return [os.sys.executable, "-c", code]  # type: ignore[attr-defined]


async def test_a_child_that_fails_writes_its_stderr_to_the_log_and_the_error_quotes_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run" / "server.log"  # its folder is made
    code = "import sys; print('line one', file=sys.stderr); print('boom: no port', file=sys.stderr); sys.exit(3)"

    with trio.fail_after(30):
        with pytest.RaisesGroup(
            pytest.RaisesExc(TargetError, match=r"code 3 before it was ready \(log: .*server\.log; "
                             r"last lines: line one \| boom: no port\)"),
            allow_unwrapped=True, flatten_subgroups=True,
        ):  # fmt: skip
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda **kw: serve_target(lambda *_: _python(code), log=log, **kw))
    assert log.read_text() == "line one\nboom: no port\n"
    assert "boom" not in capfd.readouterr().err  # nothing on the terminal


async def test_a_running_child_logs_to_the_file_and_its_death_quotes_it(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("an earlier run\n")  # appended to, not replaced
    code = (
        "import sys; print('ready port=1 pid=1', flush=True); "
        "print('warning: handshake refused', file=sys.stderr, flush=True); "
        "sys.stdin.readline(); sys.exit(5)"
    )
    with trio.fail_after(30):
        with pytest.RaisesGroup(
            pytest.RaisesExc(TargetError, match="exited during the run with code 5.*handshake refused"),
            allow_unwrapped=True, flatten_subgroups=True,
        ):  # fmt: skip
            async with trio.open_nursery() as nursery:
                target = await nursery.start(
                    lambda **kw: serve_target(lambda *_: _python(code), log=log, **kw)
                )
                await target.mark_start()  # the child reads one line, then exits 5
                await trio.sleep_forever()
    assert log.read_text() == "an earlier run\nwarning: handshake refused\n"


def test_the_in_process_servers_warnings_go_to_the_log_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("orchestrator.mockserver")
    before = (logger.level, logger.propagate, list(logger.handlers))
    log = tmp_path / "out" / "server.log"
    target = EmbeddedTarget(in_process=True, processes=1, groundtruth=[], log=log)
    with in_process_log(target):
        logger.warning("handshake refused: HTTP %d (%s)", 429, "fault_429")
        logger.debug("not at this level")
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    text = log.read_text()
    assert "WARNING orchestrator.mockserver: handshake refused: HTTP 429 (fault_429)" in text
    assert "not at this level" not in text
    assert "handshake refused" not in capsys.readouterr().err
    children = EmbeddedTarget(in_process=False, processes=1, groundtruth=[], log=log)
    for other in (None, children):  # --url; server processes (their stderr goes to the file)
        with in_process_log(other):
            assert (logger.level, logger.propagate, list(logger.handlers)) == before


@pytest.mark.parametrize("mode", [["--server-in-process"], []])
def test_a_runs_server_log_is_in_its_folder_not_on_the_terminal(
    mode: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    # audio frames over the server's message size: it closes with 1009 and logs a warning
    argv = ["run", "--sessions", "1", "--concurrency", "1", "--out", str(out), "--quiet",
            "--speech-ms", "300", "--lead-ms", "0", "--tail-ms", "300", "--chunk-ms", "200",
            "--server-max-message-size", "1024", *mode]  # fmt: skip
    assert main(argv) == 0  # the session failed, the run was done
    err = capfd.readouterr().err
    assert "1009" in err  # the run's own warning: every session failed
    assert "oversized message" not in err
    assert "connection 0: oversized message, closed with 1009" in (out / "server.log").read_text()


async def test_nothing_logged_leaves_no_log_file(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    code = "import sys; print('ready port=1 pid=1', flush=True); sys.stdin.readline()"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda **kw: serve_target(lambda *_: _python(code), log=log, **kw))
            nursery.cancel_scope.cancel()  # stdin closed: the child exits 0, silent
    assert not log.exists()
