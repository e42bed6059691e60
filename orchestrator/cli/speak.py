"""``orchestrator speak``: hear a caller's voice before a run.

``orchestrator speak "What is the weather in Paris today?" --out q.wav`` synthesizes the
line as a run's ``speak`` turn would (same engine, voice, speed, same cache: a later run
reuses the clip) and writes, as a 24 kHz mono PCM16 WAV, exactly what caller ``--caller
N`` would send: the line's speech (the engine's own leading and trailing silence cut
off) between ``--lead-ms`` and ``--tail-ms`` of silence (default 200 and 300, a run's
defaults), varied by the variation options (``--noise``, ``--snr-db``, ``--telephone``,
``--jitter-ms``) when given. ``--list-voices`` prints the engine's voices available
offline.

Exit codes: 0 written, 1 bad options, an engine that is missing or failed, an
unwritable file.
"""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.audio.pcm import SAMPLE_RATE
from orchestrator.audio.voices.engines import VoiceError, get_engine
from orchestrator.audio.wav import AudioFileError, write_wav
from orchestrator.scenario.driver import DEFAULT_LEAD_MS, DEFAULT_TAIL_MS

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
    var = p.add_argument_group("one caller's audio, as a run sends it (default: no variation)")
    var.add_argument("--caller", type=nonneg_int, default=0, metavar="N",
                     help="render caller N's variant (seeded; default 0)")  # fmt: skip
    var.add_argument("--seed", type=int, default=0, help="seed of the variation (default 0)")
    var.add_argument("--lead-ms", type=nonneg_float, default=DEFAULT_LEAD_MS,
                     help=f"silence before the speech (default {DEFAULT_LEAD_MS:g}, as a run)")  # fmt: skip
    var.add_argument("--tail-ms", type=nonneg_float, default=DEFAULT_TAIL_MS,
                     help=f"silence after the speech (default {DEFAULT_TAIL_MS:g}, as a run)")  # fmt: skip
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
        clip = variation.render(  # as SpokenLine.prepare renders a run's speak turn
            cache_from_args(args).clip(line_from_args(args, args.text)),
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
