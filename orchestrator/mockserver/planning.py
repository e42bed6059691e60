"""Answer planning: pure functions from the conversation and ``response.create``'s
parameters to what a response will say or call, and to its :class:`ResponseSpec`.

No I/O, no clock and no connection: randomness comes from the ``rng`` passed in (the
connection's seeded generator), ids from :func:`~orchestrator.protocol.new_id`. The
response runs (:mod:`.runs`) call these and then play the plan.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.protocol import Dialect, new_id
from orchestrator.protocol.beta import FORMAT_TO_BETA

from .audio_bank import AudioBank
from .config import McpToolDef, ToolRule
from .errors import ClientError, invalid_value
from .latency import LatencyModel, ResponseTiming
from .mcp import McpDecision, approved, as_functions, decide_mcp
from .spec import PlannedCall, ResponseSpec, make_sentence, new_call_id
from .state import Conversation, item_text, normalize_item
from .tools import ToolCall, decide_tool_calls


def response_context(
    conv: Conversation, params: Mapping[str, Any], dialect: Dialect
) -> list[dict[str, Any]]:
    """The items a response answers: the conversation, or ``response.input`` (item
    references resolved, inline items normalized). Raises :class:`ClientError` naming
    the bad ``response.input[i]`` field."""
    if params["input"] is None:
        return conv.items
    items = []
    for i, raw in enumerate(params["input"]):
        if isinstance(raw, dict) and raw.get("type") == "item_reference":
            idx = conv.find(str(raw.get("id")))
            if idx is None:
                raise invalid_value(f"response.input[{i}].id", str(raw.get("id")))
            items.append(conv.items[idx])
        else:
            try:
                items.append(normalize_item(raw, dialect)[0])
            except ClientError as err:
                err.param = f"response.input[{i}]" + (
                    f".{err.param.removeprefix('item.')}"
                    if err.param and err.param.startswith("item.")
                    else ""
                )
                raise
    return items


def decide_answer(
    params: Mapping[str, Any],
    context: list[dict[str, Any]],
    words: int,
    rng: random.Random,
    *,
    transcripts: Mapping[str, str],
    tool_rules: Sequence[ToolRule],
    name_matching: bool,
    mcp_tools: Sequence[McpToolDef] = (),
) -> tuple[str, list[ToolCall], list[McpDecision]]:
    """Decide the answer: (text, function calls, MCP calls).

    After function outputs the answer mentions every output of the latest round
    (the trailing outputs, skipping the calls between them), in conversation order.
    After an ``mcp_approval_response`` it makes the approved call (none when denied).
    Otherwise the latest user item (its text, else its spoken transcript) goes through
    the tool rules, the MCP servers' tools (``mcp_tools``, see :mod:`.mcp`) taking part
    as functions; the text is a generated sentence of ``words`` words.
    """
    last = None
    for i in range(len(context) - 1, -1, -1):
        item = context[i]
        if item.get("type") in _ANSWERED or item.get("role") == "user":
            last = i
            break
    if last is None:
        return make_sentence(rng, words), [], []
    if context[last].get("type") == "mcp_approval_response":
        return make_sentence(rng, words), [], approved(context, context[last])
    if context[last].get("type") == "function_call_output":
        outputs: list[str] = []
        for item in reversed(context[: last + 1]):
            if item.get("type") == "function_call_output":
                outputs.append(" ".join(str(item.get("output", "")).split()[:60]))
            elif item.get("type") != "function_call":
                break
        return "Here is what I found: " + "; ".join(reversed(outputs)), [], []
    user = context[last]
    text = item_text(user) or transcripts.get(user["id"], "")
    tools, by_name = as_functions(params["tools"], mcp_tools)
    choice = params["tool_choice"]
    if isinstance(choice, dict) and choice.get("type") == "mcp":
        name = choice.get("name")
        choice = {"type": "function", "name": name} if name else "required"
    calls = decide_tool_calls(text, tools, choice, tool_rules, name_matching=name_matching)
    functions, mcp = decide_mcp(calls, by_name)
    return make_sentence(rng, words), functions, mcp


#: client items a response answers besides user messages
_ANSWERED = ("function_call_output", "mcp_approval_response")


def plan_response(
    params: Mapping[str, Any],
    *,
    text: str,
    calls: list[ToolCall],
    mcp_calls: Sequence[PlannedCall] = (),
    timing: ResponseTiming,
    conv: Conversation,
    audio_bank: AudioBank,
    latency: LatencyModel,
    rng: random.Random,
) -> ResponseSpec:
    """The :class:`ResponseSpec` of a response that says ``text`` or makes ``calls``
    (function calls) and ``mcp_calls`` (planned by :func:`.mcp.plan_mcp_calls`)."""
    in_conv = params["conversation"] != "none"
    response_id = new_id("resp_")
    codec = FORMAT_TO_BETA[params["format"]["type"]]
    speaks = (
        params["modality"] == "audio"
        and not calls
        and not any(c.mcp is not None and c.mcp.approval for c in mcp_calls)
    )
    lead = audio_bank.silence(codec, timing.leading_silence_ms) if speaks else []
    max_tokens = params["max_output_tokens"]
    conversation_id = conv.conversation_id if in_conv else None
    return ResponseSpec(
        response_id=response_id,
        conversation_id=conversation_id,
        item_id=new_id("item_"),
        modality=params["modality"],
        text=text,
        tool_call=calls[0] if calls else None,
        call_id=new_call_id(),
        audio_chunks=audio_bank.chunks(codec),
        chunk_offset=rng.choice(audio_bank.onsets(codec)),
        chunk_ms=latency.audio_chunk_ms,
        codec=codec,
        timing=timing,
        response_object={
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": conversation_id,
            "output_modalities": [params["modality"]],
            "max_output_tokens": max_tokens,
            "audio": {"output": {"format": params["format"], "voice": params["voice"]}},
            "usage": None,
            "metadata": params["metadata"],
            "_temperature": params["temperature"],
        },
        input_tokens=conv.input_tokens(),
        max_words=max_tokens if isinstance(max_tokens, int) else None,
        more_calls=tuple(PlannedCall(c, new_id("item_"), new_call_id()) for c in calls[1:]),
        lead_chunks=lead,
        mcp_calls=tuple(mcp_calls),
    )
