"""Turn checks (``check=`` of ``say_*`` / ``start_*_turn``): run when the turn is
finalized, before its record is emitted, so the record given to ``on_turn`` carries the
failures (fake clock, embedded server over memory streams)."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing
from session_helpers import NO_VAD, memory_factory, server_config

from orchestrator.metrics.records import ErrorRecord, TurnRecord
from orchestrator.session import (
    EXPECTATION_FAILED,
    AudioSource,
    SessionSpec,
    Turn,
    open_session,
)


def recording_spec(records: list[TurnRecord], **kwargs: object) -> SessionSpec:
    return SessionSpec(connect=memory_factory(server_config()), on_turn=records.append, **kwargs)  # type: ignore[arg-type]


async def test_failures_are_on_the_record_given_to_on_turn(autojump_clock: object) -> None:
    records: list[TurnRecord] = []
    seen: list[tuple[str, str, int, bool]] = []

    def check(turn: Turn) -> Sequence[str]:
        # the turn is final when the check runs, but its record was not emitted yet
        seen.append((turn.status, turn.transcript, len(records), turn._done.is_set()))
        return ["expect_tool: lookup was not called", "max_ttfb_ms: 300.0 ms > 100 ms"]

    async with open_session(recording_spec(records)) as session:
        turn = await session.say_text("hello there", label="greet", check=check)
        passed = await session.say_text("and again", check=lambda t: [])
    assert len(seen) == 1
    status, transcript, emitted, woken = seen[0]
    assert status == "completed" and transcript and emitted == 0 and not woken
    assert turn.status == "completed" and turn.reason is None
    assert turn.expectation_failures == (
        "expect_tool: lookup was not called",
        "max_ttfb_ms: 300.0 ms > 100 ms",
    )
    first = records[0]
    assert first is turn.record and first.label == "greet"
    assert [(e.code, e.message, e.event_type) for e in first.errors] == [
        (EXPECTATION_FAILED, "expect_tool: lookup was not called", None),
        (EXPECTATION_FAILED, "max_ttfb_ms: 300.0 ms > 100 ms", None),
    ]
    assert first.failed and first.status == "completed" and first.reason is None
    assert first.errors[0].t_s == first.t_end_s
    assert turn.errors == list(first.errors)
    # a check that passes leaves the record clean; session error counts are the server's
    assert passed.expectation_failures == () and not records[1].failed
    assert session.result is not None and session.result.status == "completed"
    assert session.result.errors == 0


async def test_a_raising_check_is_a_failure_not_a_crash(autojump_clock: object) -> None:
    records: list[TurnRecord] = []

    def broken(turn: Turn) -> Sequence[str]:
        raise KeyError("tool_calls")

    def bad_items(turn: Turn) -> Sequence[str]:
        return (str(len(m)) for m in [None])  # type: ignore[return-value, arg-type]

    async with open_session(recording_spec(records)) as session:
        one = await session.say_text("one", check=broken)
        two = await session.say_text("two", check=bad_items)
        three = await session.say_text("three", check=lambda t: "a single message")
    assert one.expectation_failures == ("check raised KeyError: 'tool_calls'",)
    assert two.expectation_failures == (
        "check raised TypeError: object of type 'NoneType' has no len()",
    )
    assert three.expectation_failures == ("a single message",)
    assert [[e.message for e in r.errors] for r in records] == [
        ["check raised KeyError: 'tool_calls'"],
        ["check raised TypeError: object of type 'NoneType' has no len()"],
        ["a single message"],
    ]
    assert session.result is not None and session.result.status == "completed"


async def test_check_runs_when_the_say_call_was_cancelled(autojump_clock: object) -> None:
    records: list[TurnRecord] = []
    statuses: list[str] = []

    def check(turn: Turn) -> Sequence[str]:
        statuses.append(turn.status)
        return [f"saw {turn.status}"]

    async with open_session(recording_spec(records)) as session:
        with trio.move_on_after(0.1) as scope:  # well before the first audio (300 ms)
            await session.say_text("tell me something", check=check)
        assert scope.cancelled_caught and statuses == [] and records == []
        (turn,) = session.turns
        await turn.wait()  # the turn went on; its check ran when it ended
    assert statuses == ["completed"]
    assert turn.expectation_failures == ("saw completed",)
    assert [e.message for e in records[0].errors] == ["saw completed"]


async def test_check_sees_a_turn_cancelled_by_the_session_end(autojump_clock: object) -> None:
    records: list[TurnRecord] = []
    statuses: list[tuple[str, str | None]] = []

    def check(turn: Turn) -> Sequence[str]:
        statuses.append((turn.status, turn.reason))
        return [] if turn.status == "cancelled" else ["not cancelled"]

    async with open_session(recording_spec(records)) as session:
        turn = await session.start_text_turn("a long answer", check=check)
    assert statuses == [("cancelled", "session completed")]
    assert turn.expectation_failures == () and records[0].errors == ()
    assert records[0].status == "cancelled" and not records[0].failed


async def test_audio_turns_take_a_check(autojump_clock: object) -> None:
    records: list[TurnRecord] = []
    modes: list[str] = []

    def check(turn: Turn) -> Sequence[str]:
        modes.append(turn.mode)
        return [] if turn.record.ttfb_ms is None else [f"mode {turn.mode}"]

    async with open_session(recording_spec(records, config=NO_VAD)) as session:
        manual = await session.say_audio(AudioSource.synthetic(400), check=check)
        started = await session.start_audio_turn(AudioSource.synthetic(400), check=check)
        await started.wait()
    assert modes == ["manual", "manual"]
    assert manual.expectation_failures == ("mode manual",)
    assert [[e.message for e in r.errors] for r in records] == [["mode manual"]] * 2
    assert all(r.failed and r.status == "completed" for r in records)
    assert isinstance(records[0].errors[0], ErrorRecord)
