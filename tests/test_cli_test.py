"""``orchestrator test``: PATH expansion, pass rates and parts (pure), then end to end on the
embedded server in-process (loopback, port 0): the examples pass with one JUnit testcase per
run, an impossible expectation exits 3 with a ``<failure>`` naming it, and nothing runs when
an argument is wrong."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli.test import SuiteError, expand_paths, parts_of, pass_rate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"

TEXT_SCENARIO = """\
name = "{name}"

[session]
output_modality = "text"
turn_detection = "none"

[[turns]]
label = "question"
say = "What are your opening hours?"
{expect}
"""


def scenario(folder: Path, name: str, expect: str = "", greeting: str | None = None) -> Path:
    path = folder / f"{name}.toml"
    text = TEXT_SCENARIO.format(name=name, expect=expect)
    if greeting is not None:
        text += f'\n[server]\ngreeting = "{greeting}"\n'
    path.write_text(text)
    return path


def test_paths_expand_to_files_folders_and_globs_each_once(tmp_path: Path) -> None:
    a = scenario(tmp_path, "a")
    sub = tmp_path / "sub"
    sub.mkdir()
    b, c = scenario(sub, "b"), scenario(sub, "c")
    (sub / "notes.txt").write_text("not a scenario")
    assert expand_paths([str(sub)]) == [b, c]  # a folder: its *.toml, sorted
    assert expand_paths([str(tmp_path / "**" / "*.toml")]) == [a, b, c]
    assert expand_paths([str(c), str(sub), str(a)]) == [c, b, a]  # in order, each once
    with pytest.raises(SuiteError) as info:
        expand_paths([str(tmp_path / "nope.toml"), str(tmp_path / "*.json"), str(a), str(sub / "x")])
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'nope.toml'}: no such file or folder",
        f"{tmp_path / '*.json'}: no file matches this pattern",
        f"{sub / 'x'}: no such file or folder",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SuiteError, match="a folder without"):
        expand_paths([str(empty)])


@pytest.mark.parametrize(("text", "value"), [("0.9", 0.9), ("90%", 0.9), ("1", 1.0), ("0%", 0.0)])
def test_pass_rates_are_fractions_or_percentages(text: str, value: float) -> None:
    assert pass_rate(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["90", "1.5", "-0.1", "110%", "nan", "most"])
def test_bad_pass_rates_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        pass_rate(text)


def test_scenarios_with_different_greetings_run_as_parts(tmp_path: Path) -> None:
    files = [scenario(tmp_path, "a"), scenario(tmp_path, "b", greeting="Hi"),
             scenario(tmp_path, "c"), scenario(tmp_path, "d", greeting="Hi")]  # fmt: skip
    parts = parts_of(files, embedded=True)
    assert [[s.name for s in p] for p in parts] == [["a", "c"], ["b", "d"]]
    assert parts[0][1].file == str(files[2])
    assert len(parts_of(files, embedded=False)) == 1  # a real server greets as it does


def test_bad_files_and_shared_names_are_refused_together(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("name = \n")
    other = tmp_path / "other"
    other.mkdir()
    files = [tmp_path / "bad.toml", scenario(tmp_path, "a"), scenario(other, "a")]
    with pytest.raises(SuiteError) as info:
        parts_of(files, embedded=True)
    text = str(info.value)
    assert "bad.toml" in text and "are both named 'a'" in text


QUICK = ["--server-in-process", "--server-ttfb-ms", "fixed:20", "--server-realtime-factor", "0",
         "--progress", "off"]  # fmt: skip


def _junit_cases(path: Path) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return root.findall("testsuite/testcase")


def test_the_examples_pass_with_one_testcase_per_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit, out = tmp_path / "j.xml", tmp_path / "out"
    argv = ["test", str(EXAMPLES), "--junit", str(junit), "--out", str(out)]
    # the server's own pace (QUICK's instant answers leave nothing to barge in on)
    assert main([*argv, "--server-in-process", "--server-ttfb-ms", "fixed:20", "--progress", "off"]) == 0
    names = sorted(p.stem for p in EXAMPLES.glob("*.toml"))
    cases = _junit_cases(junit)
    assert len(cases) == len(names)
    assert all(c.find("failure") is None and c.find("error") is None for c in cases)
    classnames = {c.get("classname", "").rsplit(".", 1)[1] for c in cases}
    assert classnames == set(names)
    printed = capsys.readouterr().out
    assert f"{len(names)} of {len(names)} scenarios passed; {len(names)} of" in printed
    # the greeting scenario needs its own embedded server: two parts, each a run's folder
    parts = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert parts == ["part-1", "part-2"]
    for part in parts:
        assert (out / part / "results.jsonl").exists() and (out / part / "report.html").exists()
        assert (out / part / "summary.json").exists()


def test_an_impossible_expectation_exits_3_with_its_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = scenario(tmp_path, "good")
    bad = scenario(tmp_path, "impossible", 'expect_transcript_regex = "never said by anyone"')
    junit, out = tmp_path / "j.xml", tmp_path / "out"
    argv = ["test", str(good), str(bad), "--junit", str(junit), "--out", str(out), "--repeat", "3"]
    assert main([*argv, "--tag", "env=ci", *QUICK]) == 3
    cases = _junit_cases(junit)
    assert [c.get("name") for c in cases] == [f"{n} #{i}" for n in ("good", "impossible")
                                             for i in (1, 2, 3)]  # fmt: skip
    failures = [c.find("failure") for c in cases[3:]]
    assert all(f is not None and f.get("type") == "ScenarioFailed" for f in failures)
    message = failures[0].get("message", "")  # type: ignore[union-attr]
    assert message.startswith("turn 0 (question): expect_transcript_regex: assistant transcript")
    assert "/never said by anyone/" in message
    captured = capsys.readouterr()
    assert "impossible #1 (s0000" in captured.out and "scenarios failed: impossible" in captured.err
    # one run: the same results.jsonl and summary as 'orchestrator run'
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["totals"]["sessions_total"] == 6
    sessions = [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    sessions = [r for r in sessions if r["kind"] == "session"]
    assert len(sessions) == 6 and all(r["tags"] == {"env": "ci"} for r in sessions)
    # flaky by nature: a pass rate of 50% passes the good one, not the impossible one
    again = [*argv, "--overwrite", "--min-pass-rate", "50%", *QUICK]
    assert main(again) == 3
    # thresholds as in 'run': 2 wins over 3
    assert main([*argv, "--overwrite", "--threshold", "ttfb_ms.p95<0.001", *QUICK]) == 2


def test_nothing_runs_when_an_argument_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = scenario(tmp_path, "good")
    out = tmp_path / "out"
    for argv in (
        [str(good), str(tmp_path / "missing.toml")],
        [str(good), "--threshold", "nonsense_ms.p95<3"],
        [str(good), "--min-pass-rate", "120%"],
        [str(good), "--url", "ws://127.0.0.1:1/v1", "--server-ttfb-ms", "5"],
    ):
        assert main(["test", *argv, "--out", str(out)]) == 1
        assert "orchestrator test" in capsys.readouterr().err
    assert not out.exists()
