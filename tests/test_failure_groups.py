"""Failure reasons grouped by type, code and a template with ids, numbers and quoted
transcripts stripped (the full text stays in the records); the built-in conversation's
failures carry the turn's own type instead of a generic ``ScenarioFailed``."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing
from session_helpers import memory_factory, server_config

from orchestrator.metrics import (
    ErrorRecord,
    SessionResult,
    TurnRecord,
    build_summary,
    summary_text,
)
from orchestrator.metrics.failure import Failure, failure_template, group_failures
from orchestrator.mockserver import FaultConfig, MockServer
from orchestrator.scenario import BuiltinConversation, ScenarioFailed, voice_session_config
from orchestrator.scenario.builtin import Unanswered
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ListSink, RestartPolicy, RestartType, open_supervisor
from orchestrator.transport import HandshakeRejected


@pytest.mark.parametrize(
    ("text", "template"),
    [
        (
            "response resp_CAbc123 failed for item item_9xYz and call_77; sess_Q1 event_Zz",
            "response resp_… failed for item item_… and call_…; sess_… event_…",
        ),
        (
            'turn 1 (ask): user transcript "what is the weather in Paris?" does not match /x/',
            "turn <n> (ask): user transcript '…' does not match /x/",
        ),
        ("assistant transcript 'It is 18 degrees' is wrong", "assistant transcript '…' is wrong"),
        (
            "id 3f2b8c1e-1234-4abc-9def-0123456789ab trace 0a1b2c3d4e5f6789 took 12.5 ms",
            "id <uuid> trace <hex> took <n> ms",
        ),
        ("  spaced\n  out  ", "spaced out"),
        (
            'HTTP 429: {"error":{"message":"Slow down","code":"rate_limit_exceeded"}} (x)',
            "HTTP <n>: {…} (x)",
        ),
    ],
)
def test_failure_template(text: str, template: str) -> None:
    assert failure_template(text) == template


def test_groups_largest_first_with_the_first_example() -> None:
    groups = group_failures(
        [
            ("turn", "ServerError", "server_error", "boom in resp_1"),
            ("session", "HandshakeRejected", "429", "HandshakeRejected: HTTP 429 rejected"),
            ("turn", "ServerError", "server_error", "boom in resp_2"),
            ("turn", "ServerError", "other", "boom in resp_3"),
            ("turn", "ServerError", "server_error", "boom in resp_4"),
        ]
    )
    assert [(g.scope, g.code, g.count) for g in groups] == [
        ("turn", "server_error", 3),
        ("session", "429", 1),
        ("turn", "other", 1),
    ]
    assert groups[0].template == "boom in resp_…" and groups[0].example == "boom in resp_1"
    assert (groups[0].distinct, groups[1].distinct) == (3, 1)
    # a reason's leading "Type: " is not repeated in the template
    assert groups[1].template == "HTTP <n> rejected"
    assert len(group_failures([("turn", "t", None, str(i)) for i in range(3)], top=1)) == 1


def test_failure_packs_its_code_and_own_type() -> None:
    refused = Failure.from_exception(HandshakeRejected(429, "slow down"), "link")
    assert (refused.type, refused.code) == ("HandshakeRejected", "429")
    unanswered = Failure.from_exception(Unanswered("turn 0 failed", "ServerError", "x"))
    assert (unanswered.type, unanswered.code) == ("ServerError", "x")
    assert isinstance(Unanswered("m", "t", None), ScenarioFailed)  # still a scenario failure


def test_summary_failure_groups_and_legacy_reasons() -> None:
    transcript = "what is the weather in {}?"
    sessions = [
        SessionResult(
            session_id=f"s{i}",
            status="failed",
            planned_start_s=0.0,
            t_end_s=1.0,
            reason=f"ScenarioFailed: user transcript '{transcript.format(city)}' does not match",
            failure=Failure(type="ScenarioFailed", message="..."),
        )  # fmt: skip
        for i, city in enumerate(["Paris", "Rome", "Oslo"])
    ]
    turns = [
        TurnRecord(
            session_id="s0",
            turn_index=0,
            t_start_s=0.0,
            t_end_s=1.0,
            status="failed",
            errors=(
                ErrorRecord(code="server_error", message=f"failed resp_{i}", event_type="error"),
            ),
        )  # fmt: skip
        for i in range(2)
    ]
    summary = build_summary(turns, sessions)
    groups = summary["failure_groups"]
    assert groups == [
        {
            "scope": "session",
            "type": "ScenarioFailed",
            "code": None,
            "template": "user transcript '…' does not match",
            "count": 3,
            "example": sessions[0].reason,
            "distinct": 3,
        },
        {
            "scope": "turn",
            "type": "ServerError",
            "code": "server_error",
            "template": "server_error: failed resp_…",
            "count": 2,
            "example": "server_error: failed resp_0",
            "distinct": 2,
        },
    ]
    text = summary_text(summary)
    assert "  3 x ScenarioFailed: user transcript '…' does not match" in text.splitlines()
    # a group whose failures all said the same is shown with its full text
    same = [attrs.evolve(s, reason=sessions[0].reason) for s in sessions]
    assert f"  3 x {sessions[0].reason}" in summary_text(build_summary([], same)).splitlines()
    # the full reasons stay listed as before
    assert len(summary["sessions"]["failure_reasons"]) == 3
    assert summary["sessions"]["failure_types"] == {"ScenarioFailed": 3}


async def test_builtin_conversation_failure_has_the_turns_type(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = server_config(faults=FaultConfig(error_probability=1.0))
    spec = SessionSpec(
        connect=memory_factory(config, server=MockServer(config)), config=voice_session_config()
    )
    conversation = BuiltinConversation(speech_ms=400, lead_ms=100, tail_ms=100)
    sink = ListSink()
    with trio.fail_after(60):
        async with open_supervisor(
            sink=sink, restart=RestartPolicy(RestartType.TEMPORARY), timeline_interval_s=None
        ) as sup:
            await sup.start_nowait(spec, conversation).wait()
    (result,) = sink.sessions
    assert result.status == "failed" and result.failure is not None
    assert (result.failure.type, result.failure.code) == ("ServerError", "server_error")
    summary = build_summary(sink.turns, sink.sessions)
    assert summary["sessions"]["failure_types"] == {"ServerError": 1}
    assert [(g["scope"], g["type"]) for g in summary["failure_groups"]] == [
        ("session", "ServerError"),
        ("turn", "ServerError"),
    ]
