"""``orchestrator run --speak TEXT`` / ``--audio FILE`` for the built-in conversation, and
the caller-voice options: checked before anything starts, lines synthesized before the
clock (real loopback sockets, few short sessions). Voice caches live under ``tmp_path``."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import orjson
import pytest
import voices_helpers

from orchestrator.audio import speech_like, ulaw_encode
from orchestrator.audio.voices import engines, layout
from orchestrator.cli import build_parser, main
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.metrics import read_results

QUICK = [
    "--realtime-factor", "4", "--server-realtime-factor", "0", "--server-ttfb-ms", "50",
    "--quiet",
]  # fmt: skip
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "faq_text.toml"


@pytest.fixture(autouse=True)
def cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    directory = tmp_path / "voices"
    monkeypatch.setenv(layout.CACHE_ENV, str(directory))
    voices_helpers.calls.clear()
    return directory


def setup(*argv: str) -> object:
    return prepare(build_parser().parse_args(["run", *argv]), env={})


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--voice-engine", "espeak"], "--voice-engine needs --speak TEXT"),
        (["--voice-telephone", "--voice-noise", "pink"], "--voice-noise, --voice-telephone need"),
        (["--speak", "hi", "--audio", "x.wav"], "--speak and --audio are two questions"),
        (["--speak", " "], "--speak: the text is empty"),
        (["--audio", "nowhere.wav"], "--audio nowhere.wav: file not found"),
        (["--speak", "hi", "--voice-snr-db", "10"], "--voice-snr-db needs a noise bed"),
        (["--speak", "hi", "--voice-engine", "festival"], "--speak: unknown voice engine"),
        (["--speak", "hi", "--voice-variants", "0"], "--voice-variants must be in [1, 1024]"),
        ([str(EXAMPLE), "--speak", "hi"], "--speak is for the built-in conversation"),
        ([str(EXAMPLE), "--voice-noise", "pink"], "--voice-noise: for the built-in conversation"),
    ],
)
def test_voice_options_are_checked_before_the_run(argv: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        setup(*argv)
    assert needle in str(info.value), str(info.value)


def test_speak_without_the_extra_is_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setitem(sys.modules, "hibari", None)
    with pytest.raises(UsageError, match=r"pip install 'realtime-orchestrator\[voices\]'"):
        setup("--speak", "Is it sunny?")


def test_speak_makes_the_embedded_server_hear_the_cache(tmp_path: Path) -> None:
    s = setup("--speak", "hi", "--voice-cache", str(tmp_path / "mine"))
    assert s.server_config.hearing_dir == tmp_path / "mine"  # type: ignore[attr-defined]


def test_run_speak_synthesizes_once_and_completes(tmp_path: Path, cache_env: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "--sessions", "4", "--concurrency", "4", "--out", str(out), *QUICK]
    argv += ["--speak", "Is it raining in Oslo?", "--voice-engine", voices_helpers.SPEC]
    argv += ["--voice-speed-range", "0.9:1.0", "--voice-noise", "pink", "--voice-jitter-ms", "50"]
    assert main(argv) == 0
    assert sorted(s for _, _, s in voices_helpers.calls) == [0.9, 0.95, 1.0]  # each speed once
    assert len(layout.scan(cache_env)) == 3
    results = read_results(out / "results.jsonl")
    assert {s.status for s in results.sessions} == {"completed"} and len(results.turns) == 4
    summary = orjson.loads((out / "summary.json").read_bytes())
    conversation = summary["config"]["conversation"]
    assert conversation["speak"] == "Is it raining in Oslo?"
    assert conversation["caller_voice"]["engine"] == voices_helpers.SPEC


def test_run_audio_plays_a_mu_law_wav(tmp_path: Path) -> None:
    codes = ulaw_encode(speech_like(800, seed=2, rate=8000)).tobytes()
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(codes))
    wav = tmp_path / "q.wav"
    wav.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(codes)) + body + codes)
    out = tmp_path / "out"
    argv = ["run", "--sessions", "2", "--concurrency", "2", "--out", str(out), *QUICK]
    assert main([*argv, "--audio", str(wav)]) == 0
    results = read_results(out / "results.jsonl")
    assert {s.status for s in results.sessions} == {"completed"}


def test_run_reports_an_engine_failure_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["run", "--sessions", "1", "--out", str(out), *QUICK]
    code = main([*argv, "--speak", "hi", "--voice-engine", "voices_helpers:failing_tts"])
    assert code == 1
    assert "raised RuntimeError: model file missing" in capsys.readouterr().err
    assert not (out / "summary.json").exists()
