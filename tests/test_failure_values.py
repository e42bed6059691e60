"""Failures as values (records, summary, tool handlers) and the bounded histogram."""

from __future__ import annotations

import random

import orjson
import pytest
from session_helpers import WEATHER, memory_factory, server_config

from orchestrator.metrics.failure import TRACEBACK_LINES, Failure, first_error
from orchestrator.metrics.histogram import LogHistogram
from orchestrator.metrics.records import SessionResult, record_from_dict, to_json_line
from orchestrator.metrics.stats import percentile
from orchestrator.metrics.summary import build_summary
from orchestrator.mockserver import ToolRule
from orchestrator.protocol import SessionConfig
from orchestrator.session import SessionSpec, ToolRegistry, open_session


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - the test wants the traceback
        return caught


def test_failure_keeps_type_message_where_and_a_traceback_excerpt() -> None:
    def handler() -> None:
        raise ValueError("bug in handler")

    try:
        handler()
    except ValueError as exc:
        failure = Failure.from_exception(exc, "tool")
    assert (failure.type, failure.message, failure.where) == (
        "ValueError",
        "bug in handler",
        "tool",
    )
    assert failure.traceback is not None and "in handler" in failure.traceback
    assert len(failure.traceback.splitlines()) <= TRACEBACK_LINES
    assert str(failure) == "ValueError: bug in handler"


def test_failure_of_a_group_is_its_first_error_not_a_cancellation() -> None:
    group = BaseExceptionGroup(
        "g", [KeyboardInterrupt(), ExceptionGroup("inner", [KeyError("k"), ValueError("v")])]
    )
    assert isinstance(first_error(group), KeyError)
    assert Failure.from_exception(group).type == "KeyError"
    assert first_error(BaseExceptionGroup("only", [KeyboardInterrupt()])) is None
    assert first_error(KeyboardInterrupt()) is None


def test_failure_round_trips_through_results_jsonl() -> None:
    failure = Failure.from_exception(_raise(RuntimeError("boom")), "driver")
    result = SessionResult(
        session_id="s",
        status="failed",
        reason=str(failure),
        failure=failure,
        planned_start_s=0.0,
        t_end_s=1.0,
    )
    line = orjson.loads(to_json_line(result))
    assert line["failure"]["type"] == "RuntimeError" and line["failure"]["where"] == "driver"
    assert record_from_dict(line) == result
    assert "failure" not in orjson.loads(to_json_line(SessionResult(
        session_id="s", status="completed", planned_start_s=0.0, t_end_s=1.0
    )))  # fmt: skip


def test_histogram_percentiles_are_within_precision() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(0.0, 1.5) for _ in range(20_000)]
    hist = LogHistogram(precision=0.01)
    for v in values:
        hist.add(v)
    assert hist.count == len(values) and hist.max == max(values) and hist.min == min(values)
    for q in (50, 90, 99, 99.9):
        exact = percentile(values, q)
        assert exact is not None
        got = hist.percentile(q)
        assert got is not None and abs(got - exact) / exact < 0.03, (q, got, exact)


def test_histogram_memory_is_bounded_by_buckets_not_samples() -> None:
    hist = LogHistogram()
    for i in range(200_000):
        hist.add((i % 5000) * 0.01)  # 0 .. 50 ms
    # about 230 buckets per decade at 1 %: 0.01 .. 50 ms is under 4 decades
    assert hist.buckets < 1000
    assert hist.count == 200_000


def test_histogram_keeps_zero_exact_and_empty_is_none() -> None:
    hist = LogHistogram()
    assert hist.percentile(50) is None and hist.max is None
    for _ in range(99):
        hist.add(0.0)
    hist.add(3.0)
    assert hist.percentile(50) == 0.0 and hist.percentile(99) == 0.0
    assert hist.percentile(100) == pytest.approx(3.0, rel=0.02) and hist.max == 3.0
    with pytest.raises(ValueError, match="precision"):
        LogHistogram(precision=0.0)


def test_summary_groups_failures_by_type_not_by_reason_text() -> None:
    def failed(sid: str, failure: Failure) -> SessionResult:
        return SessionResult(
            session_id=sid,
            status="failed",
            reason=str(failure),
            failure=failure,
            planned_start_s=0.0,
            t_end_s=1.0,
        )

    sessions = [
        failed("a", Failure(type="ConnectTimeout", message="no connection within 10s")),
        failed("b", Failure(type="ConnectTimeout", message="no connection within 3s")),
        # a message that looks like "Type: message" must not be parsed
        failed("c", Failure(type="ServerError", message="quota: exceeded")),
    ]
    summary = build_summary([], sessions)
    assert summary["sessions"]["failure_types"] == {"ConnectTimeout": 2, "ServerError": 1}


async def test_a_bug_in_a_tool_handler_keeps_its_traceback(autojump_clock: object) -> None:
    async def lookup(city: str) -> str:
        raise ValueError("bug in handler")

    registry = ToolRegistry()
    registry.add("get_weather", lookup, parameters=WEATHER)
    config = server_config(tool_rules=(ToolRule("weather", "get_weather", '{"city": "Oslo"}'),))
    spec = SessionSpec(
        connect=memory_factory(config), config=SessionConfig(instructions="x"), tools=registry
    )
    async with open_session(spec) as session:
        turn = await session.say_text("What's the weather in Oslo?")
    call = turn.record.tool_calls[0]
    assert not call.ok and call.error == "ValueError: bug in handler"
    assert call.failure is not None and call.failure.where == "tool get_weather"
    assert call.failure.traceback is not None and "in lookup" in call.failure.traceback
    line = orjson.loads(to_json_line(turn.record))
    assert "in lookup" in line["tool_calls"][0]["failure"]["traceback"]
