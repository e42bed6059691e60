"""Replaying real GA captures (../shared/captures) through the session actor.

Each capture's server frames are played by a test-only scripted transport; the actor
decodes them, tracks the conversation and builds turn records. The records' usage
totals must equal the captured ``response.done`` usage, and every captured event must be
counted exactly once (in a turn or in the session's idle counts).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
import trio
from session_helpers import ScriptedConnection, scripted_factory, shared_dir

from orchestrator.metrics.records import USAGE_FIELDS
from orchestrator.session import SessionSpec, open_session

PATTERNS = (
    "pydantic-ai__test_openai_ws*.server.jsonl",
    "pydantic-ai__test_azure_ws*.server.jsonl",
    "pydantic-ai__test_gateway_ws*.server.jsonl",
    "pydantic-ai__test_parity_ws*.server.jsonl",
)


def _captures() -> list[Path]:
    root = shared_dir()
    if root is None:
        return []
    found: set[Path] = set()
    for pattern in PATTERNS:
        found.update((root / "captures").glob(pattern))
    return sorted(found)


CAPTURES = _captures()
TEXTS = {path: path.read_text() for path in CAPTURES}  # read at collection, not in the loop


def _usage_of(done: dict) -> dict[str, int]:
    usage = done["response"].get("usage") or {}
    itd = usage.get("input_token_details") or {}
    otd = usage.get("output_token_details") or {}
    ctd = itd.get("cached_tokens_details") or {}
    values = {
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "input_text_tokens": itd.get("text_tokens"),
        "input_audio_tokens": itd.get("audio_tokens"),
        "input_cached_tokens": itd.get("cached_tokens"),
        "input_cached_text_tokens": ctd.get("text_tokens"),
        "input_cached_audio_tokens": ctd.get("audio_tokens"),
        "output_text_tokens": otd.get("text_tokens"),
        "output_audio_tokens": otd.get("audio_tokens"),
        "reasoning_tokens": otd.get("reasoning_tokens"),
    }
    return {k: v for k, v in values.items() if v is not None}


@pytest.mark.skipif(not CAPTURES, reason="../shared/captures not available")
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name.split(".")[0] for p in CAPTURES])
async def test_capture_replay_usage_and_event_counts(path: Path) -> None:
    lines = [line for line in TEXTS[path].splitlines() if line.strip()]
    events = [orjson.loads(line) for line in lines]
    conn = ScriptedConnection(lines)
    has_created = any(e["type"] == "session.created" for e in events)
    spec = SessionSpec(connect=scripted_factory(conn), wait_session_created=has_created)
    with trio.fail_after(10):
        async with open_session(spec) as session:
            await conn.drained.wait()
    result = session.result
    assert result is not None and result.status == "completed", result
    assert result.events_received == len(events)
    assert result.errors == 0 and session.protocol_errors == 0

    records = [turn.record for turn in session.turns]
    dones = [e for e in events if e["type"] == "response.done"]
    # one turn per response (no driver: every response is a server-initiated turn)
    assert len(records) == sum(e["type"] == "response.created" for e in events)
    assert [r.response_status for r in records] == [d["response"]["status"] for d in dones]

    expected: Counter[str] = Counter()
    for done in dones:
        expected.update(_usage_of(done))
    for name in USAGE_FIELDS:
        got = sum(getattr(r, name) or 0 for r in records)
        assert got == expected.get(name, 0), name
        assert (getattr(result, name) or 0) == expected.get(name, 0), name

    counted: Counter[str] = Counter(session.idle_event_counts)
    for record in records:
        counted.update(record.event_counts)
    assert counted == Counter(e["type"] for e in events)

    # the conversation state holds the items in server order
    added = [e["item"]["id"] for e in events if e["type"] == "conversation.item.added"]
    assert session.state.order == added

    # the assistant transcript of each turn is what the capture's response.done says
    for record, done in zip(records, dones, strict=True):
        texts = []
        for item in done["response"].get("output") or []:
            for part in item.get("content") or []:
                text = part.get("transcript") or part.get("text")
                if text:
                    texts.append(text)
        assert record.transcript == " ".join(texts)
