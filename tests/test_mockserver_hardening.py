"""Embedded server hardening (issue #8): bad client frames do not flood the log, and
only real loopback hosts count as loopback (memory streams, MockClock)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from mockserver_helpers import fast_config, mem_connection, next_event, send

from orchestrator.mockserver import MockServer, ServerConfig
from orchestrator.mockserver.config import ConfigError, is_loopback
from orchestrator.mockserver.connection import REFUSALS_LOGGED


def _refusal_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "orchestrator.mockserver" and r.levelno == logging.WARNING
    ]


async def test_bad_frames_are_logged_a_few_times_then_counted(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.mockserver")
    server = MockServer(fast_config())
    bad_frames = 500
    async with mem_connection(server) as ws:
        await next_event(ws)  # session.created
        for i in range(bad_frames):
            await ws.send_message("{not json" if i % 2 else send({"type": "no.such.event"}))
            assert (await next_event(ws))["type"] == "error"  # every one is still answered
    assert sum(server.stats.client_errors.values()) == bad_frames
    warnings = _refusal_warnings(caplog)
    refused = [m for m in warnings if ": refused " in m]
    assert len(refused) == REFUSALS_LOGGED
    assert "further refusals on this connection are counted" in refused[-1]
    summary = [m for m in warnings if "more refused client events" in m]
    assert summary == [
        f"connection 0: {bad_frames - REFUSALS_LOGGED} more refused client events not "
        f"logged above ({bad_frames} in all on this connection)"
    ]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and ": refused " in r.msg]
    assert len(debug) == bad_frames - REFUSALS_LOGGED


async def test_a_few_bad_frames_are_all_warnings_without_a_summary(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.mockserver")
    server = MockServer(fast_config())
    for _ in range(2):  # the limit is per connection
        async with mem_connection(server) as ws:
            await next_event(ws)
            for _ in range(REFUSALS_LOGGED):
                await ws.send_message("[]")
                assert (await next_event(ws))["type"] == "error"
    warnings = _refusal_warnings(caplog)
    assert len([m for m in warnings if ": refused " in m]) == 2 * REFUSALS_LOGGED
    assert not [m for m in warnings if "more refused" in m]


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "127.0.0.1",
        "127.1.2.3",
        "127.255.255.254",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
    ],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    assert ServerConfig(host=host, port=0).host == host


@pytest.mark.parametrize(
    "host",
    [
        "127.evil.example",
        "127.0.0.1.evil.example",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
        "evil-localhost",
        "localhost..",
        "[127.0.0.1]x",
        "128.0.0.1",
        "0.0.0.0",
        "::",
        "[::]",
        "::2",
        "10.0.0.1",
        "192.168.1.1",
        "::ffff:10.0.0.1",
        "",
    ],
)
def test_names_that_only_look_like_loopback_are_refused(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="refusing to bind"):
        ServerConfig(host=host, port=0)
    assert ServerConfig(host=host, port=0, allow_remote=True).allow_remote
