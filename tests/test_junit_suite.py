"""Suite results from records (grouping, pass rates, the table) and their JUnit file (pure:
records in, values and XML out)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.metrics.failure import Failure
from orchestrator.metrics.junit import junit_classname, junit_tree, write_junit
from orchestrator.metrics.records import SessionResult, TurnRecord
from orchestrator.metrics.suite import SuiteScenario, suite_outcomes, suite_passed, suite_table

A = SuiteScenario(name="faq", file="examples/scenarios/faq_text.toml")
B = SuiteScenario(name="weather", file="suite/weather.toml")
EXPECTATION = "turn 0 (opening hours): expect_tool: lookup_faq was not called (calls: none)"


def session(
    sid: str, scenario: str, status: str = "completed", failure: Failure | None = None, **kw: object
) -> SessionResult:
    return SessionResult(
        session_id=sid,
        status=status,  # type: ignore[arg-type]
        scenario=scenario,
        label=scenario,
        failure=failure,
        reason=None if failure is None else str(failure),
        planned_start_s=1.0,
        t_end_s=3.5,
        **kw,  # type: ignore[arg-type]
    )


def turn(sid: str, v2v: float, ttfb: float) -> TurnRecord:
    return TurnRecord(
        session_id=sid,
        turn_index=0,
        t_start_s=1.0,
        t_end_s=2.0,
        voice_to_voice_ms=v2v,
        ttfb_ms=ttfb,
    )


SESSIONS = [
    session("s000000", "faq"),
    session("s000001", "weather", "failed", Failure(type="HandshakeRejected", message="HTTP 429")),
    session("s000002", "faq", "failed", Failure(type="ScenarioFailed", message=EXPECTATION)),
    session("s000003", "weather"),
    session("s000010", "faq"),
    session("s000004", "other"),  # not a scenario of this suite
]
TURNS = [turn("s000000", 800.0, 300.0), turn("s000002", 900.0, 400.0), turn("s000003", 1.0, 2.0)]


def test_records_group_into_runs_per_scenario_in_session_order() -> None:
    faq, weather = suite_outcomes([A, B], 3, TURNS, SESSIONS)
    assert [r.session_id for r in faq.runs] == ["s000000", "s000002", "s000010"]  # numeric order
    assert [r.index for r in faq.runs] == [0, 1, 2]
    assert [r.verdict for r in faq.runs] == ["passed", "failed", "passed"]
    assert faq.runs[1].failure_type == "ScenarioFailed" and faq.runs[1].message == EXPECTATION
    assert faq.passed == 2 and faq.pass_rate == 2 / 3
    assert faq.p95["voice_to_voice_ms"] == 895.0 and faq.p95["ttfb_ms"] == 395.0
    # weather ran twice of 3: the missing run is skipped; a refused handshake is an error
    assert [r.verdict for r in weather.runs] == ["error", "passed", "skipped"]
    assert weather.runs[2].session_id is None and weather.pass_rate == 1 / 3


def test_pass_rate_threshold_decides_each_scenario() -> None:
    faq, weather = suite_outcomes([A, B], 3, TURNS, SESSIONS)
    assert not faq.ok() and faq.ok(0.6) and not faq.ok(0.7)
    assert not suite_passed([faq, weather], 0.6) and suite_passed([faq], 0.6)
    empty = suite_outcomes([A], 0, [], [])[0]
    assert empty.runs == () and empty.pass_rate is None and not empty.ok(0.0)


def test_a_restarted_session_is_one_run_judged_by_its_last_attempt() -> None:
    first = session("s000000", "faq", "failed", Failure(type="ConnectionClosed"), attempt=0)
    second = session("s000000", "faq", attempt=1)
    (faq,) = suite_outcomes([A], 1, [], [second, first])
    assert len(faq.runs) == 1 and faq.runs[0].passed


def test_cancelled_sessions_are_skipped_runs() -> None:
    (faq,) = suite_outcomes([A], 1, [], [session("s000000", "faq", "cancelled")])
    assert faq.runs[0].verdict == "skipped" and "cancelled" in (faq.runs[0].message or "")


def test_table_lists_scenarios_and_the_failed_expectations() -> None:
    outcomes = suite_outcomes([A, B], 3, TURNS, SESSIONS)
    text = suite_table(outcomes, 0.6)
    lines = text.splitlines()
    assert lines[0].split() == ["scenario", "runs", "passed", "pass", "rate", "result",
                                "voice_to_voice", "p95", "ms", "ttfb", "p95", "ms"]  # fmt: skip
    assert lines[2].split() == ["faq", "3", "2", "67%", "PASS", "895", "395"]
    assert lines[3].split() == ["weather", "3", "1", "33%", "FAIL", "1", "2"]
    assert f"  faq #2 (s000002): ScenarioFailed: {EXPECTATION}" in lines
    assert "  weather #1 (s000001): HandshakeRejected: HTTP 429" in lines
    assert text.endswith("1 of 2 scenarios passed (pass rate >= 60%); 3 of 6 runs passed\n")
    assert "PASS" not in suite_table(outcomes)  # 100% needed by default


def test_junit_has_one_testcase_per_run_and_parses_back(tmp_path: Path) -> None:
    outcomes = suite_outcomes([A, B], 3, TURNS, SESSIONS)
    path = tmp_path / "reports" / "junit.xml"
    write_junit(path, outcomes, timestamp="2026-01-02T03:04:05")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "6", "failures": "1", "errors": "1", "skipped": "1"}  # fmt: skip
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["faq", "weather"]
    assert suites[0].get("tests") == "3" and suites[0].get("failures") == "1"
    assert suites[0].get("timestamp") == "2026-01-02T03:04:05"
    cases = root.findall("testsuite/testcase")
    assert len(cases) == 6
    assert cases[0].get("classname") == "examples.scenarios.faq_text"
    assert [c.get("name") for c in cases[:3]] == ["faq #1", "faq #2", "faq #3"]
    assert cases[0].get("time") == "2.500"
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("type") == "ScenarioFailed"
    assert failure.get("message") == EXPECTATION
    error = cases[3].find("error")
    assert error is not None and error.get("message") == "HTTP 429"
    assert cases[5].find("skipped") is not None
    out = cases[1].find("system-out")
    assert out is not None and "session s000002" in (out.text or "")


def test_junit_escapes_markup_and_drops_characters_xml_cannot_hold() -> None:
    nasty = 'transcript "<b>&</b>" with \x00 a NUL and \x1b escape\nand a newline'
    outcomes = suite_outcomes(
        [A], 1, [], [session("s000000", "faq", "failed", Failure(type="ScenarioFailed", message=nasty))]
    )
    root = junit_tree(outcomes).getroot()
    assert root is not None
    text = ET.tostring(root, encoding="unicode")
    failure = ET.fromstring(text).find("testsuite/testcase/failure")  # parses back
    assert failure is not None
    assert failure.get("message") == 'transcript "<b>&</b>" with ? a NUL and ? escape and a newline'
    assert failure.text == f"ScenarioFailed: {nasty.replace(chr(0), '?').replace(chr(27), '?')}"


def test_classname_is_the_file_as_a_dotted_name() -> None:
    assert junit_classname("examples/scenarios/faq_text.toml") == "examples.scenarios.faq_text"
    assert junit_classname("/abs/dir/x.json") == "abs.dir.x"
    assert junit_classname("../up/y.toml") == "up.y"
