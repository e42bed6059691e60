"""Measure ttfb_ms and voice_to_voice_ms over a small matrix of configurations.

The pattern to copy when benchmarking with the library API (not the CLI): one supervisor,
one workload per configuration (two voices x two server-VAD silence durations here, N
sessions each), results collected in memory, one comparison table at the end::

    python examples/ttfb_matrix.py                      # embedded server, 8 sessions each
    python examples/ttfb_matrix.py --sessions 20 --url wss://api.openai.com/v1 \\
        --model gpt-realtime                            # key from $OPENAI_API_KEY

Latency anchors (DESIGN.md): ``ttfb_ms`` runs from the server's ``speech_stopped`` to the
first audio delta, ``voice_to_voice_ms`` from the planned end of our speech to that delta,
so it includes the VAD silence the configuration asks for.
"""

from __future__ import annotations

import argparse
import itertools

import trio

from orchestrator.metrics import summarize
from orchestrator.mockserver import MockServer, ServerConfig
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ClosedModel, ListSink, Workload, open_supervisor
from orchestrator.transport import build_target

VOICES = ("alloy", "verse")
VAD_SILENCE_MS = (200, 500)


async def measure(url: str | None, model: str, sessions: int, concurrency: int) -> None:
    async with trio.open_nursery() as nursery:
        if url is None:  # the embedded server on a free loopback port
            port = await nursery.start(MockServer(ServerConfig(port=0)).serve)
            url = f"ws://127.0.0.1:{port}/v1"
        target = build_target(provider="custom", url=url, model=model)
        conversation = BuiltinConversation(speech_ms=1500)
        rows = []
        for voice, silence_ms in itertools.product(VOICES, VAD_SILENCE_MS):
            sink = ListSink()
            spec = SessionSpec(
                target=target,
                config=voice_session_config(voice=voice, vad_silence_ms=silence_ms),
                label=f"{voice}/{silence_ms}",
                max_duration=60.0,
            )
            async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
                await sup.run_workload(
                    Workload(
                        model=ClosedModel(concurrency=concurrency, sessions=sessions),
                        spec=spec,
                        driver=conversation,
                        id_prefix=f"{voice}-{silence_ms}-",
                    )
                )
            ttfb = summarize(t.ttfb_ms for t in sink.turns)
            v2v = summarize(t.voice_to_voice_ms for t in sink.turns)
            failed = sum(s.status != "completed" for s in sink.sessions)
            rows.append((voice, silence_ms, len(sink.sessions), failed, ttfb, v2v, sup.validity()))
        nursery.cancel_scope.cancel()

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    print(
        f"{'voice':8} {'vad ms':>6} {'n':>4} {'fail':>4}  {'ttfb p50':>8} {'p95':>6}"
        f"  {'v2v p50':>8} {'p95':>6}  valid"
    )
    for voice, silence_ms, n, failed, ttfb, v2v, validity in rows:
        print(
            f"{voice:8} {silence_ms:>6} {n:>4} {failed:>4}  {ms(ttfb.p50):>8} {ms(ttfb.p95):>6}"
            f"  {ms(v2v.p50):>8} {ms(v2v.p95):>6}  {validity['valid']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="ttfb / voice-to-voice over a config matrix")
    parser.add_argument("--url", default=None, help="target (default: embedded server)")
    parser.add_argument("--model", default="gpt-realtime")
    parser.add_argument("--sessions", type=int, default=8, help="sessions per configuration")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    trio.run(measure, args.url, args.model, args.sessions, args.concurrency)


if __name__ == "__main__":
    main()
