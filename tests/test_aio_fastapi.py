"""``examples/fastapi_embed.py``: one conversation per HTTP request, served by uvicorn on
127.0.0.1 port 0 under plain ``asyncio.run``. Skipped when FastAPI/uvicorn (optional,
examples only) are not installed."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_embed.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("fastapi_embed", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http(method: str, url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status, response.read()


def test_a_conversation_per_request_and_metrics() -> None:
    app = load_example().create_app()

    async def main() -> dict[str, Any]:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # listening first: requests wait in its backlog until up
        sock.listen()
        port = sock.getsockname()[1]
        async with asyncio.timeout(45):
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            base = f"http://127.0.0.1:{port}"
            out: dict[str, Any] = {}
            status, body = await asyncio.to_thread(
                http, "POST", f"{base}/conversations?speech_ms=400"
            )
            out["post"] = (status, json.loads(body))
            status, body = await asyncio.to_thread(
                http, "GET", f"{base}/conversations/{out['post'][1]['session_id']}"
            )
            out["get"] = json.loads(body)
            out["metrics"] = (await asyncio.to_thread(http, "GET", f"{base}/metrics"))[1].decode()
            server.should_exit = True
            await task
        return out

    out = asyncio.run(main())
    status, posted = out["post"]
    assert status == 200
    assert posted["state"] == "done" and posted["result"]["status"] == "completed"
    assert out["get"]["session_id"] == posted["session_id"]
    names = {s.name for f in text_string_to_metric_families(out["metrics"]) for s in f.samples}
    assert "orchestrator_sessions_total" in names and "orchestrator_ttfb_ms_bucket" in names
