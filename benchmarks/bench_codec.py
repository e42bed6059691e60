"""Micro-benchmark of the protocol codec against raw orjson (prints µs/op).

Run: ``python benchmarks/bench_codec.py [--number N]``. Measures, for both dialects:
``orjson.loads`` of a realistic output-audio delta frame (6 KB base64, 100 ms of 24 kHz
PCM16 would be 6.4 KB), ``decode_server_event`` of the same frame, ``orjson.dumps`` of an
``input_audio_buffer.append`` dict and ``encode_client_event`` of the equivalent
``InputAudioBufferAppend``. Best of 5 repeats.
"""

from __future__ import annotations

import argparse
import base64
import os
import timeit
from collections.abc import Callable

import orjson

from orchestrator.protocol import (
    Dialect,
    InputAudioBufferAppend,
    ResponseOutputAudioDelta,
    decode_server_event,
    encode_client_event,
    new_id,
)

PCM_BYTES = 4800  # 100 ms of 24 kHz mono PCM16 -> 6400 base64 chars


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
        print(f"[{dialect.name}] frame {len(frame)} bytes")
        for label, fn in rows:
            print(f"  {label:46s} {_bench(fn, args.number):8.2f} µs")


if __name__ == "__main__":
    main()
