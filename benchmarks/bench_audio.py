"""Micro-benchmarks for the audio layer (run: python benchmarks/bench_audio.py).

Prints per-call costs for the operations that run per frame per stream: VAD feed,
base64 encode/decode, G.711, streaming resampling; plus resampler quality figures
(passband deviation, worst attenuation above the new Nyquist).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from orchestrator.audio import (
    EnergyVad,
    Resampler,
    b64_to_pcm16,
    frames,
    pcm16_to_b64,
    resample,
    rms_dbfs,
    silence,
    speech_like,
    tone,
    ulaw_decode,
    ulaw_encode,
)


def _per_call_us(fn: Callable[[], object], repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1e6


def bench_vad(streams: int = 200, seconds: int = 10, frame_ms: int = 100) -> None:
    turn = np.concatenate([silence(700), speech_like(2300, seed=1), silence(1000)])
    sig = np.tile(turn, -(-seconds * 1000 // 4000))[: seconds * 24000]
    chunks = list(frames(sig, frame_ms))
    vads = [EnergyVad() for _ in range(streams)]
    t = time.perf_counter()
    n = 0
    for chunk in chunks:
        for v in vads:
            v.feed(chunk)
            n += 1
    dt = time.perf_counter() - t
    share = dt / (seconds * streams) * 100
    print(
        f"vad: {dt / n * 1e6:.1f} us per {frame_ms} ms frame; {streams} streams x {seconds} s "
        f"of audio in {dt * 1e3:.0f} ms ({share:.3f} % of one core per stream)"
    )


def bench_codecs() -> None:
    x = speech_like(100, seed=2)
    b = pcm16_to_b64(x)
    print(f"pcm16_to_b64 100 ms: {_per_call_us(lambda: pcm16_to_b64(x), 2000):.1f} us")
    print(f"b64_to_pcm16 100 ms: {_per_call_us(lambda: b64_to_pcm16(b), 2000):.1f} us")
    x8 = resample(x, 24000, 8000)
    u = ulaw_encode(x8)
    print(f"ulaw_encode 100 ms@8k: {_per_call_us(lambda: ulaw_encode(x8), 2000):.1f} us")
    print(f"ulaw_decode 100 ms@8k: {_per_call_us(lambda: ulaw_decode(u), 2000):.1f} us")


def bench_resample() -> None:
    for src, dst in [(8000, 24000), (24000, 8000), (44100, 24000), (48000, 24000), (24000, 16000)]:
        r = Resampler(src, dst)
        chunk = tone(440, 100, rate=src)
        us = _per_call_us(lambda r=r, c=chunk: r.process(c), 200)
        nyq = min(src, dst) / 2
        dev = max(
            abs(rms_dbfs(resample(tone(f, 400, -10, src), src, dst)[dst // 50 : -dst // 50]) + 10)
            for f in (100.0, 1000.0, 0.5 * nyq, 0.85 * nyq)
        )
        line = f"resample {src}->{dst}: {us:.0f} us per 100 ms chunk, passband dev {dev:.4f} dB"
        if dst < src:
            worst = min(
                -3 - rms_dbfs(resample(tone(f, 400, -3, src), src, dst)[dst // 50 : -dst // 50])
                for f in np.linspace(dst / 2, 0.98 * src / 2, 25)
            )
            line += f", min attenuation above new Nyquist {worst:.1f} dB"
        print(line)


if __name__ == "__main__":
    bench_vad()
    bench_vad(frame_ms=20)
    bench_codecs()
    bench_resample()
