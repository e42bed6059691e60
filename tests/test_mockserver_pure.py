"""Pure parts of the mock server, without sockets: latency, faults, validation, state,
tools, response plans, dialect rendering, handshake routing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from mockserver_helpers import response_spec

from orchestrator.mockserver import (
    Distribution,
    DistributionError,
    ServerConfig,
    ToolRule,
    route_request,
)
from orchestrator.mockserver.config import ConfigError
from orchestrator.mockserver.defaults import default_session
from orchestrator.mockserver.errors import ClientError
from orchestrator.mockserver.faults import ConnectionFaults, FaultConfig
from orchestrator.mockserver.latency import LatencyModel, plan_timing
from orchestrator.mockserver.responder import ResponseStream
from orchestrator.mockserver.server import Rejection, Route
from orchestrator.mockserver.session_update import apply_beta_update, apply_ga_update
from orchestrator.mockserver.state import Conversation
from orchestrator.mockserver.tools import ToolCall, decide_tool_call
from orchestrator.mockserver.wire import render
from orchestrator.protocol import Dialect


def _session() -> dict:
    return default_session(session_id="sess_x", model="gpt-realtime", expires_at=1)


def test_distribution_parse_and_sample() -> None:
    assert Distribution.parse("300") == Distribution("fixed", 300)
    assert Distribution.parse("uniform:1,2") == Distribution("uniform", 1, 2)
    rng = random.Random(1)
    assert all(100 <= Distribution.parse("uniform:100:200").sample(rng) <= 200 for _ in range(100))
    assert Distribution.parse("normal:10:50").sample(rng) >= 0
    values = sorted(Distribution.parse("lognormal:300:0.3").sample(rng) for _ in range(2001))
    assert 270 < values[1000] < 330  # median
    for bad in ("", "gauss:1:2", "uniform:5", "uniform:9:1", "fixed:-1", "normal:x:1"):
        with pytest.raises(DistributionError):
            Distribution.parse(bad)


@pytest.mark.parametrize("spec", ["foo:1", "x", "gauss:1:2", "Lognormal:350:0.25"])
def test_unknown_distribution_kind_is_named(spec: str) -> None:
    kind = spec.split(":")[0]
    with pytest.raises(DistributionError) as info:
        Distribution.parse(spec)
    message = str(info.value)
    assert f"unknown distribution {kind!r} (expected fixed, uniform, normal, lognormal)" in message
    assert "parameter" not in message  # not mistaken for a fixed distribution


def test_lognormal_sigma_is_a_sane_log_space_sd() -> None:
    for spec in ("lognormal:300:50", "lognormal:350:0", "lognormal:350:3.5"):
        with pytest.raises(DistributionError, match="log-space standard deviation") as info:
            Distribution.parse(spec)
        assert "lognormal:350:0.25" in str(info.value)
    assert Distribution.parse("lognormal:350:3") == Distribution("lognormal", 350, 3)
    with pytest.raises(DistributionError, match="log-space"):
        Distribution("lognormal", 350, 50)
    # the parameter-count hint suggests a sane sigma, not one in ms
    with pytest.raises(DistributionError, match=r"e\.g\. lognormal:350:0\.25$"):
        Distribution.parse("lognormal:350")


def test_timing_never_delivers_before_created() -> None:
    model = LatencyModel(
        response_created_ms=Distribution.parse("fixed:500"),
        first_delta_ms=Distribution.parse("fixed:100"),
    )
    t = plan_timing(model, random.Random(0))
    assert t.first_delta_s == t.created_s == 0.5
    assert t.interval_s == pytest.approx(0.05)  # 100 ms chunks at 2x real time


def test_faults_are_seeded_and_independent() -> None:
    cfg = FaultConfig(error_probability=0.5)
    a = [ConnectionFaults(cfg, random.Random(7)).for_response(10) for _ in range(1)]
    b = [ConnectionFaults(cfg, random.Random(7)).for_response(10) for _ in range(1)]
    assert a == b
    faults = ConnectionFaults(FaultConfig(close_after_responses=2), random.Random(0))
    assert [faults.response_finished(), faults.response_finished()] == [False, True]
    with pytest.raises(ValueError):
        FaultConfig(close_probability=1.5)


def test_config_refuses_remote_bind_and_hides_key() -> None:
    with pytest.raises(ConfigError):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", allow_remote=True).host == "0.0.0.0"
    cfg = ServerConfig(api_key="sk-hidden")
    assert "sk-hidden" not in repr(cfg)
    with pytest.raises(ConfigError):
        ToolRule.parse("no arrow")
    rule = ToolRule.parse('weather in (\\w+)=>get_weather:{"city": "x"}')
    assert rule.tool == "get_weather" and rule.matches("the WEATHER in Paris")


def test_ga_update_merges_and_validates() -> None:
    s = _session()
    new = apply_ga_update(
        s,
        {
            "type": "realtime",
            "audio": {
                "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}
            },
        },
        has_assistant_audio=False,
    )
    td = new["audio"]["input"]["turn_detection"]
    assert (td["silence_duration_ms"], td["threshold"], td["create_response"]) == (500, 0.5, True)
    assert s["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200  # original untouched
    same = apply_ga_update(s, {"type": "realtime", "instructions": ""}, has_assistant_audio=False)
    assert same["instructions"] == s["instructions"]
    with pytest.raises(ClientError) as info:
        apply_ga_update(
            s,
            {"type": "realtime", "audio": {"output": {"voice": "echo"}}},
            has_assistant_audio=True,
        )
    assert info.value.code == "cannot_update_voice"
    with pytest.raises(ClientError) as info:
        apply_ga_update(
            s,
            {"type": "realtime", "output_modalities": ["audio", "text"]},
            has_assistant_audio=False,
        )
    assert info.value.param == "session.output_modalities"


def test_updates_check_fields_in_one_order_for_both_dialects() -> None:
    s = _session()
    with pytest.raises(ClientError) as ga:
        apply_ga_update(
            s,
            {"type": "realtime", "audio": {"output": {"voice": "nope"}}, "max_output_tokens": 0},
            has_assistant_audio=False,
        )
    with pytest.raises(ClientError) as beta:
        apply_beta_update(
            s, {"voice": "nope", "max_response_output_tokens": 0}, has_assistant_audio=False
        )
    assert ga.value.param == "session.max_output_tokens"
    assert beta.value.param == "session.max_response_output_tokens"


def test_beta_update_translates_to_internal_shape() -> None:
    new = apply_beta_update(
        _session(),
        {
            "modalities": ["text"],
            "input_audio_format": "g711_ulaw",
            "turn_detection": None,
            "voice": "sage",
        },
        has_assistant_audio=False,
    )
    assert new["output_modalities"] == ["text"]
    assert new["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert new["audio"]["input"]["turn_detection"] is None
    wire = render({"type": "session.updated", "session": new}, Dialect.BETA)
    assert wire is not None
    assert (
        wire["session"]["modalities"],
        wire["session"]["input_audio_format"],
        wire["session"]["voice"],
    ) == (["text"], "g711_ulaw", "sage")


def test_render_beta_renames_and_drops() -> None:
    assert render({"type": "conversation.item.done", "item": {}}, Dialect.BETA) is None
    ev = render(
        {"type": "response.output_audio_transcript.delta", "delta": "hi", "obfuscation": "x"},
        Dialect.BETA,
    )
    assert ev == {"type": "response.audio_transcript.delta", "delta": "hi"}
    item = {
        "id": "i",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "x"}],
    }
    ev = render(
        {"type": "conversation.item.added", "previous_item_id": None, "item": item}, Dialect.BETA
    )
    assert ev is not None and ev["type"] == "conversation.item.created"
    assert ev["item"]["object"] == "realtime.item" and ev["item"]["content"][0]["type"] == "text"
    assert item["content"][0]["type"] == "output_text"  # shared state not mutated


def test_conversation_placement_and_errors() -> None:
    conv = Conversation(session=_session(), dialect=Dialect.GA)
    conv.create_item(
        {
            "id": "a",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "x"}],
        },
        None,
    )
    added, _ = conv.create_item(
        {"id": "b", "type": "message", "role": "user", "content": []}, "root"
    )
    assert added["previous_item_id"] is None and [i["id"] for i in conv.items] == ["b", "a"]
    before = list(conv.items)
    with pytest.raises(ClientError):
        conv.create_item({"type": "message", "role": "user", "content": []}, "missing")
    assert conv.items == before
    with pytest.raises(ClientError) as info:
        conv.create_item({"type": "function_call_output", "call_id": "c"}, None)
    assert (info.value.code, info.value.param) == ("missing_required_parameter", "item.output")


def test_tool_decisions() -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                },
                "required": ["unit", "days"],
            },
        }
    ]
    rules = (ToolRule("forecast", "get_weather", '{"unit": "f", "days": 3}'),)
    assert decide_tool_call("the forecast please", tools, "auto", rules) == ToolCall(
        "get_weather", '{"unit": "f", "days": 3}'
    )
    assert decide_tool_call("please get weather now", tools, "auto", ()) == ToolCall(
        "get_weather", '{"unit":"c","days":1}'
    )
    assert decide_tool_call("hello", tools, "auto", ()) is None
    assert decide_tool_call("hello", tools, "required", ()) is not None
    assert decide_tool_call("get_weather", tools, "none", ()) is None
    assert decide_tool_call("get_weather", tools, "auto", (), name_matching=False) is None


def test_response_plan_audio_order_and_offsets() -> None:
    stream = ResponseStream(response_spec(), ms_per_word=100)
    steps = list(stream.steps())
    names = [s.event["type"] for s in steps]
    assert names[:4] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    audio = [s for s in steps if s.event["type"] == "response.output_audio.delta"]
    assert [round(s.at, 6) for s in audio] == [0.2, 0.25, 0.3, 0.35]
    assert (
        audio[0].mark == "first_delta" and steps[0].mark == "created" and steps[-1].mark == "done"
    )
    transcript = "".join(
        s.event["delta"] for s in steps if s.event["type"].endswith("transcript.delta")
    )
    assert transcript == "one two three four"
    done = steps[-1].event["response"]
    assert (
        done["status"] == "completed"
        and done["output"][0]["content"][0]["transcript"] == transcript
    )


def test_response_plan_cancel_midway_and_function_call() -> None:
    stream = ResponseStream(response_spec(), ms_per_word=100)
    it = stream.steps()
    for step in it:
        if step.event["type"] == "response.output_audio.delta":
            break
    next(it)  # the second transcript piece was "sent"
    tail = stream.finish(0.3, "cancelled", {"type": "cancelled", "reason": "client_cancelled"})
    assert [s.event["type"] for s in tail][-1] == "response.done"
    done = tail[-1].event["response"]
    assert done["output"][0]["status"] == "incomplete"
    assert done["output"][0]["content"][0]["transcript"] == "one two"
    assert list(it) == []

    call = ResponseStream(
        response_spec(tool_call=ToolCall("f", '{"a": 1234567890}')), ms_per_word=100
    )
    names = [s.event["type"] for s in call.steps()]
    assert "response.content_part.added" not in names
    assert names[-4:] == [
        "response.function_call_arguments.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    assert names.count("response.function_call_arguments.delta") == 3  # 17 chars in 8-char pieces
    assert (
        names.index("response.function_call_arguments.done")
        < names.index("conversation.item.done")
        < names.index("response.output_item.done")
    )


def test_route_request() -> None:
    cfg = ServerConfig(api_key="sk-distinct")
    assert route_request(
        "/v1/realtime?model=m", [(b"authorization", b"Bearer sk-distinct")], cfg
    ) == Route(Dialect.GA, "m")
    assert route_request(
        "/v1/realtime?model=m",
        [(b"api-key", b"sk-distinct"), (b"openai-beta", b"realtime=v1")],
        cfg,
    ) == Route(Dialect.BETA, "m")
    rej = route_request("/v1/realtime?model=m", [(b"authorization", b"Bearer x")], cfg)
    assert isinstance(rej, Rejection) and rej.status == 401 and b"sk-distinct" not in rej.body
    assert isinstance(route_request("/x", [], ServerConfig()), Rejection)


def test_ground_truth_keeps_the_first_records_in_memory_only_as_asked(tmp_path: Path) -> None:
    """The file gets every record; memory only the first ``keep`` (none for a server
    process, whose memory must stay flat however long it serves)."""
    from orchestrator.mockserver.groundtruth import GroundTruthSink

    for keep, kept in ((0, 0), (2, 2), (10, 3)):
        path = tmp_path / f"gt{keep}.jsonl"
        sink = GroundTruthSink(path, keep=keep)
        for i in range(3):
            sink.write({"response_id": f"r{i}"})
        sink.close()
        assert [r["response_id"] for r in sink.records] == [f"r{i}" for i in range(kept)]
        assert len(path.read_bytes().splitlines()) == 3
