"""The embedded server's rate limits: realistic ``rate_limits.updated`` and the
``rate_limit_exceeded`` refusal past ``rate_limit_tokens_per_min``."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
import trio.testing
from mockserver_helpers import FAST, mem_connection, next_event, recv_until, send

from orchestrator.mockserver import MockServer, ServerConfig
from orchestrator.mockserver.rate_limits import Bucket, RateLimiter


def _server(**kw: Any) -> MockServer:
    return MockServer(ServerConfig(port=0, latency=FAST, **kw))


def test_bucket_refills_at_limit_per_minute() -> None:
    bucket = Bucket("tokens", 600)
    bucket.take(600.0, 0.0)
    assert bucket.entry(0.0) == {"name": "tokens", "limit": 600, "remaining": 0,
                                 "reset_seconds": 60.0}
    assert bucket.entry(30.0)["remaining"] == 300
    bucket.take(900.0, 30.0)  # into debt: a started response finishes
    assert bucket.entry(30.0)["remaining"] == 0
    assert bucket.retry_after(30.0) == pytest.approx(60.1)
    assert bucket.entry(120.0)["remaining"] == 300


def test_limiter_refuses_with_the_real_error_text() -> None:
    limiter = RateLimiter(tokens_per_min=100, requests_per_min=1000)
    assert limiter.admit("gpt-realtime", 0.0) is None
    limiter.charge(150, 0.0)
    err = limiter.admit("gpt-realtime", 0.0)
    assert err is not None and err["code"] == "rate_limit_exceeded" and err["type"] == "tokens"
    assert re.fullmatch(
        r"Rate limit reached for gpt-realtime in organization org-mock on tokens per min "
        r"\(TPM\): Limit 100, Used 150, Requested 1\. Please try again in [0-9.]+s\. "
        r"Visit https://platform\.openai\.com/account/rate-limits to learn more\.",
        err["message"],
    )
    assert limiter.refused == 1
    assert [e["name"] for e in limiter.entries(0.0, beta=True)] == ["requests", "tokens"]
    assert [e["name"] for e in limiter.entries(0.0, beta=False)] == ["tokens"]


async def test_responses_past_the_token_budget_fail(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(rate_limit_tokens_per_min=100)
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        done = events[-1]["response"]
        assert done["status"] == "completed"
        used = done["usage"]["total_tokens"]
        assert used > 100
        update = await next_event(ws)
        assert update["type"] == "rate_limits.updated"
        (tokens,) = update["rate_limits"]
        assert tokens["name"] == "tokens" and tokens["limit"] == 100
        assert tokens["remaining"] == 0 and tokens["reset_seconds"] > 60.0
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        assert [e["type"] for e in events] == ["response.created", "response.done"]
        failed = events[-1]["response"]
        assert failed["status"] == "failed"
        error = failed["status_details"]["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert error["message"].startswith("Rate limit reached for gpt-realtime")
        # the bucket refills: a minute or two later responses go through again
        await trio.sleep(180)
        await ws.send_message(send({"type": "response.create"}))
        assert (await recv_until(ws, "response.done"))[-1]["response"]["status"] == "completed"
    assert server.stats.faults["rate_limited"] == 1
    assert server.rate_limiter.refused == 1


async def test_beta_updates_carry_requests_and_tokens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(rate_limit_requests_per_min=50)
    async with mem_connection(
        server, extra_headers=[("OpenAI-Beta", "realtime=v1")]
    ) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        update = next(e for e in events if e["type"] == "rate_limits.updated")
        requests, tokens = update["rate_limits"]
        assert requests["name"] == "requests" and requests["limit"] == 50
        assert requests["remaining"] == 49 and tokens["name"] == "tokens"
