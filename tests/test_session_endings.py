"""Nothing hangs: every way a session can end while the caller is still speaking.

Each test ends the session mid-utterance (a fatal ``error`` event; a close with 1000,
1008 or 4000; ``max_duration``; ``abort``; cancellation) and checks that the driver call
in progress returns or raises, that the session has a result naming why, and that the
block ends by itself. All on the fake clock over an in-process fake server, each with a
``fail_after`` guard; the last test does the same through ``orchestrator run --url``
against a real loopback websocket server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio_websocket

from orchestrator import protocol as P
from orchestrator.metrics import read_results
from orchestrator.protocol import Dialect, decode_client_event
from orchestrator.session import (
    AudioSource,
    ReconnectPolicy,
    SessionEnded,
    SessionSpec,
    open_session,
)
from orchestrator.transport import TransportClosed

GUARD_S = 120  # fake seconds: far more than any of these sessions may take

_SESSION = {
    "type": "realtime",
    "id": "sess_1",
    "object": "realtime.session",
    "model": "gpt-realtime",
    "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
}


def _frame(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def _fatal_error(code: str = "invalid_api_key") -> str:
    return _frame(
        {
            "type": "error",
            "event_id": "evt_1",
            "error": {"type": "invalid_request_error", "code": code, "message": "bad"},
        }
    )


class MidTurnServer:
    """A fake connection: ``session.created`` at once; after the ``after``-th audio
    append it sends ``frames`` and, when ``close_code`` is set, closes with that code."""

    def __init__(
        self, after: int, frames: tuple[str, ...] = (), close_code: int | None = None
    ) -> None:
        self._tx, self._rx = trio.open_memory_channel[str](1000)
        self._tx.send_nowait(_frame({"type": "session.created", "session": _SESSION}))
        self.after = after
        self.frames = frames
        self.close_code = close_code
        self.appends = 0
        self.closed = False

    async def send(self, text: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise TransportClosed(self.close_code or 1006, "closed")
        event = decode_client_event(text, Dialect.GA)
        if type(event) is P.InputAudioBufferAppend:
            self.appends += 1
            if self.appends == self.after:
                for frame in self.frames:
                    self._tx.send_nowait(frame)
                if self.close_code is not None:
                    self.closed = True
                    self._tx.close()

    async def receive(self) -> str:
        try:
            return await self._rx.receive()
        except trio.EndOfChannel:
            raise TransportClosed(self.close_code or 1006, "server closed") from None

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True
        self._tx.close()
        await trio.lowlevel.checkpoint()


def _spec(server: MidTurnServer, **kwargs: Any) -> SessionSpec:
    @asynccontextmanager
    async def factory() -> AsyncIterator[MidTurnServer]:
        yield server

    kwargs.setdefault("reconnect", ReconnectPolicy(max_attempts=0))
    return SessionSpec(connect=factory, **kwargs)


SPEECH = AudioSource.synthetic(3000)  # 30 frames of 100 ms


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        (MidTurnServer(5, frames=(_fatal_error(),)), "invalid_api_key"),
        (MidTurnServer(5, close_code=1000), "1000"),
        (MidTurnServer(5, close_code=1008), "1008"),
        (MidTurnServer(5, close_code=4000), "4000"),
    ],
    ids=["fatal-error", "close-1000", "close-1008", "close-4000"],
)
async def test_server_ends_the_session_mid_utterance(
    autojump_clock: object, server: MidTurnServer, needle: str
) -> None:
    with trio.fail_after(GUARD_S):
        async with open_session(_spec(server)) as session:
            with pytest.raises(SessionEnded):
                await session.say_audio(SPEECH, commit="vad")
            with pytest.raises(SessionEnded):
                await session.send_audio(SPEECH)
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.reason is not None and needle in result.reason
    assert result.failure is not None and needle in result.failure.message
    assert [t.status for t in session.turns] == ["failed"]
    assert server.appends < 30  # the caller stopped talking when the session ended


async def test_a_fatal_error_names_where_it_was_seen(autojump_clock: object) -> None:
    server = MidTurnServer(5, frames=(_fatal_error("insufficient_quota"),))
    with trio.fail_after(GUARD_S):
        async with open_session(_spec(server)) as session:
            with pytest.raises(SessionEnded):
                await session.say_audio(SPEECH, commit="vad")
    failure = session.result.failure if session.result else None
    assert failure is not None
    assert (failure.type, failure.where) == ("ServerError", "server")
    assert session.turns[0].failure == failure  # the turn failed for the same reason


async def test_max_duration_ends_a_session_mid_utterance(autojump_clock: object) -> None:
    server = MidTurnServer(10_000)  # never interferes
    with trio.fail_after(GUARD_S):
        async with open_session(_spec(server, max_duration=1.0)) as session:
            with pytest.raises(SessionEnded):
                await session.say_audio(SPEECH, commit="vad")
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.failure is not None and result.failure.type == "MaxDurationExceeded"
    assert result.t_end_s == pytest.approx(1.0)


async def test_max_duration_bounds_the_driver_too(autojump_clock: object) -> None:
    """A driver busy with something else when its session ends is cancelled after the
    grace period; the block then ends normally."""
    server = MidTurnServer(10_000)
    spec = _spec(server, max_duration=1.0, driver_grace=0.5)
    with trio.fail_after(GUARD_S):
        async with open_session(spec) as session:
            await trio.sleep_forever()
    assert trio.current_time() == pytest.approx(1.5)
    assert session.result is not None and session.result.status == "failed"


async def test_abort_mid_utterance_releases_the_speaker(autojump_clock: object) -> None:
    server = MidTurnServer(10_000)
    with trio.fail_after(GUARD_S):
        async with open_session(_spec(server)) as session:

            async def abort_later() -> None:
                await trio.sleep(1.0)
                session.abort()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(abort_later)
                with pytest.raises(SessionEnded):
                    await session.say_audio(SPEECH, commit="vad")
    assert session.result is not None and session.result.status == "cancelled"
    assert [t.status for t in session.turns] == ["cancelled"]


async def test_cancel_mid_utterance_ends_the_session_cancelled(autojump_clock: object) -> None:
    server = MidTurnServer(10_000)
    with trio.fail_after(GUARD_S):
        with trio.move_on_after(1.0):
            async with open_session(_spec(server)) as session:
                await session.say_audio(SPEECH, commit="vad")
    assert session.result is not None and session.result.status == "cancelled"
    assert session.result.reason is None and session.result.failure is None


async def test_speakers_queued_behind_a_dead_session_are_released(
    autojump_clock: object,
) -> None:
    """More utterances than the audio-in channel holds, all waiting, when a fatal error
    ends the session: every one of them is released."""
    server = MidTurnServer(3, frames=(_fatal_error(),))
    outcomes: list[str] = []

    async def speak(session: Any) -> None:
        try:
            await session.send_audio(SPEECH)
        except SessionEnded:
            outcomes.append("ended")

    with trio.fail_after(GUARD_S):
        async with open_session(_spec(server)) as session:
            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(speak, session)
    assert outcomes == ["ended"] * 8


async def test_a_connect_that_never_completes_times_out(autojump_clock: object) -> None:
    @asynccontextmanager
    async def never() -> AsyncIterator[Any]:
        await trio.sleep_forever()
        yield  # pragma: no cover

    spec = SessionSpec(
        connect=never, connect_timeout=3.0, reconnect=ReconnectPolicy(max_attempts=0)
    )
    with trio.fail_after(GUARD_S):
        async with open_session(spec) as session:
            pass
    result = session.result
    assert result is not None and result.status == "failed"
    assert result.failure is not None and result.failure.type == "ConnectTimeout"
    assert trio.current_time() == pytest.approx(3.0)


async def test_a_session_that_never_gets_ready_times_out(autojump_clock: object) -> None:
    server = MidTurnServer(10_000)
    await server.receive()  # swallow session.created: the session never gets ready
    spec = _spec(server, ready_timeout=2.0)
    with trio.fail_after(GUARD_S):
        async with open_session(spec) as session:
            pass
    result = session.result
    assert result is not None and result.failure is not None
    assert result.failure.type == "SessionReadyTimeout"
    assert result.reason is not None and "ready_timeout=2.0s" in result.reason


# ---------------------------------------------------------------------------- CLI
async def _misbehaving_server(mode: str, task_status: Any) -> None:
    """A loopback websocket server that answers the session set-up, then, while the
    caller is speaking (third append), sends a fatal error or closes with 1000."""

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message(_frame({"type": "session.created", "session": _SESSION}))
        appends = 0
        while True:
            try:
                data = orjson.loads(await ws.get_message())
            except trio_websocket.ConnectionClosed:
                return
            if data["type"] == "session.update":
                session = {**_SESSION, **data["session"]}
                await ws.send_message(
                    _frame({"type": "session.updated", "event_id": "e", "session": session})
                )
            elif data["type"] == "input_audio_buffer.append":
                appends += 1
                if appends == 3:
                    if mode == "fatal":
                        await ws.send_message(_fatal_error())
                    else:
                        await ws.aclose(1000, "bye")
                        return

    await trio_websocket.serve_websocket(
        handler, "127.0.0.1", 0, ssl_context=None, task_status=task_status
    )


@pytest.mark.parametrize(("mode", "needle"), [("fatal", "invalid_api_key"), ("close", "1000")])
async def test_cli_run_ends_by_itself_against_a_misbehaving_server(
    tmp_path: Path, mode: str, needle: str
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(_misbehaving_server, mode)
            port = server.port
            out = tmp_path / "out"
            argv = [
                sys.executable, "-m", "orchestrator", "run",
                "--url", f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
                "--sessions", "3", "--concurrency", "3", "--out", str(out), "--quiet",
            ]  # fmt: skip
            env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key"}
            proc = await trio.run_process(
                argv, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
            nursery.cancel_scope.cancel()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    results = read_results(out / "results.jsonl")
    assert len(results.sessions) == 3
    for result in results.sessions:
        assert result.status == "failed" and result.reason and needle in result.reason
