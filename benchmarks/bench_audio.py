"""Micro-benchmarks for the audio layer (run: python benchmarks/bench_audio.py).

Prints per-call costs for the operations that run per frame per stream: VAD feed,
base64 encode/decode, G.711, streaming resampling; plus resampler quality figures
(passband deviation, worst attenuation above the new Nyquist). Then the caller-voice
costs, which are paid before a run's clock starts: text-to-speech synthesis per engine
(ms of CPU per second of speech; hibari when the voices extra is installed, espeak when
espeak-ng is on PATH) and the render cost of one caller's variation per turn.
"""

from __future__ import annotations

import tempfile
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
from orchestrator.audio.voices.cache import Line, VoiceCache
from orchestrator.audio.voices.engines import VoiceError, get_engine
from orchestrator.audio.voices.variation import Variation, speech_bounds

#: Lines of a typical caller (about 2-3.5 s each).
LINES = (
    "What is the weather in Paris today?",
    "Can you book me a table for two at eight tonight?",
    "I would like to change the delivery address of my order.",
    "No, that is all, thank you very much.",
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


def bench_synthesis() -> None:
    """ms of synthesis per second of speech, per engine (the first call, which loads the
    model, is timed apart)."""
    for spec in ("hibari", "espeak"):
        try:
            engine = get_engine(spec)
        except VoiceError as exc:
            print(f"synthesis {spec}: skipped ({exc})")
            continue
        t = time.perf_counter()
        engine.synthesize("Warm up.", engine.default_voice, 1.0)
        first = time.perf_counter() - t
        spent = audio = 0.0
        for line in LINES:
            t = time.perf_counter()
            samples, rate = engine.synthesize(line, engine.default_voice, 1.0)
            spent += time.perf_counter() - t
            audio += samples.size / rate
        print(
            f"synthesis {engine.version}: {spent / audio * 1e3:.1f} ms per second of speech "
            f"({audio / spent:.0f}x real time; first call, loading it: {first * 1e3:.0f} ms)"
        )


def bench_variation() -> None:
    """Rendering one caller's variant of a ~2.4 s line (per turn, per caller)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            clip = VoiceCache(tmp).clip(Line(LINES[0]))
        except VoiceError:
            clip = speech_like(2400, seed=1)
    bounds = speech_bounds(clip)
    for name, v in (
        ("silence only", Variation()),
        ("jitter + white noise", Variation(noise="white", jitter_ms=100)),
        ("jitter + pink noise", Variation(noise="pink", jitter_ms=100)),
        ("telephone band", Variation(telephone=True)),
        ("pink noise + telephone", Variation(noise="pink", jitter_ms=100, telephone=True)),
    ):
        v.render(clip, index=0, bounds=bounds)  # designs the resampling filters once
        ms = _per_call_us(
            lambda v=v: v.render(clip, index=3, lead_ms=200, tail_ms=300, bounds=bounds), 20
        )
        print(f"variation render ({name}), {clip.size / 24000:.1f} s line: {ms / 1e3:.2f} ms")


if __name__ == "__main__":
    bench_vad()
    bench_vad(frame_ms=20)
    bench_codecs()
    bench_resample()
    bench_synthesis()
    bench_variation()
