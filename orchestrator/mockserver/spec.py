"""The data of a response plan: what is decided when a response starts
(:class:`ResponseSpec`), the steps the stream yields (:class:`Step`), and the small pure
helpers shared by planning and streaming (sentences, delta pieces, padding, usage).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from orchestrator.protocol import new_id

from .latency import ResponseTiming
from .tools import ToolCall

Mark = Literal["created", "first_delta", "done"]

_WORDS = (
    "sure happy to help with that today the answer is simple and clear let me explain "
    "how this works in a few short steps first we look at your request then we check the "
    "details and finally we put everything together so you can move on quickly thanks for "
    "asking great question here is what I found it looks good overall"
).split()

_OBF_CHARS = string.ascii_letters + string.digits


def make_sentence(rng: random.Random, words: int) -> str:
    """A deterministic sentence of ``words`` words drawn from a small vocabulary."""
    picked = [rng.choice(_WORDS) for _ in range(max(1, words))]
    picked[0] = picked[0].capitalize()
    return " ".join(picked) + "."


def split_words(text: str) -> list[str]:
    """Split text into delta pieces that concatenate back to ``text`` exactly."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]] if parts else [text]


def obfuscation(rng: random.Random, piece: str) -> str:
    # the real service pads deltas to a fixed size with random characters; drawn from
    # the caller's seeded rng so that a fixed seed fixes the wire stream
    n = max(1, 16 - len(piece))
    return "".join(rng.choices(_OBF_CHARS, k=n))


@attrs.frozen
class McpPlan:
    """What a planned MCP call does (simulated, never contacting the server's URL):
    ``approval``: the response asks for approval (an ``mcp_approval_request`` item)
    instead of calling; otherwise the call runs for ``duration_s`` and gives ``output``,
    or fails with ``error`` (an injected fault). ``approval_request_id``: the approved
    request this call carries out."""

    server_label: str
    approval: bool = False
    approval_request_id: str | None = None
    duration_s: float = 0.0
    output: str | None = None
    error: str | None = None


@attrs.frozen
class PlannedCall:
    """One tool call of a response: the call, its output item id and call id;
    ``mcp``: set for an MCP call (or approval request), None for a function call."""

    call: ToolCall
    item_id: str
    call_id: str
    mcp: McpPlan | None = None


@attrs.frozen
class ResponseSpec:
    """Everything decided when a response starts (pure data).

    ``tool_call`` / ``item_id`` / ``call_id`` are the first (or only) function call;
    ``more_calls`` the further parallel calls of the same response, in order.
    ``mcp_calls``: MCP calls or approval requests, output first (own item ids); when
    the response makes MCP calls and no function call nor approval request, its
    message (``item_id``) follows them (:attr:`speaks`).
    ``lead_chunks``: (payload, ms) of the digital silence an audio answer starts with,
    streamed as deltas before ``audio_chunks`` and counted in its audio length.
    """

    response_id: str
    conversation_id: str | None
    item_id: str
    modality: Literal["audio", "text"]
    text: str
    tool_call: ToolCall | None
    call_id: str
    audio_chunks: Sequence[str]
    chunk_offset: int
    chunk_ms: int
    codec: str
    timing: ResponseTiming
    response_object: dict[str, Any]
    input_tokens: int
    max_words: int | None = None
    more_calls: Sequence[PlannedCall] = ()
    lead_chunks: Sequence[tuple[str, int]] = ()
    mcp_calls: Sequence[PlannedCall] = ()

    def calls(self) -> list[PlannedCall]:
        """All tool calls of the response in output order (empty for a message)."""
        calls = list(self.mcp_calls)
        if self.tool_call is not None:
            calls += [PlannedCall(self.tool_call, self.item_id, self.call_id), *self.more_calls]
        return calls

    @property
    def speaks(self) -> bool:
        """Whether the response has a message (after its MCP calls, if any)."""
        return self.tool_call is None and not any(
            c.mcp is not None and c.mcp.approval for c in self.mcp_calls
        )


@attrs.frozen
class Step:
    """One event of the plan. ``at`` is seconds from the anchor."""

    at: float
    event: dict[str, Any]
    mark: Mark | None = None
    delta_index: int | None = None
    effect: Literal["add_item", "add_part", "finish_item"] | None = None
    audio_ms: int = 0


def audio_ms_for(text: str, ms_per_word: int, chunk_ms: int) -> int:
    """Length of the spoken ``text``, rounded up to whole chunks."""
    words = max(1, len(text.split()))
    ms = words * ms_per_word
    return max(chunk_ms, math.ceil(ms / chunk_ms) * chunk_ms)


def response_usage(
    output: list[dict[str, Any]], said: str, audio_ms: int, input_tokens: int
) -> dict[str, Any]:
    """``response.done``'s ``usage``: ``said`` is the streamed text (or the function
    arguments), ``audio_ms`` the audio sent; nothing is counted for an empty output."""
    if not output:
        text_tokens = audio_tokens = 0
        input_tokens = 0
    else:
        text_tokens = max(1, math.ceil(len(said) / 4))
        audio_tokens = math.ceil(audio_ms * 0.03)
    out_tokens = text_tokens + audio_tokens
    in_text = input_tokens // 3 if input_tokens else 0
    return {
        "total_tokens": input_tokens + out_tokens,
        "input_tokens": input_tokens,
        "output_tokens": out_tokens,
        "input_token_details": {
            "text_tokens": in_text,
            "audio_tokens": input_tokens - in_text,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }


def new_call_id() -> str:
    """A function call id in the real service's style (``call_`` + 16 characters)."""
    return new_id("call_")[:21]
