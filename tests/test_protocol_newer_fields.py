"""The newer GA fields and explicit nulls in the protocol layer, against the ``openai`` models.

- ``reasoning`` / ``parallel_tool_calls`` (session and ``response.create``), transcription
  ``delay`` / ``keywords`` / ``languages`` and the MCP tool's ``allowed_callers`` /
  ``defer_loading`` / ``tunnel_id`` encode to events the GA models accept and decode back
  unchanged; the beta encoding drops them (beta has none) and stays valid beta.
- Every client event with explicit nulls on optional fields (generated from the
  ``openai`` params, see ``test_mockserver_nulls``) decodes exactly like the same event
  without them, in both dialects.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import pytest

from orchestrator.protocol import (
    AudioConfig,
    AudioInput,
    Dialect,
    McpTool,
    Reasoning,
    ResponseCreate,
    ResponseParams,
    SessionConfig,
    SessionUpdate,
    Transcription,
    decode_client_event,
    encode_client_event,
)

openai = pytest.importorskip("openai")
pydantic = pytest.importorskip("pydantic")

from openai.types.beta import realtime as beta_rt  # noqa: E402
from openai.types.realtime import realtime_client_event as ga_client_mod  # noqa: E402
from test_mockserver_nulls import BETA_CASES, GA_CASES  # noqa: E402

from orchestrator.mockserver.nulls import drop_unset_nulls  # noqa: E402

ADAPTERS: dict[Dialect, Any] = {
    Dialect.GA: pydantic.TypeAdapter(ga_client_mod.RealtimeClientEvent),
    Dialect.BETA: pydantic.TypeAdapter(beta_rt.RealtimeClientEvent),
}

NEWER_SESSION = SessionConfig(
    reasoning=Reasoning(effort="low"),
    parallel_tool_calls=False,
    audio=AudioConfig(
        input=AudioInput(
            transcription=Transcription(
                model="gpt-realtime-whisper",
                delay="minimal",
                keywords=["Zurich"],
                languages=["en", "de"],
            )
        )
    ),
    tools=[
        McpTool(
            server_label="deepwiki",
            tunnel_id="tun_1",
            allowed_callers=["direct", "programmatic"],
            defer_loading=True,
        )
    ],
)
#: McpTool fields the protocol keeps as sent, nulls included
PASSED_THROUGH = ("allowed_tools", "require_approval")
NEWER_RESPONSE = ResponseParams(reasoning=Reasoning(effort="xhigh"), parallel_tool_calls=True)


def test_ga_newer_session_fields_validate_and_round_trip() -> None:
    event = SessionUpdate(session=NEWER_SESSION)
    text = encode_client_event(event, Dialect.GA)
    model = ADAPTERS[Dialect.GA].validate_json(text)
    session = model.session
    assert session.reasoning.effort == "low"
    assert session.parallel_tool_calls is False
    t = session.audio.input.transcription
    assert (t.delay, t.keywords, t.languages) == ("minimal", ["Zurich"], ["en", "de"])
    tool = session.tools[0]
    assert (tool.tunnel_id, tool.allowed_callers, tool.defer_loading) == (
        "tun_1",
        ["direct", "programmatic"],
        True,
    )
    back = decode_client_event(text, Dialect.GA)
    assert isinstance(back, SessionUpdate)
    # the GA encoding names the session type
    assert back.session == attrs.evolve(NEWER_SESSION, type="realtime")


def test_ga_newer_response_fields_validate_and_round_trip() -> None:
    event = ResponseCreate(response=NEWER_RESPONSE)
    text = encode_client_event(event, Dialect.GA)
    model = ADAPTERS[Dialect.GA].validate_json(text)
    assert model.response.reasoning.effort == "xhigh"
    assert model.response.parallel_tool_calls is True
    assert decode_client_event(text, Dialect.GA) == event


def test_beta_drops_the_ga_only_fields() -> None:
    beta_session = attrs.evolve(NEWER_SESSION, tools=None)  # beta has no MCP tools
    session_text = encode_client_event(SessionUpdate(session=beta_session), Dialect.BETA)
    ADAPTERS[Dialect.BETA].validate_json(session_text)
    sent = orjson.loads(session_text)["session"]
    assert "reasoning" not in sent and "parallel_tool_calls" not in sent
    assert sent["input_audio_transcription"] == {"model": "gpt-realtime-whisper"}
    response_text = encode_client_event(ResponseCreate(response=NEWER_RESPONSE), Dialect.BETA)
    ADAPTERS[Dialect.BETA].validate_json(response_text)
    assert orjson.loads(response_text)["response"] == {}


def _passed_through(name: str) -> bool:
    """An MCP tool's filters are kept as sent (``McpTool`` fields typed ``Any``): an explicit
    null there is the client's value, not "not given"."""
    return any(f"{key}:" in name or f"{key}." in name for key in PASSED_THROUGH)


NULL_CASES = [(Dialect.GA, c) for c in GA_CASES] + [(Dialect.BETA, c) for c in BETA_CASES]


@pytest.mark.parametrize(
    ("dialect", "case"),
    [(d, c) for d, c in NULL_CASES if not _passed_through(c[0])],
    ids=lambda v: v[0] if isinstance(v, tuple) else v.value,
)
def test_null_optional_fields_decode_as_not_given(dialect: Dialect, case: Any) -> None:
    _, event, _ = case
    stripped = drop_unset_nulls(event["type"], event)
    assert decode_client_event(orjson.dumps(event), dialect) == decode_client_event(
        orjson.dumps(stripped), dialect
    )


@pytest.mark.parametrize(
    ("dialect", "case"),
    [(d, c) for d, c in NULL_CASES if _passed_through(c[0])],
    ids=lambda v: v[0] if isinstance(v, tuple) else v.value,
)
def test_null_mcp_filters_are_kept_as_sent(dialect: Dialect, case: Any) -> None:
    _, event, _ = case
    decoded = decode_client_event(orjson.dumps(event), dialect)
    kind = "session" if event["type"].endswith("session.update") else "response"
    raw_tool = event[kind]["tools"][0]
    tool = getattr(decoded, kind).tools[0]
    for key in PASSED_THROUGH:
        assert getattr(tool, key) == raw_tool.get(key)  # nulls inside included
