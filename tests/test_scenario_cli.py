"""``orchestrator run SCENARIO`` end to end (embedded server, real loopback sockets).

Text-only scenarios keep these runs short: no audio is paced in real time.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import build_parser, main
from orchestrator.cli.mix import MixEntry, parse_mix_arg
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.metrics import read_results

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
FAST = ["--server-ttfb-ms", "20", "--server-realtime-factor", "0", "--quiet"]
STRICT = ["--threshold", "session_error_rate<0.01"]


def test_passing_scenario_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [str(EXAMPLES / "faq_text.toml"), "--sessions", "4", "--concurrency", "2"]
    assert main(["run", *argv, "--out", str(out), *FAST, *STRICT]) == 0
    results = read_results(out / "results.jsonl")
    assert [s.status for s in results.sessions] == ["completed"] * 4
    assert {s.label for s in results.sessions} == {"faq-text"}
    assert sorted(t.label or "" for t in results.turns) == ["opening hours"] * 4 + ["thanks"] * 4
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["config"]["scenario"] == "faq-text"
    assert summary["config"]["scenario_file"] == str(EXAMPLES / "faq_text.toml")


def test_failed_expectation_fails_sessions_and_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "faq_text.toml").read_text()
    text = text.replace(
        'expect_tool_args = { topic = "opening_hours" }', 'expect_tool_args = { topic = "returns" }'
    )
    path = tmp_path / "faq_wrong.toml"
    path.write_text(text)
    out = tmp_path / "out"
    argv = ["run", str(path), "--sessions", "3", "--concurrency", "3", "--out", str(out)]
    assert main([*argv, *FAST, *STRICT]) == 2
    assert "session_error_rate<0.01" in capsys.readouterr().err
    results = read_results(out / "results.jsonl")
    reason = (
        "ScenarioFailed: turn 0 (opening hours): expect_tool_args: no lookup_faq call has "
        'arguments containing {"topic":"returns"} (topic is "opening_hours", expected "returns")'
    )
    assert [(s.status, s.reason) for s in results.sessions] == [("failed", reason)] * 3
    # the script stopped at the failing turn; that turn itself went fine on the wire
    assert [t.status for t in results.turns] == ["completed"] * 3
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["sessions"]["failure_reasons"] == {reason: 3}
    # without a threshold the exit code only says the run itself worked
    assert main([*argv[:-1], str(tmp_path / "again"), *FAST]) == 0


def test_invalid_scenario_exits_1_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[[turns]]\nsay = "hi"\nexpect_tool_args = "city"\n')
    out = tmp_path / "never"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"scenario {path}: turns[0].expect_tool_args: expected a table, got a string" in err
    assert not out.exists()


def test_scenario_options_are_checked_before_the_run(tmp_path: Path) -> None:
    faq = str(EXAMPLES / "faq_text.toml")
    with pytest.raises(UsageError, match="--voice is for the built-in conversation"):
        prepare(build_parser().parse_args(["run", faq, "--voice", "alloy"]), env={})
    setup = prepare(build_parser().parse_args(["run", faq]), env={})
    (rule,) = setup.server_config.tool_rules
    assert (rule.tool, orjson.loads(rule.arguments)) == ("lookup_faq", {"topic": "opening_hours"})
    remote = prepare(
        build_parser().parse_args(["run", faq, "--url", "ws://127.0.0.1:9/v1"]), env={}
    )
    assert remote.server_config is None  # server hints only shape the embedded server


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([str(EXAMPLES)],
         f"scenario {EXAMPLES}: a folder, not a scenario file ('orchestrator test {EXAMPLES}' "
         "runs a folder)"),
        ([f"{EXAMPLES / 'faq_text.toml'}:abc"],
         f"{EXAMPLES / 'faq_text.toml'}:abc: the weight must be a whole number >= 1, got 'abc'"),
        (["--out", "exists.wav"], "--out exists.wav: a file, not a directory"),
        (["--provider", "azure"], "--provider needs --url (the default target is embedded)"),
        (["--provider", "azure", "--api-version", "1"], "--provider, --api-version need --url"),
        (["--url", "ws://127.0.0.1:9/v1", "--server-ttfb-ms", "5"],
         "--server-ttfb-ms only applies to the embedded server (no --url)"),
        (["--url", "ws://127.0.0.1:9/v1", "--server-ttfb-ms", "5", "--server-in-process"],
         "--server-ttfb-ms, --server-in-process only apply to the embedded server"),
        (["--voice-noise", "pink"], "--voice-noise needs --speak TEXT"),
    ],
)  # fmt: skip
def test_usage_messages_say_what_is_wrong(
    argv: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists.wav").write_bytes(b"")
    assert main(["run", *argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"orchestrator run: error: {says}"), err
    assert [p.name for p in tmp_path.iterdir()] == ["exists.wav"]  # nothing ran


def test_a_colon_in_a_real_file_name_is_not_a_weight(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml:abc"
    path.write_text((EXAMPLES / "faq_text.toml").read_text())
    assert parse_mix_arg(str(path)) == MixEntry(str(path), 1)
