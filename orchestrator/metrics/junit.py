"""A suite's results as a JUnit XML file (``orchestrator test --junit FILE``).

The layout is the common subset that Jenkins (junit plugin), GitLab (``artifacts:reports:
junit``) and GitHub test reporters read::

    <testsuites name="orchestrator test" tests= failures= errors= skipped= time=>
      <testsuite name="SCENARIO" tests= failures= errors= skipped= time= timestamp=>
        <testcase classname="examples.scenarios.faq_text" name="faq-text #1" time=>
          <failure message="turn 0 (…): expect_tool: …" type="ScenarioFailed">…</failure>
          <system-out>session s000003 …</system-out>
        </testcase>

One ``<testsuite>`` per scenario, one ``<testcase>`` per run of it (see
:mod:`orchestrator.metrics.suite`): ``classname`` is the scenario file without its suffix,
path separators as dots (Jenkins reads it as package.class); ``name`` the scenario name and
the run's 1-based index. A failed expectation is a ``<failure>`` (its message: the
expectation and what happened instead), any other session failure an ``<error>``, a
cancelled or never-started run ``<skipped>``. ``time`` is seconds, planned session start
to end. Built with :mod:`xml.etree.ElementTree` (escaping is its job); characters XML 1.0
does not allow (control characters in a transcript) are replaced by ``?``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import PurePath

from orchestrator.metrics.suite import RunOutcome, ScenarioOutcome

__all__ = ["junit_classname", "junit_tree", "write_junit"]

#: Longest ``message`` attribute (the element's text has the whole failure).
MESSAGE_CHARS = 1000

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ELEMENT = {"failed": "failure", "error": "error", "skipped": "skipped"}


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", text)


def junit_classname(file: str) -> str:
    """``examples/scenarios/faq_text.toml`` -> ``examples.scenarios.faq_text``."""
    path = PurePath(file)
    parts = [p for p in path.with_suffix("").parts if p not in ("/", ".", "..")]
    return ".".join(parts) or file


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _counts(runs: Sequence[RunOutcome]) -> dict[str, str]:
    return {
        "tests": str(len(runs)),
        "failures": str(sum(r.verdict == "failed" for r in runs)),
        "errors": str(sum(r.verdict == "error" for r in runs)),
        "skipped": str(sum(r.verdict == "skipped" for r in runs)),
        "time": _seconds(sum(r.duration_s or 0.0 for r in runs)),
    }


def _testcase(parent: ET.Element, outcome: ScenarioOutcome, run: RunOutcome) -> None:
    case = ET.SubElement(
        parent,
        "testcase",
        classname=junit_classname(outcome.scenario.file),
        name=f"{outcome.scenario.name} #{run.index + 1}",
        time=_seconds(run.duration_s),
    )
    if not run.passed:
        message = " ".join((run.message or "").split())
        element = ET.SubElement(
            case,
            _ELEMENT[run.verdict],
            message=_xml_text(message[:MESSAGE_CHARS]),
            type=_xml_text(run.failure_type or ""),
        )
        element.text = _xml_text(f"{run.failure_type}: {run.message}")
    out = ET.SubElement(case, "system-out")
    session = run.session_id or "(not started)"
    out.text = _xml_text(f"session {session}\nscenario file {outcome.scenario.file}\n")


def junit_tree(
    outcomes: Sequence[ScenarioOutcome],
    *,
    name: str = "orchestrator test",
    timestamp: str | None = None,
) -> ET.ElementTree:
    """The JUnit document of ``outcomes``; ``timestamp`` (ISO 8601) goes on every
    ``<testsuite>`` when given."""
    root = ET.Element("testsuites", {"name": name, **_counts([r for o in outcomes for r in o.runs])})
    for outcome in outcomes:
        suite = ET.SubElement(
            root, "testsuite", {"name": outcome.scenario.name, **_counts(outcome.runs)}
        )
        if timestamp is not None:
            suite.set("timestamp", timestamp)
        for run in outcome.runs:
            _testcase(suite, outcome, run)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(
    path: str | os.PathLike[str],
    outcomes: Sequence[ScenarioOutcome],
    *,
    timestamp: str | None = None,
) -> None:
    """Write :func:`junit_tree` of ``outcomes`` to ``path`` (UTF-8, with an XML
    declaration), creating its folder. Raises ``OSError`` when it cannot be written."""
    target = PurePath(path)
    os.makedirs(target.parent, exist_ok=True)
    junit_tree(outcomes, timestamp=timestamp).write(path, encoding="utf-8", xml_declaration=True)
