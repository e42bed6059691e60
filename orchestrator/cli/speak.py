"""``orchestrator speak``: hear a caller's voice before a run.

``orchestrator speak "What is the weather in Paris today?" --out q.wav`` synthesizes the
line exactly as a run's ``speak`` turn would (same engine, voice, speed, same cache: a
later run reuses the clip) and writes it as a 24 kHz mono PCM16 WAV. With variation
options (``--noise``, ``--snr-db``, ``--telephone``, ``--jitter-ms``) it writes what
caller ``--caller N`` would send instead, between ``--lead-ms`` and ``--tail-ms`` of
silence. ``--list-voices`` prints the engine's voices available offline.

Exit codes: 0 written, 1 bad options, an engine that is missing or failed, an
unwritable file.
"""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.audio.pcm import SAMPLE_RATE
from orchestrator.audio.voices.engines import VoiceError, get_engine
from orchestrator.audio.wav import AudioFileError, write_wav

from .options import EXIT_OK, add_subcommand, fail, nonneg_float, nonneg_int
from .voice_options import (
    DEFAULT_ENGINE,
    add_voice_options,
    cache_from_args,
    line_from_args,
    variation_from_args,
)

__all__ = ["add_parser", "handle"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``speak`` on ``subparsers``."""
    p = add_subcommand(
        subparsers,
        "speak",
        help="synthesize a caller's line to a WAV file",
        description=(
            "Synthesize TEXT with a caller voice (as a run's speak turn would, through the "
            "same cache) and write it as a 24 kHz mono WAV file."
        ),
        handler=handle,
    )
    p.add_argument("text", nargs="?", metavar="TEXT", help="what the caller says")
    p.add_argument("--out", metavar="FILE.wav", help="the WAV file to write")
    p.add_argument(
        "--list-voices", action="store_true", help="print the engine's offline voices and exit"
    )
    add_voice_options(p, prefix="", title="voice")
    var = p.add_argument_group("one caller's variation (default: the clean line)")
    var.add_argument("--caller", type=nonneg_int, default=0, metavar="N",
                     help="render caller N's variant (seeded; default 0)")  # fmt: skip
    var.add_argument("--seed", type=int, default=0, help="seed of the variation (default 0)")
    var.add_argument("--lead-ms", type=nonneg_float, default=0.0,
                     help="silence before the line (default 0)")  # fmt: skip
    var.add_argument("--tail-ms", type=nonneg_float, default=0.0,
                     help="silence after the line (default 0)")  # fmt: skip
    return p


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator speak``; returns the exit code."""
    try:
        if args.list_voices:
            engine = get_engine(args.voice_engine or DEFAULT_ENGINE)
            for name in engine.voices():
                print(name)
            return EXIT_OK
        if args.text is None or not args.text.strip():
            return fail("speak", "give the TEXT to say")
        if args.out is None:
            return fail("speak", "--out FILE.wav: where to write the line")
        variation = variation_from_args(args, args.seed, prefix="")
        clip = cache_from_args(args).clip(line_from_args(args, args.text))
        if variation.varies or args.lead_ms or args.tail_ms:
            clip = variation.render(
                clip,
                index=args.caller,
                lead_ms=args.lead_ms,
                tail_ms=args.tail_ms,
                noise_file=variation.load_noise(),
            ).samples
        write_wav(args.out, clip, SAMPLE_RATE)
    except (VoiceError, AudioFileError, ValueError) as exc:
        return fail("speak", str(exc))
    print(f"{args.out}: {clip.size / SAMPLE_RATE:.2f} s at {SAMPLE_RATE} Hz")
    return EXIT_OK
