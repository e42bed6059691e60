"""Run a few conversations from an asyncio program (the pattern for FastAPI, aiohttp, ...).

The supervisor is trio code; :func:`orchestrator.aio.open_aio_supervisor` runs it as a
trio guest run on the running asyncio loop, so an asyncio application awaits session
handles and workloads like any other coroutine::

    python examples/asyncio_embed.py                     # embedded server, 4 conversations
    python examples/asyncio_embed.py --sessions 10 --url ws://127.0.0.1:8765/v1

Without ``--url`` the embedded Realtime server runs inside the same guest run, on a free
loopback port; it takes a few seconds. Prints one line per conversation and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio

from orchestrator.aio import open_aio_supervisor
from orchestrator.mockserver import MockServer, ServerConfig
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ListSink
from orchestrator.transport import build_target


async def main(url: str | None, model: str, sessions: int) -> int:
    sink = ListSink()
    async with open_aio_supervisor(sink=sink, timeline_interval_s=None) as sup:
        if url is None:  # the embedded server, as a trio service of the guest run
            port = await sup.start_service(MockServer(ServerConfig(port=0)).serve)
            url = f"ws://127.0.0.1:{port}/v1"
        target = build_target(provider="custom", url=url, model=model)
        spec = SessionSpec(target=target, config=voice_session_config(), max_duration=60.0)
        conversation = BuiltinConversation(speech_ms=1200)
        handles = [await sup.start(spec, conversation) for _ in range(sessions)]
        results = await asyncio.gather(*(h.wait() for h in handles))
        for handle, result in zip(handles, results, strict=True):
            if result is None:
                print(f"{handle.session_id}: never started ({handle.dropped})")
                continue
            turns = [t for t in sink.turns if t.session_id == handle.session_id]
            v2v = ", ".join(f"{t.voice_to_voice_ms:.0f}" for t in turns if t.voice_to_voice_ms)
            print(
                f"{handle.session_id}: {result.status}"
                + (f" ({result.reason})" if result.reason else "")
                + f"; session_ready_ms {result.session_ready_ms or 0:.1f}"
                + f"; voice_to_voice_ms [{v2v}]"
            )
        snap = sup.snapshot()
        print(f"completed {snap.completed}, failed {snap.failed}, cancelled {snap.cancelled}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="server (default: the embedded one on loopback)")
    parser.add_argument("--model", default="gpt-realtime")
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.url, args.model, args.sessions)))
