"""Micro-benchmark of the protocol codec against raw orjson (prints µs/op).

Run: ``python benchmarks/bench_codec.py [--number N]``. Measures, for both dialects:

- the easy case: ``orjson.loads`` of a realistic output-audio delta frame (6 KB base64,
  100 ms of 24 kHz PCM16 would be 6.4 KB) against ``decode_server_event`` of the same
  frame, and ``orjson.dumps`` of an ``input_audio_buffer.append`` dict against
  ``encode_client_event`` of the equivalent ``InputAudioBufferAppend``;
- the large nested events, each against ``orjson.loads`` of the same frame:
  ``response.done`` (an assistant audio message item and full usage), ``response.created``
  and ``session.updated`` (a full session with a tool, turn detection and transcription).
  These are real server frames (see :data:`CAPTURED`), trimmed only in long texts, so the
  script needs nothing beside the package;
- rejection of junk: a ``response.done`` whose ``response.output`` is an array of zeros
  (2 MB and 600 KB: longer than ``MAX_ARRAY_LENGTH``, refused before any element is
  looked at; 20 KB: under it, refused at its first element) must raise ``ProtocolError``
  in about the time ``orjson.loads`` of it takes (it used to take ~24 s and 2.3 GB for
  the 2 MB frame). Printed: the first call (cold allocator) and the best of the repeats,
  in ms, next to ``orjson.loads``.

Best of 5 repeats.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
import timeit
from collections.abc import Callable
from functools import partial

import orjson

from orchestrator.protocol import (
    Dialect,
    InputAudioBufferAppend,
    ProtocolError,
    ResponseOutputAudioDelta,
    decode_server_event,
    encode_client_event,
    new_id,
)

PCM_BYTES = 4800  # 100 ms of 24 kHz mono PCM16 -> 6400 base64 chars

# Real server frames. GA: OpenAI gpt-realtime, recorded by pydantic-ai's websocket
# cassettes (tests/realtime/cassettes, test_audio_in_server_vad_turn and
# test_tool_call_round). Beta: gpt-4o-realtime-preview-2024-12-17 data-channel dumps
# (ctvidic/banyan-landing docs/log_1.md, log_2.md). Only the beta session's long
# instructions and tool description are shortened.
_BETA_INSTRUCTIONS = (
    "\n# Personality and Tone\n## Identity\nSarah is a friendly, empathetic, and "
    "knowledgeable frontline customer service representative for a bill negotiation "
    "service. She is patient and aims to resolve customer issues efficiently and "
    "pleasantly.\n\n## Task\nYour primary goal is to understand the customer's billing "
    "issue, gather necessary information, and attempt to negotiate a better rate or "
    "resolve their problem. If you determine the issue requires a supervisor or is beyond "
    "your scope, you will escalate the call using the 'transferToSupervisor' tool.\n"
)
CAPTURED: dict[Dialect, dict[str, str]] = {
    Dialect.GA: {
        "response.done": (
            '{"type": "response.done", "event_id": "event_E6U0yAVEcd97wmd3MgWAH", "response": '
            '{"object": "realtime.response", "id": "resp_E6U0xfWhN878XBMhc0LKn", "status": '
            '"completed", "status_details": null, "output": [{"id": "item_E6U0xWSFIFri2uw2kTLLq", '
            '"type": "message", "status": "completed", "role": "assistant", "content": [{"type": '
            '"output_audio", "transcript": "Hello, Marcelo! Great to meet you. How can I help you '
            'today?"}]}], "conversation_id": "conv_E6U0wZ7az3EZovEnFLqH4", "output_modalities": '
            '["audio"], "max_output_tokens": "inf", "audio": {"output": {"format": {"type": '
            '"audio/pcm", "rate": 24000}, "voice": "alloy"}}, "usage": {"total_tokens": 205, '
            '"input_tokens": 41, "output_tokens": 164, "input_token_details": {"text_tokens": 14, '
            '"audio_tokens": 27, "image_tokens": 0, "cached_tokens": 0, "cached_tokens_details": '
            '{"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}}, "output_token_details": '
            '{"text_tokens": 28, "audio_tokens": 136}}, "metadata": null}}'
        ),
        "response.created": (
            '{"type": "response.created", "event_id": "event_E6U0xqU33ZWMW0z5TtF7M", "response": '
            '{"object": "realtime.response", "id": "resp_E6U0xfWhN878XBMhc0LKn", "status": '
            '"in_progress", "status_details": null, "output": [], "conversation_id": '
            '"conv_E6U0wZ7az3EZovEnFLqH4", "output_modalities": ["audio"], "max_output_tokens": '
            '"inf", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": '
            '"alloy"}}, "usage": null, "metadata": null}}'
        ),
        "session.updated": (
            '{"type": "session.updated", "event_id": "event_E6U11AdRlaaex9yo8mvUM", "session": '
            '{"type": "realtime", "object": "realtime.session", "id": "sess_E6U1105MHBiPou6PkKs3c", '
            '"model": "gpt-realtime", "output_modalities": ["text"], "instructions": "Use the '
            'get_weather tool for any weather question, then answer in one short sentence.", '
            '"tools": [{"type": "function", "name": "get_weather", "description": "Look up the '
            'weather for a city.", "parameters": {"additionalProperties": false, "properties": '
            '{"city": {"type": "string"}}, "required": ["city"], "type": "object"}}], '
            '"tool_choice": "auto", "max_output_tokens": "inf", "tracing": null, "truncation": '
            '"auto", "prompt": null, "expires_at": 1785217655, "audio": {"input": {"format": '
            '{"type": "audio/pcm", "rate": 24000}, "transcription": {"model": '
            '"gpt-realtime-whisper", "language": null, "prompt": null}, "noise_reduction": null, '
            '"turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, '
            '"silence_duration_ms": 200, "idle_timeout_ms": null, "create_response": true, '
            '"interrupt_response": true}}, "output": {"format": {"type": "audio/pcm", "rate": '
            '24000}, "voice": "alloy", "speed": 1.0}}, "include": null}}'
        ),
    },
    Dialect.BETA: {
        "response.done": (
            '{"type": "response.done", "event_id": "event_BaPseLcVszDGQAsybzMKU", "response": '
            '{"object": "realtime.response", "id": "resp_BaPscwv3s516PpNOAkRf1", "status": '
            '"completed", "status_details": null, "output": [{"id": "item_BaPscatps2ko5ZWLbbd3V", '
            '"object": "realtime.item", "type": "message", "status": "completed", "role": '
            '"assistant", "content": [{"type": "audio", "transcript": "Hi there! Thank you for '
            'calling. My name is Sarah. How can I assist you with your billing issue today?"}]}], '
            '"conversation_id": "conv_BaPscIZ7aWE0hH59M3OYF", "modalities": ["text", "audio"], '
            '"voice": "coral", "output_audio_format": "pcm16", "temperature": 0.8, '
            '"max_output_tokens": "inf", "usage": {"total_tokens": 1010, "input_tokens": 853, '
            '"output_tokens": 157, "input_token_details": {"text_tokens": 853, "audio_tokens": 0, '
            '"cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}}, '
            '"output_token_details": {"text_tokens": 38, "audio_tokens": 119}}, "metadata": null}}'
        ),
        "response.created": (
            '{"type": "response.created", "event_id": "event_BaPsc92k7CSjgXWr8weP0", "response": '
            '{"object": "realtime.response", "id": "resp_BaPscwv3s516PpNOAkRf1", "status": '
            '"in_progress", "status_details": null, "output": [], "conversation_id": '
            '"conv_BaPscIZ7aWE0hH59M3OYF", "modalities": ["text", "audio"], "voice": "coral", '
            '"output_audio_format": "pcm16", "temperature": 0.8, "max_output_tokens": "inf", '
            '"usage": null, "metadata": null}}'
        ),
        "session.updated": orjson.dumps(
            {
                "type": "session.updated",
                "event_id": "event_BaU74G0S8njhPCL1i2NXo",
                "session": {
                    "id": "sess_BaU73ydXrcyhUDhOROj1g",
                    "object": "realtime.session",
                    "expires_at": 1748037062,
                    "input_audio_noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 200,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": {
                        "model": "whisper-1",
                        "language": "en",
                        "prompt": None,
                    },
                    "client_secret": None,
                    "include": None,
                    "model": "gpt-4o-realtime-preview-2024-12-17",
                    "modalities": ["audio", "text"],
                    "instructions": _BETA_INSTRUCTIONS,
                    "voice": "coral",
                    "output_audio_format": "pcm16",
                    "tool_choice": "auto",
                    "temperature": 0.8,
                    "max_response_output_tokens": "inf",
                    "speed": 1,
                    "tools": [
                        {
                            "name": "transferToSupervisor",
                            "description": "Triggers a transfer of the user to a designated "
                            "supervisor. \nUse this tool when the situation requires escalation "
                            "to a supervisor as per your instructions.",
                            "parameters": {
                                "type": "object",
                                "properties": {
                                    "destination_agent_name": {
                                        "type": "string",
                                        "description": "The name of the supervisor agent to "
                                        "transfer to. This must be one of the available "
                                        "supervisors listed.",
                                        "enum": ["marco_supervisor_biller"],
                                    },
                                    "reason": {
                                        "type": "string",
                                        "description": "A clear and concise reason why this "
                                        "transfer is necessary.",
                                    },
                                    "conversation_summary": {
                                        "type": "string",
                                        "description": "A brief summary of the conversation so "
                                        "far, to provide context for the supervisor.",
                                    },
                                },
                                "required": [
                                    "destination_agent_name",
                                    "reason",
                                    "conversation_summary",
                                ],
                            },
                            "type": "function",
                        }
                    ],
                },
            }
        ).decode(),
    },
}


def _frame(dialect: Dialect, audio_b64: str) -> str:
    wire = "response.output_audio.delta" if dialect is Dialect.GA else "response.audio.delta"
    return orjson.dumps(
        {
            "type": wire,
            "event_id": new_id("event_"),
            "response_id": new_id("resp_"),
            "item_id": new_id("item_"),
            "output_index": 0,
            "content_index": 0,
            "delta": audio_b64,
        }
    ).decode()


def _bench(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def junk_response_done(size: int) -> str:
    """A ``response.done`` frame of about ``size`` bytes whose ``response.output`` is an
    array of zeros instead of items."""
    head = (
        '{"type":"response.done","event_id":"event_1","response":{"object":'
        '"realtime.response","id":"resp_1","status":"completed","output":['
    )
    n = max(1, (size - len(head) - 3) // 2)
    return head + ",".join(["0"] * n) + "]}}"


def _reject_ms(frame: str, dialect: Dialect) -> float:
    start = time.perf_counter()
    try:
        decode_server_event(frame, dialect)
    except ProtocolError as exc:
        assert exc.event_type == "response.done" and exc.path.startswith("$.response.output")
    else:
        raise AssertionError("junk frame decoded")
    return (time.perf_counter() - start) * 1e3


def bench_junk(repeat: int = 5) -> None:
    """Print how long rejecting junk ``response.done`` frames takes (see module doc)."""
    print(f"junk response.done rejection; ms, first call and best of {repeat}")
    for size in (2_000_000, 600_000, 20_000):
        frame = junk_response_done(size)
        loads_ms = min(timeit.repeat(partial(orjson.loads, frame), number=1, repeat=repeat))
        print(f"  {len(frame):>9,d} bytes, {frame.count(','):>7,d} zeros:")
        print(f"    {'orjson.loads':44s} {loads_ms * 1e3:8.2f} ms")
        for dialect in Dialect:
            first = _reject_ms(frame, dialect)
            best = min(_reject_ms(frame, dialect) for _ in range(repeat))
            label = f"decode_server_event [{dialect.name}] -> ProtocolError"
            print(f"    {label:44s} {best:8.2f} ms  (first {first:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000, help="calls per repeat")
    args = parser.parse_args()
    audio = base64.b64encode(os.urandom(PCM_BYTES)).decode()
    print(f"payload: {len(audio)} base64 chars; µs/op, best of 5 x {args.number}")
    for dialect in Dialect:
        frame = _frame(dialect, audio)
        event = decode_server_event(frame, dialect)
        assert isinstance(event, ResponseOutputAudioDelta)
        append_dict = {"type": "input_audio_buffer.append", "audio": audio}
        append = InputAudioBufferAppend(audio=audio)
        rows = [
            ("orjson.loads(output_audio.delta frame)", lambda f=frame: orjson.loads(f)),
            (
                "decode_server_event(same frame)",
                lambda f=frame, d=dialect: decode_server_event(f, d),
            ),
            ("orjson.dumps(append dict).decode()", lambda a=append_dict: orjson.dumps(a).decode()),
            (
                "encode_client_event(InputAudioBufferAppend)",
                lambda e=append, d=dialect: encode_client_event(e, d),
            ),
        ]
        print(f"[{dialect.name}] audio delta frame {len(frame)} bytes")
        for label, fn in rows:
            print(f"  {label:46s} {_bench(fn, args.number):8.2f} µs")
        for wire, text in CAPTURED[dialect].items():
            decoded = decode_server_event(text, dialect)
            assert decoded.type.startswith(wire.split(".")[0]), decoded  # a known event
            assert not type(decoded).__name__.startswith("Unknown"), decoded
            raw_us = _bench(lambda f=text: orjson.loads(f), args.number)
            codec_us = _bench(lambda f=text, d=dialect: decode_server_event(f, d), args.number)
            print(f"  {wire} ({len(text)} bytes)")
            print(f"    {'orjson.loads':44s} {raw_us:8.2f} µs")
            print(f"    {'decode_server_event':44s} {codec_us:8.2f} µs  ({codec_us / raw_us:.1f}x)")
    bench_junk()


if __name__ == "__main__":
    main()
