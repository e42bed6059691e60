"""Connection accounting: handshake attempts, refusals by HTTP status, reconnects and
restarts as their own counters; every session counted once, whatever its attempts.

The supervised runs use the autojump MockClock with the embedded mock server joined over
``trio.testing.memory_stream_pair()`` (the handshake, and its refusal, are real HTTP).
"""

from __future__ import annotations

import trio
import trio.testing
from session_helpers import memory_factory, server_config

from orchestrator.metrics import SessionResult, build_summary
from orchestrator.metrics.summary import connection_counts, last_attempts
from orchestrator.mockserver import FaultConfig, MockServer
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.reconnect import ReconnectPolicy
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ClosedModel, ListSink, Workload, open_supervisor


def result(sid: str, status: str = "completed", **kw: object) -> SessionResult:
    kw.setdefault("planned_start_s", 0.0)
    kw.setdefault("t_end_s", 1.0)
    return SessionResult(session_id=sid, status=status, **kw)  # type: ignore[arg-type]


def test_restarted_session_counts_once_by_its_last_attempt() -> None:
    records = [
        result("a", "failed", attempt=0, connect_attempts=2, refused_by_status={"429": 2}),
        result("b", connect_attempts=1),
        result("a", "failed", attempt=1, connect_attempts=1, refused_by_status={"503": 1}),
        result("a", attempt=2, connect_attempts=3, connect_failed=1, refused_by_status={"429": 2},
               reconnects=1),
    ]  # fmt: skip
    assert [(r.session_id, r.attempt) for r in last_attempts(records)] == [("a", 2), ("b", 0)]
    summary = build_summary([], records)
    totals = summary["totals"]
    assert (totals["sessions_total"], totals["sessions_completed"]) == (2, 2)
    assert (totals["sessions_failed"], totals["session_error_rate"]) == (0, 0.0)
    assert summary["sessions"]["by_status"] == {"completed": 2}
    assert summary["connections"] == {
        "attempts": 7,
        "connect_failed": 1,  # records without the count (older files) add nothing
        "refused": 5,
        "refused_by_status": {"429": 4, "503": 1},
        "reconnects": 1,
        "restarts": 2,
    }
    # records written before the counters existed read as zeros
    assert connection_counts([result("old")]) == {
        "attempts": 0, "connect_failed": None, "refused": 0, "refused_by_status": {},
        "reconnects": 0, "restarts": 0,
    }  # fmt: skip


async def test_refused_handshakes_counted_by_status_and_every_session_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The acceptance run (``--server-reject-percent 40 --sessions 40 --concurrency
    10``) as a library run: refusals show up by status, sessions count once."""
    config = server_config(faults=FaultConfig(reject_percent=40.0))
    server = MockServer(config)
    # one retry inside the link: some refusals are retried there, some fail the attempt
    # and the supervisor restarts the session (so both paths are exercised)
    spec = SessionSpec(
        connect=memory_factory(config, server=server),
        config=voice_session_config(),
        reconnect=ReconnectPolicy(max_attempts=1, initial_delay=0.1),
    )
    conversation = BuiltinConversation(speech_ms=400, lead_ms=100, tail_ms=100)
    sink = ListSink()
    with trio.fail_after(600):
        async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
            stats = await sup.run_workload(
                Workload(
                    model=ClosedModel(concurrency=10, sessions=40), spec=spec, driver=conversation
                )
            )
    assert stats.started == 40
    records = sink.sessions
    summary = build_summary(sink.turns, records)
    totals, conn = summary["totals"], summary["connections"]
    assert totals["sessions_total"] == 40 == len({r.session_id for r in records})
    assert totals["sessions_completed"] + totals["sessions_failed"] == 40
    restarts = len(records) - 40
    assert restarts > 0 and conn["restarts"] == restarts
    rejected = server.stats.faults["reject_429"]
    assert conn["refused"] == rejected > 0
    assert conn["refused_by_status"] == {"429": rejected}
    opened = sum(1 for r in records if r.connect_ms is not None)
    assert conn["attempts"] == rejected + opened
    assert conn["connect_failed"] == 0  # a refused handshake is a handshake
    assert conn["reconnects"] == 0  # a refused first handshake is no reconnect
    failed_attempts = [r for r in records if r.status == "failed"]
    assert {r.failure.type for r in failed_attempts if r.failure} == {"HandshakeRejected"}
    assert {r.failure.code for r in failed_attempts if r.failure} == {"429"}

    snap = sup.snapshot()
    assert (snap.started, snap.done, snap.attempts, snap.restarts) == (
        40,
        40,
        len(records),
        restarts,
    )
    assert (snap.completed, snap.failed) == (
        totals["sessions_completed"],
        totals["sessions_failed"],
    )
    assert snap.refused == rejected and snap.refused_by_status == {"429": rejected}
    assert snap.connect_attempts == conn["attempts"]
