"""Per-core efficiency, side by side: this project against a plain asyncio program on the
official ``openai`` SDK, driving the same built-in conversation against the same embedded
server.

Usage::

    python benchmarks/bench_baseline.py                         # 100,200,400 x 6 s, ~2 min
    python benchmarks/bench_baseline.py --concurrency 200 --duration 25 --json /tmp/b.json
    python benchmarks/bench_baseline.py --clients orchestrator,bare --concurrency 50,100 --steps
    python benchmarks/bench_baseline.py --concurrency 50,100,150 --repeat 3   # medians of 3

For each concurrency and each client: fresh embedded server process(es)
(``orchestrator serve --child``, loopback, sharing one port with ``SO_REUSEPORT``, pinned to
the cores the client does not use, each writing ground truth), then the client in its own
process pinned to one core (``os.sched_setaffinity``), closed model: ``N`` conversations at
once, each slot starting its next one when the last ended, no start after ``--duration``.

- (a) ``orchestrator``: :func:`~orchestrator.supervisor.open_supervisor` running the
  :class:`~orchestrator.scenario.BuiltinConversation` as ``orchestrator run`` does (same
  session config and pacing, the run's GC tuning and full collector);
- (b) ``sdk``: ``AsyncOpenAI(...).realtime.connect()`` written as a user would: connect,
  ``session.update`` (the same config) and wait for ``session.updated``, append the same
  caller audio (base64 PCM16, 100 ms frames) on absolute deadlines ``t0 + n*100 ms``, keep
  appending silence until ``speech_stopped`` (as the project's tail does), iterate events,
  base64-decode every audio delta, close after ``response.done``;
- (c) ``bare`` (``--clients ...,bare``): the same conversation on trio + trio-websocket with
  no orchestrator code: the floor of this transport (``--steps`` also counts trio task
  steps per conversation of the trio clients);
- (d) ``wsproto`` (``--clients ...,wsproto``): that conversation on trio + wsproto directly,
  parsing in the receiving task (:class:`WsprotoSocket`): the floor of the alternative to
  trio-websocket, for the design question of how much a different transport would buy.

Printed per client and concurrency (and written with ``--json FILE``):

- ``cpu/conv``: user+sys CPU of the client process during the run (imports and audio
  preparation excluded: measured from after them) per completed conversation;
- ``ttfb err`` / ``v2v err``: client measurement minus the server's ground truth, joined by
  ``response_id``. ttfb truth: ground truth ``first_delta.actual - anchor_time``
  (``speech_stopped`` sent -> first delta sent, on the server's clock); v2v truth: that plus
  the planned time from the end of speech to the deadline of the append whose arrival lets
  the server's VAD end the turn (``silence_duration_ms`` after the last speech window,
  rounded up to the frame grid; the same for every caller: found once by running the
  server's own VAD over the audio);
- ``pacer``: lateness of each append's wake-up against its deadline, p50/p99;
- ``rss/sess``: (peak RSS - RSS before the run) / concurrency (fixed costs weigh at a low
  concurrency);
- ``server late``: the server's own send lateness p99 (ground truth ``send_late_ms``): the
  client numbers mean something only while it stays small (``SERVER-BOUND`` above
  :data:`SERVER_LIMIT_MS`: give the servers more cores); ``srvCpu``: the servers' CPU per
  completed conversation during the client's run (Linux).

Finally: the largest concurrency of the sweep with pacer p99 <= 5 ms, per client.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

PACER_LIMIT_MS = 5.0
#: Server send lateness p99 over which a row is server-bound (``orchestrator run``'s limit).
SERVER_LIMIT_MS = 50.0
CHUNK_MS = 100
#: Bytes the ``wsproto`` client reads at a time (as this project's connection does).
RECEIVE_BYTES = 64 * 2**10
MODEL = "gpt-realtime"
#: How long a slot may take to finish its last conversation after ``--duration``.
DRAIN_S = 30.0


# --------------------------------------------------------------------------- helpers
def _pin(cores: set[int]) -> None:
    """Pin this process to ``cores`` where the OS allows (Linux); elsewhere (or where the
    kernel refuses, e.g. a sandbox) do nothing."""
    if hasattr(os, "sched_setaffinity") and cores:
        try:
            os.sched_setaffinity(0, cores)
        except OSError:
            pass


def _cores() -> list[int]:
    """The cores this process may run on (``[0]`` where the OS does not say)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]


def _rss_kib() -> int:
    """Resident set size of this process now, in KiB (Linux ``/proc``; else peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _proc_cpu_s(pids: list[int]) -> float | None:
    """user+sys CPU seconds of processes ``pids`` so far (Linux ``/proc``; else None)."""
    try:
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``None`` when empty)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q / 100.0 * len(s)))) - 1]


def _count_conversation(
    counts: dict[str, int],
    turns: list[dict[str, Any]],
    ok: bool,
    response_id: str | None,
    first: float | None,
    stopped_at: float | None,
    speech_end: float,
) -> None:
    """Count one conversation of a client without the orchestrator (the SDK program, the
    bare ones): completed with its turn's ttfb (``speech_stopped`` -> first delta) and
    voice-to-voice (planned end of speech -> first delta), or failed."""
    if ok and first is not None and stopped_at is not None:
        counts["conversations"] += 1
        turns.append(
            {
                "response_id": response_id,
                "ttfb_ms": (first - stopped_at) * 1000.0,
                "v2v_ms": (first - speech_end) * 1000.0,
            }
        )
    else:
        counts["failed"] += 1


def _plain_row(
    rss0: float,
    cpu0: float,
    t0: float,
    lateness: list[float],
    counts: dict[str, int],
    turns: list[dict[str, Any]],
    steps: int | None,
) -> dict[str, Any]:
    """The row of a client without the orchestrator's own monitor (the SDK program, bare
    trio-websocket), measured from ``rss0``/``cpu0``/``t0`` (taken after its imports)."""
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - t0
    late_ms = [x * 1000.0 for x in lateness]
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_before_kib": rss0,
        "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **counts,
        "pacer_p50_ms": _pct(late_ms, 50),
        "pacer_p99_ms": _pct(late_ms, 99),
        "pacer_frames": len(late_ms),
        "lag_p99_ms": None,
        "task_steps": steps,
        "valid": None,
        "invalid_reasons": [],
        "turns": turns,
    }


def _step_counter(enabled: bool) -> Any:
    """A trio instrument counting task steps (``None`` when not ``enabled``: the count
    costs a Python call per step, so it is kept out of the CPU figures unless asked)."""
    if not enabled:
        return None
    import trio

    class StepCounter(trio.abc.Instrument):
        def __init__(self) -> None:
            self.steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self.steps += 1

    return StepCounter()


# --------------------------------------------------------------------------- workload
def prepare_workload(path: Path) -> dict[str, Any]:
    """The built-in conversation's audio as the wire carries it, its session config (the
    JSON ``orchestrator run`` sends) and the server VAD's delay on it; written to ``path``
    for the SDK client, which imports nothing of this project."""
    from orchestrator import protocol as P
    from orchestrator.audio import SAMPLE_RATE, pcm16_to_b64, samples_for_ms, silence
    from orchestrator.mockserver.vad import InputAudio
    from orchestrator.scenario import BuiltinConversation, voice_session_config
    from orchestrator.session.audio_in import shared_b64_frames

    conversation = BuiltinConversation()
    conversation.prepare()
    source = conversation.source(0)
    chunk = samples_for_ms(CHUNK_MS)
    frames = shared_b64_frames(source, chunk, True)
    assert frames is not None and source.speech_end is not None
    quiet = pcm16_to_b64(silence(CHUNK_MS))
    config = orjson.loads(
        P.encode_client_event(P.SessionUpdate(session=voice_session_config()), P.Dialect.GA)
    )["session"]
    speech_end_ms = source.speech_end * 1000.0 / SAMPLE_RATE
    # the server's own VAD on the same audio: the frame whose arrival ends the turn; its
    # deadline (frame n is due n * chunk after t0) is when a perfect client lets it end
    vad = InputAudio(config["audio"]["input"])
    stopped: float | None = None
    for n, frame in enumerate((*frames, *(quiet,) * 30), 1):
        if any(ev.kind == "speech_stopped" for ev in vad.append(vad.decode(frame))):
            stopped = float(n * CHUNK_MS)
            break
    assert stopped is not None, "the server's VAD never ended the built-in turn"
    work = {
        "frames": list(frames),
        "silence": quiet,
        "chunk_ms": CHUNK_MS,
        "speech_end_ms": speech_end_ms,
        "vad_truth_ms": stopped - speech_end_ms,
        "session": config,
    }
    path.write_bytes(orjson.dumps(work))
    return work


# --------------------------------------------------------------------------- servers
def _py_spy() -> str | None:
    """py-spy on PATH or beside this Python (a virtual environment's ``bin``)."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def _profiled(argv: list[str], profile: Path | None, name: str) -> list[str]:
    """``argv`` under ``py-spy record`` (collapsed stacks to ``profile/name.txt``) when
    profiling, else unchanged."""
    if profile is None:
        return argv
    out = profile / f"{name}.txt"
    return [
        _py_spy() or "py-spy",
        "record",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        "200",
        "-o",
        str(out),
        "--",
    ] + argv


def start_servers(
    processes: int, cores: set[int], groundtruth: Path, profile: Path | None = None
) -> tuple[list[subprocess.Popen[bytes]], int, list[Path]]:
    """``processes`` embedded servers (``serve --child``) sharing one loopback port, each
    pinned to ``cores`` and writing its own ground-truth file (and profiled by py-spy into
    ``profile`` when given); returns them, the port and the files. Stop them with
    :func:`stop_servers`. Their connections are numbered apart as ``orchestrator run``
    numbers them."""
    from orchestrator.cli.target_process import CONNECTIONS_PER_PROCESS

    procs: list[subprocess.Popen[bytes]] = []
    paths: list[Path] = []
    port = 0
    try:
        for i in range(processes):
            path = groundtruth.with_name(f"{groundtruth.stem}.{i}.jsonl")
            argv = [sys.executable, "-m", "orchestrator", "serve", "--child"]
            argv += ["--host", "127.0.0.1", "--port", str(port), "--api-key="]
            argv += ["--log-level", "ERROR", "--no-hearing", "--groundtruth", str(path)]
            argv += ["--first-connection", str(i * CONNECTIONS_PER_PROCESS)]
            if processes > 1:
                argv.append("--reuse-port")
            argv = _profiled(argv, profile, f"server{i}_{groundtruth.stem}")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=lambda: _pin(cores),  # pinned from the start (py-spy's child too)
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().decode(errors="replace")
            while line.startswith("py-spy>") or line == "\n":  # py-spy's banner when profiling
                line = proc.stdout.readline().decode(errors="replace")
            fields = dict(part.partition("=")[::2] for part in line.split()[1:])
            if not line.startswith("ready ") or not fields.get("port", "").isdigit():
                raise SystemExit(f"embedded server {i} did not start: {line!r}")
            port = int(fields["port"])
            paths.append(path)
    except BaseException:
        stop_servers(procs)
        raise
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"start\n")
        proc.stdin.flush()
    return procs, port, paths


def stop_servers(procs: list[subprocess.Popen[bytes]]) -> None:
    """Close each server's stdin (it stops and flushes its ground truth), then wait; kill
    one that does not stop within 10 s."""
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its session: py-spy's server child too
            proc.wait()


def read_groundtruth(paths: list[Path]) -> list[dict[str, Any]]:
    from orchestrator.mockserver.groundtruth import read_groundtruth as read

    return [r for p in paths if p.exists() for r in read(p)]


# --------------------------------------------------------------------------- clients
def orchestrator_client(
    port: int, concurrency: int, duration: float, ramp: float, steps: bool = False
) -> dict:
    """Run the built-in conversation on the supervisor, as ``orchestrator run`` does."""
    import attrs
    import trio

    from orchestrator.scenario import BuiltinConversation, voice_session_config
    from orchestrator.session.spec import PacingSpec, SessionSpec
    from orchestrator.supervisor import ClosedModel, ListSink, Workload, open_supervisor
    from orchestrator.supervisor.gc_regime import FullCollectionPolicy, FullCollector, tuned_gc
    from orchestrator.transport import build_target

    conversation = BuiltinConversation()
    conversation.prepare()
    target = build_target(url=f"ws://127.0.0.1:{port}/v1", provider="custom", model=MODEL, env={})
    base = SessionSpec(
        target=target,
        config=voice_session_config(),
        pacing=PacingSpec(chunk_ms=CHUNK_MS),
        label=conversation.name,
        seed=0,
    )
    workload = Workload(
        model=ClosedModel(concurrency=concurrency, ramp_up_s=ramp, duration_s=duration),
        spec=lambda i: attrs.evolve(base, session_id=f"s{i:06d}", seed=i),
        driver=conversation,
    )
    sink = ListSink()
    out: dict[str, Any] = {}

    async def main() -> None:
        with tuned_gc():
            async with trio.open_nursery() as top, open_supervisor(sink=sink) as sup:
                collector = FullCollector(
                    progress=lambda: (sup.completed + sup.failed + sup.cancelled, sup.running),
                    policy=FullCollectionPolicy(),
                )
                await top.start(collector.run)
                await sup.run_workload(workload)
                out["monitor"] = sup.monitor_figures()
                out["validity"] = sup.validity()
                top.cancel_scope.cancel()

    counter = _step_counter(steps)
    rss0, cpu0, t0 = _rss_kib(), _cpu_s(), time.perf_counter()
    trio.run(main, instruments=[counter] if counter else [])
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - t0
    monitor = out["monitor"]
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_before_kib": rss0,
        "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "conversations": sum(s.status == "completed" for s in sink.sessions),
        "failed": sum(s.status != "completed" for s in sink.sessions),
        "pacer_p50_ms": monitor.get("pacer_p50_ms"),
        "pacer_p99_ms": monitor.get("pacer_p99_ms"),
        "pacer_frames": monitor.get("pacer_frames"),
        "lag_p99_ms": monitor.get("lag_p99_ms"),
        "gc": {k: v for k, v in monitor.items() if k.startswith("gc_")},
        "task_steps": counter.steps if counter else None,
        "valid": out["validity"]["valid"],
        "invalid_reasons": out["validity"]["reasons"],
        "turns": [
            {
                "response_id": t.response_id,
                "ttfb_ms": t.ttfb_ms,
                "v2v_ms": t.voice_to_voice_ms,
            }
            for t in sink.turns
            if t.response_id is not None
        ],
    }


def sdk_client(port: int, concurrency: int, duration: float, ramp: float, work: dict) -> dict:
    """The same conversation on the official SDK's asyncio realtime client."""
    import asyncio
    import base64

    from openai import AsyncOpenAI

    frames: list[str] = work["frames"]
    quiet: str = work["silence"]
    chunk_s = work["chunk_ms"] / 1000.0
    speech_end_s = work["speech_end_ms"] / 1000.0
    max_tail = 3000 // work["chunk_ms"]
    lateness: list[float] = []
    turns: list[dict[str, Any]] = []
    counts = {"conversations": 0, "failed": 0}

    async def conversation(client: AsyncOpenAI) -> None:
        loop = asyncio.get_running_loop()
        async with client.realtime.connect(model=MODEL) as conn:
            await conn.session.update(session=work["session"])
            async for event in conn:
                if event.type == "session.updated":
                    break
            stopped = asyncio.Event()
            t0 = loop.time()

            async def speak() -> None:
                n = 0
                for audio in [*frames, *[quiet] * max_tail]:
                    n += 1
                    deadline = t0 + n * chunk_s
                    await asyncio.sleep(deadline - loop.time())
                    lateness.append(loop.time() - deadline)
                    if n > len(frames) and stopped.is_set():
                        return
                    await conn.input_audio_buffer.append(audio=audio)

            sender = asyncio.create_task(speak())
            stopped_at = first = None
            response_id = None
            received = 0  # bytes of answer audio decoded, as a player would
            ok = False
            try:
                async for event in conn:
                    now = loop.time()
                    if event.type == "input_audio_buffer.speech_stopped":
                        stopped_at = now
                        stopped.set()
                    elif event.type == "response.output_audio.delta":
                        received += len(base64.b64decode(event.delta))
                        if first is None:
                            first, response_id = now, event.response_id
                    elif event.type == "response.done":
                        ok = event.response.status == "completed"
                        break
                    elif event.type == "error":
                        ok = False
                        break
            finally:
                sender.cancel()
            _count_conversation(
                counts, turns, ok, response_id, first, stopped_at, t0 + speech_end_s
            )

    async def slot(client: AsyncOpenAI, i: int, end: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(ramp * i / concurrency)
        while loop.time() < end:
            try:
                await conversation(client)
            except Exception:
                counts["failed"] += 1

    async def main() -> None:
        client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test")
        end = asyncio.get_running_loop().time() + duration
        await asyncio.gather(*(slot(client, i, end) for i in range(concurrency)))

    rss0, cpu0, t0 = _rss_kib(), _cpu_s(), time.perf_counter()
    asyncio.run(main())
    return _plain_row(rss0, cpu0, t0, lateness, counts, turns, steps=None)


class WsprotoSocket:
    """A websocket client on wsproto directly, for the ``wsproto`` client: the receiving
    task reads the socket and parses the frames itself (no reader task, no channel: what
    trio-websocket adds per message), writers share one lock. Just enough for the
    conversation: text messages, pings answered, a closing handshake."""

    def __init__(self, stream: Any) -> None:
        import collections

        import trio
        import wsproto

        self._stream = stream
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._lock = trio.StrictFIFOLock()
        self._ready: collections.deque[str] = collections.deque()
        self._parts: list[str] = []
        self._open = False
        self._closing = False  # we sent the close: the server's answer is no error

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int, target: str) -> AsyncIterator[WsprotoSocket]:
        """Open, upgrade; on exit close with 1000 (waiting up to 2 s for the answer)."""
        import trio
        import wsproto.events as wse

        stream = await trio.open_tcp_stream("127.0.0.1", port)
        sock = cls(stream)
        try:
            await stream.send_all(sock._ws.send(wse.Request(host="127.0.0.1", target=target)))
            while not sock._open:
                await sock._pump()
            yield sock
            with trio.move_on_after(2):
                sock._closing = True
                async with sock._lock:
                    await stream.send_all(sock._ws.send(wse.CloseConnection(code=1000)))
                while sock._open:
                    await sock._pump()
        finally:
            await trio.aclose_forcefully(stream)

    async def send_message(self, text: str) -> None:
        import trio
        import wsproto.events as wse
        from wsproto.utilities import LocalProtocolError

        try:
            async with self._lock:
                await self._stream.send_all(self._ws.send(wse.Message(data=text)))
        except (trio.BrokenResourceError, LocalProtocolError) as exc:
            raise ConnectionError(f"send failed: {exc!r}") from exc

    async def get_message(self) -> str:
        while not self._ready:
            await self._pump()
        return self._ready.popleft()

    async def _pump(self) -> None:
        """Read once and parse; a broken connection or protocol is a ``ConnectionError``
        (an ``OSError``: the conversation counts as failed, as trio-websocket's do)."""
        import trio
        from wsproto.utilities import ProtocolError

        try:
            await self._pump_once()
        except (trio.BrokenResourceError, ProtocolError) as exc:
            raise ConnectionError(f"connection broken: {exc!r}") from exc

    async def _pump_once(self) -> None:
        import wsproto.events as wse

        data = await self._stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, wse.TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    self._ready.append("".join(self._parts))
                    self._parts.clear()
            elif isinstance(event, wse.AcceptConnection):
                self._open = True
            elif isinstance(event, wse.Ping):
                async with self._lock:
                    await self._stream.send_all(self._ws.send(event.response()))
            elif isinstance(event, wse.CloseConnection | wse.RejectConnection):
                self._open = False
                if not self._ready and not self._closing:
                    raise ConnectionError(f"closed: {event}")


def bare_client(
    port: int,
    concurrency: int,
    duration: float,
    ramp: float,
    work: dict,
    steps: bool = False,
    transport: str = "trio-websocket",
) -> dict:
    """The transport's floor: the same conversation with no orchestrator code (raw JSON
    text, ``trio.sleep_until`` per frame, one task reading and one sending per connection)
    on trio + trio-websocket (what any trio client on this transport pays), or on wsproto
    directly (``transport="wsproto"``: :class:`WsprotoSocket`, the design's alternative)."""
    import base64

    import trio
    import trio_websocket

    frames: list[str] = work["frames"]
    quiet: str = work["silence"]
    chunk_s = work["chunk_ms"] / 1000.0
    speech_end_s = work["speech_end_ms"] / 1000.0
    max_tail = 3000 // work["chunk_ms"]
    update = orjson.dumps({"type": "session.update", "session": work["session"]}).decode()
    appends = [
        orjson.dumps({"type": "input_audio_buffer.append", "audio": a}).decode()
        for a in [*frames, quiet]
    ]
    lateness: list[float] = []
    turns: list[dict[str, Any]] = []
    counts = {"conversations": 0, "failed": 0}
    url = f"ws://127.0.0.1:{port}/v1/realtime?model={MODEL}"

    def connect() -> Any:
        if transport == "wsproto":
            return WsprotoSocket.connect(port, f"/v1/realtime?model={MODEL}")
        return trio_websocket.open_websocket_url(url)

    async def conversation() -> None:
        async with connect() as ws:
            await ws.send_message(update)
            while orjson.loads(await ws.get_message())["type"] != "session.updated":
                pass
            stopped = trio.Event()
            t0 = trio.current_time()

            async def speak() -> None:
                for n in range(1, len(frames) + max_tail + 1):
                    deadline = t0 + n * chunk_s
                    await trio.sleep_until(deadline)
                    lateness.append(trio.current_time() - deadline)
                    if n > len(frames) and stopped.is_set():
                        return
                    await ws.send_message(appends[min(n, len(frames) + 1) - 1])

            stopped_at = first = None
            response_id = None
            ok = False
            async with trio.open_nursery() as nursery:
                nursery.start_soon(speak)
                while True:
                    event = orjson.loads(await ws.get_message())
                    now = trio.current_time()
                    kind = event["type"]
                    if kind == "input_audio_buffer.speech_stopped":
                        stopped_at = now
                        stopped.set()
                    elif kind == "response.output_audio.delta":
                        base64.b64decode(event["delta"])
                        if first is None:
                            first, response_id = now, event["response_id"]
                    elif kind == "response.done":
                        ok = event["response"]["status"] == "completed"
                        break
                    elif kind == "error":
                        break
                nursery.cancel_scope.cancel()
        _count_conversation(counts, turns, ok, response_id, first, stopped_at, t0 + speech_end_s)

    async def slot(i: int, end: float) -> None:
        await trio.sleep(ramp * i / concurrency)
        while trio.current_time() < end:
            try:
                await conversation()
            except (OSError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed):
                counts["failed"] += 1  # (ConnectionError, WsprotoSocket's, is an OSError)

    async def main() -> None:
        end = trio.current_time() + duration
        async with trio.open_nursery() as nursery:
            for i in range(concurrency):
                nursery.start_soon(slot, i, end)

    counter = _step_counter(steps)
    rss0, cpu0, t0 = _rss_kib(), _cpu_s(), time.perf_counter()
    trio.run(main, instruments=[counter] if counter else [])
    steps_taken = counter.steps if counter else None
    return _plain_row(rss0, cpu0, t0, lateness, counts, turns, steps=steps_taken)


CLIENTS = ("orchestrator", "sdk", "bare", "wsproto")


def worker(args: argparse.Namespace) -> None:
    """One client run in this process (pinned to ``--core``), result JSON on stdout."""
    _pin({args.core})
    work = orjson.loads(Path(args.work).read_bytes())
    n, duration, ramp = args.run_concurrency, args.duration, args.ramp_up
    if args.worker == "orchestrator":
        result = orchestrator_client(args.port, n, duration, ramp, args.steps)
    elif args.worker == "sdk":
        result = sdk_client(args.port, n, duration, ramp, work)
    else:
        transport = "wsproto" if args.worker == "wsproto" else "trio-websocket"
        result = bare_client(args.port, n, duration, ramp, work, args.steps, transport)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


# --------------------------------------------------------------------------- one run
def run_one(
    client: str, concurrency: int, args: argparse.Namespace, work: dict, tmp: Path
) -> dict[str, Any]:
    """One client at one concurrency against fresh servers; the row of the table."""
    from orchestrator.mockserver.groundtruth import send_lateness

    cores = _cores()
    client_core = cores[0]
    server_cores = set(cores[1:]) or set(cores)
    gt = tmp / f"gt_{client}_{concurrency}.jsonl"
    profile = Path(args.profile) if args.profile else None
    servers, port, paths = start_servers(args.server_processes, server_cores, gt, profile)
    # the servers' CPU over the client's run (not when profiled: then these are py-spy's pids)
    server_pids = [] if profile else [p.pid for p in servers]
    server_cpu0 = _proc_cpu_s(server_pids)
    server_cpu1 = None
    try:
        cmd = [sys.executable, __file__, "--worker", client, "--port", str(port)]
        cmd += ["--run-concurrency", str(concurrency), "--duration", str(args.duration)]
        cmd += ["--ramp-up", str(args.ramp_up), "--core", str(client_core)]
        cmd += ["--work", str(tmp / "work.json")] + (["--steps"] if args.steps else [])
        cmd = _profiled(cmd, profile, f"client_{client}_{concurrency}")
        done = subprocess.run(
            cmd, capture_output=True, timeout=args.duration + DRAIN_S + 60, check=False
        )
        server_cpu1 = _proc_cpu_s(server_pids)
    finally:
        stop_servers(servers)
    if done.returncode != 0:
        raise SystemExit(f"{client} client failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    # the result is the JSON line (py-spy's own lines surround it when profiling)
    line = next((x for x in done.stdout.splitlines() if x.startswith(b"{")), None)
    if line is None:
        raise SystemExit(
            f"{client} client wrote no result:\n{done.stderr.decode(errors='replace')[-3000:]}"
        )
    result = orjson.loads(line)
    records = read_groundtruth(paths)
    truth = {
        r["response_id"]: (r["first_delta"]["actual"] - r["anchor_time"]) * 1000.0
        for r in records
        if r.get("first_delta") and r["first_delta"].get("actual") is not None
    }
    ttfb_err, v2v_err = [], []
    for turn in result.pop("turns"):
        t = truth.get(turn["response_id"])
        if t is None:
            continue
        if turn["ttfb_ms"] is not None:
            ttfb_err.append(turn["ttfb_ms"] - t)
        if turn["v2v_ms"] is not None:
            v2v_err.append(turn["v2v_ms"] - (work["vad_truth_ms"] + t))
    server = send_lateness(records)
    conversations = result["conversations"]
    return {
        "client": client,
        "concurrency": concurrency,
        **result,
        "cpu_ms_per_conversation": 1000.0 * result["cpu_s"] / conversations
        if conversations
        else None,
        "cpu_percent": 100.0 * result["cpu_s"] / result["wall_s"],
        "task_steps_per_conversation": result["task_steps"] / conversations
        if conversations and result["task_steps"]
        else None,
        "rss_kib_per_session": (result["rss_peak_kib"] - result["rss_before_kib"]) / concurrency,
        "joined": len(ttfb_err),
        "ttfb_err_p50_ms": _pct(ttfb_err, 50),
        "ttfb_err_p99_ms": _pct(ttfb_err, 99),
        "v2v_err_p50_ms": _pct(v2v_err, 50),
        "v2v_err_p99_ms": _pct(v2v_err, 99),
        "server_send_late_p99_ms": server["send_late_p99_ms"],
        "server_responses": server["responses"],
        "server_bound": (server["send_late_p99_ms"] or 0.0) > SERVER_LIMIT_MS,
        "server_cpu_ms_per_conversation": 1000.0 * (server_cpu1 - server_cpu0) / conversations
        if server_pids and server_cpu0 is not None and server_cpu1 is not None and conversations
        else None,
    }


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from repeated runs of one client at one concurrency: each number the median
    of its runs (``None`` where no run has it), ``valid`` and ``server_bound`` by majority
    (a tie counts as invalid / server-bound), the rest from the first run."""
    if len(runs) == 1:
        return runs[0]
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, bool) or key in ("client", "concurrency"):
            continue
        if isinstance(value, int | float) or value is None:
            nums = [r[key] for r in runs if isinstance(r.get(key), int | float)]
            row[key] = statistics.median(nums) if nums else None
    valid = [r["valid"] for r in runs if r["valid"] is not None]
    row["valid"] = (2 * sum(valid) > len(valid)) if valid else None
    row["server_bound"] = 2 * sum(r["server_bound"] for r in runs) >= len(runs)
    row["failed"] = max(r["failed"] for r in runs)
    row["conversations"] = int(statistics.median(r["conversations"] for r in runs))
    return row


def _f(value: Any, spec: str = "8.1f") -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 8
    return "-".rjust(width) if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"  {'client':12} {'conc':>5} {'conv':>6} {'fail':>4} {'cpu/conv':>8} {'cpu%':>5} "
        f"{'ttfbErr50':>9} {'ttfbErr99':>9} {'v2vErr50':>9} {'v2vErr99':>9} "
        f"{'pacer50':>8} {'pacer99':>8} {'lag99':>6} {'rss/sess':>8} {'srvLate99':>9} "
        f"{'srvCpu':>6} valid"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in rows:
        valid = "-" if r["valid"] is None else ("yes" if r["valid"] else "NO")
        if r["server_bound"]:
            valid += " SERVER-BOUND"
        print(
            f"  {r['client']:12} {r['concurrency']:5d} {r['conversations']:6d} {r['failed']:4d} "
            f"{_f(r['cpu_ms_per_conversation'], '8.2f')} {_f(r['cpu_percent'], '5.0f')} "
            f"{_f(r['ttfb_err_p50_ms'], '9.2f')} {_f(r['ttfb_err_p99_ms'], '9.2f')} "
            f"{_f(r['v2v_err_p50_ms'], '9.2f')} {_f(r['v2v_err_p99_ms'], '9.2f')} "
            f"{_f(r['pacer_p50_ms'], '8.2f')} {_f(r['pacer_p99_ms'], '8.2f')} "
            f"{_f(r['lag_p99_ms'], '6.1f')} {_f(r['rss_kib_per_session'], '8.0f')} "
            f"{_f(r['server_send_late_p99_ms'], '9.2f')} "
            f"{_f(r['server_cpu_ms_per_conversation'], '6.1f')} {valid}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--concurrency", default="100,200,400", help="comma-separated sweep (default 100,200,400)"
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of starts (6)")
    parser.add_argument("--ramp-up", type=float, default=1.0, help="first starts spread (1 s)")
    parser.add_argument(
        "--clients",
        default="orchestrator,sdk",
        help="which clients: orchestrator, sdk, bare (trio-websocket alone; the transport's "
        "floor), wsproto (wsproto directly, no trio-websocket; the alternative's "
        "floor) (default orchestrator,sdk)",
    )
    parser.add_argument(
        "--server-processes",
        type=int,
        default=None,
        help="embedded server processes (default: one per core the client does not use)",
    )
    parser.add_argument("--json", default=None, help="write every row (and run) to this file")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every cell N times, interleaved, and print the medians (a noisy machine)",
    )
    parser.add_argument(
        "--steps",
        action="store_true",
        help="count trio task steps per conversation (trio clients; costs some CPU)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="record every client and server process with py-spy (collapsed stacks, "
        "DIR/client_<client>_<n>.txt, DIR/server<i>_gt_<client>_<n>.txt; costs CPU: "
        "compare the rows of one profiled run only with each other)",
    )
    # worker mode (internal)
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.profile:
        if _py_spy() is None:
            parser.error("--profile needs py-spy on PATH (pip install py-spy)")
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    try:
        levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--concurrency: expected comma-separated integers, got {args.concurrency!r}")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if set(clients) - set(CLIENTS) or not clients:
        parser.error(f"--clients: expected some of {','.join(CLIENTS)}, got {args.clients!r}")
    if any(n <= 0 for n in levels) or not levels:
        parser.error("--concurrency: every level must be a positive integer")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not (args.duration > 0 and args.ramp_up >= 0):
        parser.error("--duration must be > 0 and --ramp-up >= 0 (seconds)")
    if args.server_processes is None:
        args.server_processes = max(1, len(_cores()) - 1)
    elif args.server_processes <= 0:
        parser.error("--server-processes must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="bench_baseline_"))
    work = prepare_workload(tmp / "work.json")
    cores = _cores()
    print(
        f"bench_baseline: closed model, {args.duration:g} s of starts, built-in conversation "
        f"({len(work['frames'])} x {CHUNK_MS} ms frames), client pinned to core "
        f"{cores[0] if cores else '?'}, {args.server_processes} server process(es) on cores "
        f"{cores[1:] or cores}; v2v truth = server VAD {work['vad_truth_ms']:.0f} ms + ttfb"
    )
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        for n in levels:
            for client in clients:
                runs.append(run_one(client, n, args, work, tmp))
                print(f"  ... {client} at {n}: done ({repeat + 1}/{args.repeat})", file=sys.stderr)
    rows = [
        median_row([r for r in runs if r["client"] == c and r["concurrency"] == n])
        for n in levels
        for c in clients
    ]
    if args.repeat > 1:
        print(f"  each row: the median of {args.repeat} runs, field by field (runs interleaved)")
    print("  times in ms; cpu/conv: client CPU per completed conversation; errors: client - truth")
    print(
        f"  SERVER-BOUND: the server's send lateness p99 > {SERVER_LIMIT_MS:g} ms (it could not "
        "keep its plan): that row compares clients against a stalling server"
    )
    print_table(rows)
    for client in clients:
        ok = [
            r["concurrency"]
            for r in rows
            if r["client"] == client
            and r["pacer_p99_ms"] is not None
            and r["pacer_p99_ms"] <= PACER_LIMIT_MS
            and r["failed"] == 0
            and not r["server_bound"]
        ]
        best = max(ok) if ok else None
        print(f"  {client}: largest concurrency with pacer p99 <= {PACER_LIMIT_MS:g} ms: {best}")
    for r in rows:
        if r["task_steps_per_conversation"]:
            print(
                f"  {r['client']} at {r['concurrency']}: "
                f"{r['task_steps_per_conversation']:.0f} trio task steps per conversation"
            )
    by = {(r["client"], r["concurrency"]): r for r in rows}
    for first, second in (("orchestrator", "sdk"), ("bare", "wsproto")):
        for n in levels:
            a, b = by.get((first, n)), by.get((second, n))
            if a and b and a["cpu_ms_per_conversation"] and b["cpu_ms_per_conversation"]:
                ratio = a["cpu_ms_per_conversation"] / b["cpu_ms_per_conversation"]
                print(f"  at {n}: CPU per conversation {first}/{second} = {ratio:.2f}x")
    if args.json:
        out = {"rows": rows, "runs": runs}
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        print(f"  json: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
