"""The websocket transport's floor: CPU per received message, layer by layer.

    python benchmarks/bench_ws_floor.py [--connections 50] [--messages 2000]

``--connections`` TCP loopback connections in this process each receive ``--messages``
server frames as a conversation's answer brings them (per 100 ms of answer: one audio
delta of 100 ms PCM16, one transcript delta, and every fifth time a small event). A
raw-socket peer writes the pre-built frames (unmasked, as a server sends them) as fast
as the client reads, so the client's receive path is what is timed. Each variant reads
the same bytes; process CPU per message (``time.process_time``) is printed, and each
row's cost over the row above it:

1. ``socket``: ``receive_some`` and drop the bytes (the I/O floor, peer included);
2. ``wsproto inline``: the same task feeds wsproto and joins each message (no extra task,
   no channel: what a websocket client built on wsproto needs at least);
3. ``trio-websocket``: ``WebSocketConnection.get_message`` (its reader task parses and
   hands each message over a memory channel to the caller's task);
4. ``Connection.receive``: this project's transport over trio-websocket;
5. ``+ decode``: plus :func:`orchestrator.protocol.decode_server_event` (the typed event).

Each variant runs ``--repeat`` times, interleaved, and its least CPU counts (other jobs on
a shared machine only ever add time).

Then the send side: one 100 ms ``input_audio_buffer.append`` as a masked client frame,
wsproto's serializer (what trio-websocket sends with) against a NumPy XOR masker.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import math
import os
import time
from collections.abc import Awaitable, Callable

import numpy as np
import orjson
import trio
import trio_websocket
import wsproto
import wsproto.events as wse
from wsproto.frame_protocol import FrameProtocol

from orchestrator import protocol as P
from orchestrator.audio import pcm16_to_b64, speech_like
from orchestrator.transport import Target, connect_stream

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_messages(count: int) -> list[bytes]:
    """``count`` server events in the order an answer brings them."""
    audio = pcm16_to_b64(speech_like(100.0, seed=1))
    ids: dict[str, object] = {"event_id": "event_0123456789", "response_id": "resp_0123456789"}
    ids |= {"item_id": "item_0123456789", "output_index": 0, "content_index": 0}
    kinds = [
        {"type": "response.output_audio.delta", **ids, "delta": audio},
        {"type": "response.output_audio_transcript.delta", **ids, "delta": " word"},
    ]
    small = {"type": "rate_limits.updated", "event_id": "event_1", "rate_limits": []}
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        out.extend(orjson.dumps(k) for k in kinds)
        if i % 5 == 4:
            out.append(orjson.dumps(small))
        i += 1
    return out[:count]


def frame(payload: bytes) -> bytes:
    """An unmasked text frame (as a server sends it)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 65536:
        head = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return head + payload


async def serve_raw(stream: trio.SocketStream, frames: list[bytes], interval: float) -> None:
    """Answer one upgrade request, then write ``frames``: all at once (``interval`` 0) or
    one per write every ``interval`` seconds (so each arrives on its own, as paced
    answers do)."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(65536)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    try:
        if interval > 0:
            t0 = trio.current_time()
            for i, f in enumerate(frames):
                await trio.sleep_until(t0 + i * interval)
                await stream.send_all(f)
        else:
            body = b"".join(frames)
            for pos in range(0, len(body), 1 << 16):
                await stream.send_all(body[pos : pos + (1 << 16)])
        await stream.send_eof()
        with trio.move_on_after(10):  # until the client read it all and closed
            while await stream.receive_some(65536):
                pass
    except trio.BrokenResourceError:
        pass  # the client closed first (the ones that stop at --messages)
    await stream.aclose()


Reader = Callable[[trio.SocketStream, int], Awaitable[None]]


async def read_socket(stream: trio.SocketStream, count: int) -> None:
    await stream.send_all(_request())
    while await stream.receive_some(65536):
        pass
    await stream.aclose()


def _request() -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )


async def read_wsproto(stream: trio.SocketStream, count: int) -> None:
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await stream.send_all(ws.send(wse.Request(host="127.0.0.1", target="/v1/realtime")))
    got = 0
    parts: list[str] = []
    while got < count:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("peer closed early")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, wse.TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    "".join(parts)
                    parts.clear()
                    got += 1
    await stream.aclose()


async def read_trio_websocket(stream: trio.SocketStream, count: int) -> None:
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, "127.0.0.1", "/v1/realtime", receive_buffer_size=65536
        )
        for _ in range(count):
            await ws.get_message()
        nursery.cancel_scope.cancel()
    await stream.aclose()


def read_connection(decode: bool) -> Reader:
    target = Target(url="ws://127.0.0.1/v1/realtime")

    async def read(stream: trio.SocketStream, count: int) -> None:
        async with connect_stream(stream, target) as conn:
            if decode:
                for _ in range(count):
                    P.decode_server_event(await conn.receive(), P.Dialect.GA)
            else:
                for _ in range(count):
                    await conn.receive()

    return read


async def tcp_pairs(count: int) -> list[tuple[trio.SocketStream, trio.SocketStream]]:
    """``count`` connected (server end, client end) TCP pairs on 127.0.0.1."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    pairs = []
    for _ in range(count):
        client = await trio.open_tcp_stream("127.0.0.1", port)
        pairs.append((await listeners[0].accept(), client))
    await listeners[0].aclose()
    return pairs


async def run_variant(
    reader: Reader, connections: int, frames: list[bytes], interval: float
) -> float:
    """CPU seconds for ``connections`` clients reading every one of ``frames``."""
    pairs = await tcp_pairs(connections)
    start = time.process_time()
    async with trio.open_nursery() as nursery:
        for server, client in pairs:
            # phases spread over the interval, as independent sessions are
            nursery.start_soon(serve_raw, server, frames, interval)
            nursery.start_soon(reader, client, len(frames))
            await trio.sleep(interval / connections)
    return time.process_time() - start


def send_side(repeat: int) -> tuple[float, float]:
    """µs per 100 ms append frame: wsproto's masked serializer vs a NumPy XOR masker."""
    text = P.encode_client_event(
        P.InputAudioBufferAppend(audio=pcm16_to_b64(speech_like(100.0, seed=2))), P.Dialect.GA
    )
    proto = FrameProtocol(client=True, extensions=[])
    start = time.perf_counter()
    for _ in range(repeat):
        proto.send_data(text, True)
    wsp = (time.perf_counter() - start) / repeat

    def numpy_frame(payload: bytes) -> bytes:
        n = len(payload)
        head = bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
        key = os.urandom(4)
        buf = np.frombuffer(payload + b"\0" * (-n % 4), np.uint32)
        masked = (buf ^ np.frombuffer(key, np.uint32)[0]).tobytes()[:n]
        return head + key + masked

    start = time.perf_counter()
    for _ in range(repeat):
        numpy_frame(text.encode())
    fast = (time.perf_counter() - start) / repeat
    return wsp * 1e6, fast * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--messages", type=int, default=1000, help="per connection")
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=10.0,
        help="one message per write every MS per connection (default 10); 0: all at once",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (minimum)")
    args = parser.parse_args()
    messages = server_messages(args.messages)
    frames = [frame(m) for m in messages]
    total = args.connections * args.messages
    interval = args.interval_ms / 1000.0
    mean_kib = sum(map(len, frames)) / len(frames) / 1024
    pacing = f"one per {args.interval_ms:g} ms" if interval else "all at once"
    print(
        f"bench_ws_floor: {args.connections} loopback connections x {args.messages} server "
        f"messages (mean {mean_kib:.1f} KiB, {pacing}); process CPU per message "
        "(the writing peer's share is in every row: compare the differences)"
    )
    variants: list[tuple[str, Reader]] = [
        ("socket (I/O floor)", read_socket),
        ("wsproto inline", read_wsproto),
        ("trio-websocket", read_trio_websocket),
        ("Connection.receive", read_connection(False)),
        ("+ decode_server_event", read_connection(True)),
    ]
    best = dict.fromkeys(range(len(variants)), math.inf)
    for _ in range(args.repeat):  # interleaved, the minimum of each: a shared box is noisy
        for i, (_name, reader) in enumerate(variants):
            cpu = trio.run(run_variant, reader, args.connections, frames, interval)
            best[i] = min(best[i], cpu)
    previous = None
    for i, (name, _reader) in enumerate(variants):
        per = best[i] / total * 1e6
        extra = "" if previous is None else f"  (+{per - previous:.1f})"
        print(f"  {name:24} {per:7.1f} us{extra}")
        previous = per
    wsp, fast = min(send_side(5000) for _ in range(args.repeat))
    print(
        f"  send: 100 ms append as a masked frame: wsproto {wsp:.1f} us, numpy XOR "
        f"{fast:.1f} us"
    )


if __name__ == "__main__":
    main()
