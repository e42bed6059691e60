"""A fake text-to-speech engine for the caller-voice tests (``voices_helpers:fake_tts``):
fast, deterministic, counts its calls, and sounds like syllables (a 200 Hz tone whose
loudness is modulated at 4 Hz, 80 ms per character at speed 1)."""

from __future__ import annotations

import numpy as np

SPEC = "voices_helpers:fake_tts"
RATE = 16000

#: ``(text, voice, speed)`` of every call, in order.
calls: list[tuple[str, str, float]] = []


def fake_tts(text: str, voice: str = "low", speed: float = 1.0) -> tuple[np.ndarray, int]:
    calls.append((text, voice, speed))
    n = int(RATE * 0.08 * len(text) / speed)
    t = np.arange(n) / RATE
    f0 = 150.0 if voice == "low" else 300.0
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t)
    lead = np.zeros(RATE // 10, np.float32)  # engines pad their lines with silence
    body = (0.5 * np.sin(2 * np.pi * f0 * t) * syllables).astype(np.float32)
    return np.concatenate([lead, body, lead]), RATE


fake_tts.voices = ("low", "high")  # type: ignore[attr-defined]


def bad_tts(text: str, voice: str = "default", speed: float = 1.0) -> object:
    """Returns whatever ``bad_tts.result`` is (set by a test)."""
    return bad_tts.result  # type: ignore[attr-defined]


bad_tts.result = None  # type: ignore[attr-defined]


def failing_tts(text: str, voice: str = "default", speed: float = 1.0) -> object:
    raise RuntimeError("model file missing")
