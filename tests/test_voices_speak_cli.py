"""``orchestrator speak``: a 24 kHz WAV of real speech, without any network.

How we know it is speech: its length is plausible for the words (about 2.4 s for seven
words at ~3 words/s), and its loudness envelope is modulated at the syllable rate: most of
the envelope's modulation power lies at 2-8 Hz, with the strongest modulation frequency
in that band (white noise has a flat envelope spectrum, a steady tone none)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import voices_helpers

from orchestrator.audio import read_wav, tone, white_noise
from orchestrator.audio.voices import layout
from orchestrator.cli import build_parser, main
from orchestrator.cli.run_setup import prepare

QUESTION = "What is the weather in Paris today?"


@pytest.fixture(autouse=True)
def cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    directory = tmp_path / "voices"
    monkeypatch.setenv(layout.CACHE_ENV, str(directory))
    return directory


def syllable_modulation(x: np.ndarray) -> tuple[float, float]:
    """(share of the envelope's 0.5-25 Hz modulation power at 2-8 Hz, strongest
    modulation frequency) of 24 kHz audio; envelope = RMS per 10 ms."""
    x = x.astype(np.float64)
    n = x.size // 240 * 240
    env = np.sqrt((x[:n].reshape(-1, 240) ** 2).mean(axis=1))
    env -= env.mean()
    power = np.abs(np.fft.rfft(env * np.hanning(env.size))) ** 2
    f = np.fft.rfftfreq(env.size, 0.01)
    band = power[(f >= 2) & (f <= 8)].sum()
    total = power[(f >= 0.5) & (f <= 25)].sum()
    strongest = f[(f >= 0.5) & (f <= 25)][np.argmax(power[(f >= 0.5) & (f <= 25)])]
    return float(band / total), float(strongest)


def test_syllable_measure_tells_speech_from_noise() -> None:
    assert syllable_modulation(white_noise(2500, -20))[0] < 0.4
    assert syllable_modulation(tone(200, 2500))[0] < 0.4


def test_speak_writes_24k_speech_of_plausible_length(
    tmp_path: Path, cache_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.wav"
    assert main(["speak", QUESTION, "--out", str(out)]) == 0
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        seconds = w.getnframes() / 24000
    assert 2.0 <= seconds <= 3.5
    assert f"{out}: {seconds:.2f} s at 24000 Hz" in capsys.readouterr().out
    share, strongest = syllable_modulation(read_wav(out))
    assert share > 0.5 and 2.0 <= strongest <= 8.0, (share, strongest)
    (info,) = layout.scan(cache_env)  # cached for the run that follows
    assert info.text == QUESTION and info.engine == "hibari" and info.voice == "heart"


def test_speak_with_a_caller_variation(tmp_path: Path) -> None:
    clean, varied = tmp_path / "clean.wav", tmp_path / "phone.wav"
    assert main(["speak", QUESTION, "--out", str(clean)]) == 0
    argv = ["speak", QUESTION, "--out", str(varied), "--noise", "pink", "--snr-db", "15"]
    assert main([*argv, "--telephone", "--lead-ms", "200", "--tail-ms", "300"]) == 0
    a, b = read_wav(clean), read_wav(varied)
    assert not np.array_equal(a[: b.size], b[: a.size])
    assert syllable_modulation(b)[0] > 0.5  # still speech through the phone and noise


def test_speak_with_a_users_engine_and_voice(tmp_path: Path) -> None:
    out = tmp_path / "u.wav"
    argv = ["speak", "hello", "--out", str(out), "--engine", voices_helpers.SPEC]
    assert main([*argv, "--voice", "high", "--speed", "2"]) == 0
    assert voices_helpers.calls[-1] == ("hello", "high", 2.0)
    # the speech (the engine's 0.1 s pads cut off) between a run's 200 and 300 ms of silence;
    # the trim takes a few ms of the fake engine's soft edges (exact: the test below)
    assert read_wav(out).size == pytest.approx(24000 * (0.2 + 0.08 * 5 / 2 + 0.3), abs=240)


def test_speak_lists_voices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["speak", "--list-voices", "--engine", voices_helpers.SPEC]) == 0
    assert capsys.readouterr().out.split() == ["low", "high"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["speak", QUESTION], "--out FILE.wav"),
        (["speak", "--out", "x.wav"], "give the TEXT to say"),
        (["speak", "hi", "--out", "x.wav", "--voice", "emma"], "not available offline"),
        (["speak", "hi", "--out", "x.wav", "--engine", "festival"], "unknown voice engine"),
        (["speak", "hi", "--out", "x.wav", "--snr-db", "10"], "--snr-db needs a noise bed"),
        (["speak", "hi", "--out", "/no/such/dir/x.wav"], "/no/such/dir/x.wav: cannot write"),
    ],
)
def test_speak_errors_exit_1_and_say_why(
    argv: list[str],
    says: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("orchestrator speak: error: ") and says in err, err


@pytest.mark.parametrize(
    ("speak", "run"),
    [
        ([], []),
        (["--telephone"], ["--voice-telephone"]),
        (["--noise", "pink", "--jitter-ms", "100"], ["--voice-noise", "pink", "--voice-jitter-ms", "100"]),
    ],
    ids=["clean", "telephone", "noise-jitter"],
)  # fmt: skip
def test_speak_writes_exactly_what_a_runs_caller_sends(
    speak: list[str], run: list[str], tmp_path: Path
) -> None:
    """Clean or varied, ``speak --caller 3`` writes the samples that caller 3 of ``run
    --speak`` with the same voice options sends (same trimming, same silences)."""
    out = tmp_path / "q.wav"
    argv = ["speak", QUESTION, "--out", str(out), "--engine", voices_helpers.SPEC]
    assert main([*argv, "--caller", "3", *speak]) == 0
    argv = ["run", "--speak", QUESTION, "--voice-engine", voices_helpers.SPEC, *run]
    conversation = prepare(build_parser().parse_args(argv), env={}).conversation
    conversation.prepare()
    sent = conversation.source(3).samples
    assert np.array_equal(read_wav(out), sent)
    if not speak:  # the run's 200 ms of digital silence, not the engine's 100 ms pad
        assert not sent[:4800].any() and sent[4800:4900].any()
