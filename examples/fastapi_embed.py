"""A FastAPI service that starts one conversation per HTTP request (asyncio host).

FastAPI is an optional dependency of this example only (``pip install fastapi uvicorn``)::

    python examples/fastapi_embed.py                  # http://127.0.0.1:8000, embedded server
    python examples/fastapi_embed.py --url ws://127.0.0.1:8765/v1

    curl -X POST 'http://127.0.0.1:8000/conversations'             # runs one, returns its result
    curl -X POST 'http://127.0.0.1:8000/conversations?wait=false'  # starts one, returns its id
    curl 'http://127.0.0.1:8000/conversations/s000001'             # its state / result
    curl 'http://127.0.0.1:8000/status'                            # live snapshot
    curl 'http://127.0.0.1:8000/metrics'                           # Prometheus

The app's lifespan opens :func:`orchestrator.aio.open_aio_supervisor` (trio in guest mode
on uvicorn's asyncio loop). A request that is cancelled (the client went away) stops
waiting; the conversation goes on and is recorded. At shutdown the supervisor drains:
running conversations get ``GRACE_S`` seconds, then they are cancelled.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.aio import AioSessionHandle, AioSupervisor, open_aio_supervisor
from orchestrator.metrics import to_json_line
from orchestrator.mockserver import MockServer, ServerConfig
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.spec import SessionSpec
from orchestrator.transport import build_target

GRACE_S = 10.0


def create_app(url: str | None = None, model: str = "gpt-realtime") -> FastAPI:
    """The app; ``url`` is the Realtime server (``None``: the embedded one, on loopback)."""
    handles: dict[str, AioSessionHandle] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_aio_supervisor(metrics=True, timeline_interval_s=None) as sup:
            target_url = url
            if target_url is None:
                port = await sup.start_service(MockServer(ServerConfig(port=0)).serve)
                target_url = f"ws://127.0.0.1:{port}/v1"
            target = build_target(provider="custom", url=target_url, model=model)
            app.state.sup = sup
            app.state.spec = SessionSpec(
                target=target, config=voice_session_config(), max_duration=60.0, label="http"
            )
            yield
            await sup.drain(GRACE_S)

    app = FastAPI(title="conversations", lifespan=lifespan)

    def describe(handle: AioSessionHandle) -> dict[str, Any]:
        result = handle.result
        return {
            "session_id": handle.session_id,
            "state": handle.state,
            "result": None if result is None else orjson.loads(to_json_line(result)),
        }

    @app.post("/conversations")
    async def start(request: Request, wait: bool = True, speech_ms: float = 1200.0) -> Any:
        sup: AioSupervisor = request.app.state.sup
        handle = await sup.start(request.app.state.spec, BuiltinConversation(speech_ms=speech_ms))
        handles[handle.session_id] = handle
        if wait:
            await handle.wait()
        return describe(handle)

    @app.get("/conversations/{session_id}")
    async def show(session_id: str) -> Any:
        handle = handles.get(session_id)
        if handle is None:
            raise HTTPException(status_code=404, detail=f"no conversation {session_id}")
        return describe(handle)

    @app.get("/status")
    async def status(request: Request) -> Any:
        return request.app.state.sup.snapshot().to_dict()

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        registry = request.app.state.sup.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Realtime server (default: the embedded one)")
    parser.add_argument("--model", default="gpt-realtime")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(create_app(args.url, args.model), host=args.host, port=args.port)
