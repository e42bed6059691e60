"""Caller-voice options shared by ``orchestrator speak`` and ``orchestrator run``.

Both commands store the same destinations (``voice_engine``, ``voice_name``,
``voice_speed``, ``voice_cache``, ``voice_noise``, ``voice_snr_db``, ``voice_telephone``,
``voice_jitter_ms``, and for ``run`` ``voice_speed_range`` and ``voice_variants``) and build
their objects with the same functions; only the spellings differ. ``speak`` has one voice,
so its options are short (``--engine``, ``--voice``, ``--speed``, ``--noise``, ...); ``run``
prefixes them with ``voice-`` (``--voice-engine``, ``--voice-speed``, ...) and names the
caller's voice ``--voice-name``, since its ``--voice`` is the assistant's voice.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orchestrator.audio.voices.cache import Line, VoiceCache
from orchestrator.audio.voices.layout import CACHE_ENV
from orchestrator.audio.voices.variation import NOISE_KINDS, Variation

from .options import nonneg_float

__all__ = [
    "DEFAULT_ENGINE",
    "add_voice_options",
    "cache_from_args",
    "given_voice_options",
    "line_from_args",
    "speed",
    "speed_range",
    "variation_from_args",
]

DEFAULT_ENGINE = "hibari"


def speed(text: str) -> float:
    """A speaking speed in [0.25, 4] (1 = the engine's normal pace)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.25 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"must be a speed in [0.25, 4], got {text!r}")
    return value


def speed_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` speeds, LOW <= HIGH."""
    low, sep, high = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH (e.g. 0.9:1.1), got {text!r}")
    lo, hi = speed(low), speed(high)
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LOW must be <= HIGH, got {text!r}")
    return lo, hi


def add_voice_options(parser: argparse.ArgumentParser, *, prefix: str, title: str) -> None:
    """Add the caller-voice options to ``parser`` in one group titled ``title``:
    ``prefix=""`` for ``speak`` (``--engine``, ``--voice``), ``"voice-"`` for ``run``
    (``--voice-engine``, ``--voice-name``, plus per-caller ``--voice-speed-range`` and
    ``--voice-variants``)."""
    g = parser.add_argument_group(title)
    p = prefix
    g.add_argument(
        f"--{p}engine",
        dest="voice_engine",
        metavar="ENGINE",
        help=f"text-to-speech engine: hibari, espeak or MODULE:FUNCTION (default {DEFAULT_ENGINE})",
    )
    g.add_argument(
        "--voice-name" if p else "--voice",
        dest="voice_name",
        metavar="NAME",
        help="the caller's voice (default: the engine's; hibari: heart; espeak: en-us)",
    )
    g.add_argument(
        f"--{p}speed",
        dest="voice_speed",
        type=speed,
        metavar="X",
        help="speaking speed (default 1)",
    )
    g.add_argument(
        "--voice-cache",
        dest="voice_cache",
        metavar="DIR",
        help=f"where synthesized lines are cached (default ${CACHE_ENV}, else "
        "~/.cache/realtime-orchestrator/voices)",
    )
    g.add_argument(
        f"--{p}noise",
        dest="voice_noise",
        metavar="white|pink|FILE",
        help="a noise bed under the voice: white, pink or a WAV file",
    )
    g.add_argument(
        f"--{p}snr-db",
        dest="voice_snr_db",
        type=float,
        metavar="DB",
        help="speech-to-noise ratio of the noise bed (default 20)",
    )
    g.add_argument(
        f"--{p}telephone",
        dest="voice_telephone",
        action="store_true",
        help="through a telephone line: 8 kHz G.711 µ-law and back",
    )
    g.add_argument(
        f"--{p}jitter-ms",
        dest="voice_jitter_ms",
        type=nonneg_float,
        metavar="MS",
        help="up to MS more silence before and after the line (random, seeded)",
    )
    if p:
        g.add_argument(
            f"--{p}speed-range",
            dest="voice_speed_range",
            type=speed_range,
            metavar="LOW:HIGH",
            help="each caller speaks at a speed from LOW..HIGH in steps of 0.05 (replaces "
            f"--{p}speed; every speed is synthesized before the run)",
        )
        g.add_argument(
            f"--{p}variants",
            dest="voice_variants",
            type=int,
            default=None,
            metavar="N",
            help="distinct callers rendered before the run; caller i sounds like caller "
            "i %% N (default 32)",
        )


_DESTS = (
    "voice_engine",
    "voice_name",
    "voice_speed",
    "voice_noise",
    "voice_snr_db",
    "voice_jitter_ms",
    "voice_speed_range",
    "voice_variants",
)


def given_voice_options(args: argparse.Namespace) -> list[str]:
    """The voice options (but ``--voice-cache``) given on ``run``'s command line, as
    ``--voice-*`` spellings."""
    given = [f"--{d.replace('_', '-')}" for d in _DESTS if getattr(args, d, None) is not None]
    if getattr(args, "voice_telephone", False):
        given.append("--voice-telephone")
    return given


def cache_from_args(args: argparse.Namespace) -> VoiceCache:
    """The voice cache of ``--voice-cache`` (default directory when not given)."""
    return VoiceCache(args.voice_cache)


def line_from_args(args: argparse.Namespace, text: str) -> Line:
    """The line ``text`` with the engine, voice and speed options."""
    return Line(
        text=text,
        engine=args.voice_engine or DEFAULT_ENGINE,
        voice=args.voice_name,
        speed=1.0 if args.voice_speed is None else args.voice_speed,
    )


def variation_from_args(args: argparse.Namespace, seed: int, *, prefix: str) -> Variation:
    """The per-caller variation of the options added with ``prefix`` (``ValueError`` for
    a bad combination or a noise bed that is neither built in nor a file, naming the
    option)."""
    noise = args.voice_noise
    if noise is not None and noise not in NOISE_KINDS and not Path(noise).is_file():
        kinds = ", ".join(NOISE_KINDS)
        raise ValueError(f"--{prefix}noise {noise}: not {kinds} or an existing .wav file")
    kwargs: dict[str, Any] = {
        "speed_range": getattr(args, "voice_speed_range", None),
        "noise": noise,
        "jitter_ms": args.voice_jitter_ms or 0.0,
        "telephone": args.voice_telephone,
        "seed": seed,
    }
    if args.voice_snr_db is not None:
        if args.voice_noise is None:
            raise ValueError(
                f"--{prefix}snr-db needs a noise bed (--{prefix}noise white|pink|FILE)"
            )
        kwargs["snr_db"] = args.voice_snr_db
    return Variation(**kwargs)
