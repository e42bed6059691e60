"""``orchestrator validate FILE...``: every problem of every file, nothing run or
synthesized; exit 0 and one ``ok`` line per file when all are good, else 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import voices_helpers

from orchestrator.audio.wav import write_wav
from orchestrator.cli import main
from orchestrator.cli.validate import check_scenario_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_the_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.toml"))
    assert main(["validate", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(files)
    assert all(line.startswith(f"{f}: ok (") for line, f in zip(lines, files, strict=True))


def test_every_problem_of_every_file_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = _write(
        tmp_path / "two.toml",
        'name = "two"\n[session]\nvoice = 3\n[[turns]]\nsay = "hi"\nexpect_status = "maybe"\n',
    )
    broken = _write(tmp_path / "broken.toml", 'name = "x"\n[[turns]\n')
    good = str(EXAMPLES / "faq_text.toml")
    missing = str(tmp_path / "nope.toml")
    assert main(["validate", two, broken, good, missing]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{good}: ok (2 turns)"]
    err = captured.err
    assert f"scenario {two}: 2 problems:" in err
    assert "session.voice" in err and "turns[0].expect_status" in err
    assert f"scenario {broken}: not valid TOML" in err
    assert f"scenario {missing}: file not found" in err
    assert "orchestrator validate: 4 problems in 3 files" in err


def test_audio_files_and_their_speech_are_checked(tmp_path: Path) -> None:
    write_wav(tmp_path / "quiet.wav", np.zeros(24000, np.int16), 24000)
    path = _write(
        tmp_path / "audio.toml",
        'name = "a"\n[[turns]]\naudio = "quiet.wav"\n[[turns]]\naudio = "gone.wav"\n',
    )
    driver, problems = check_scenario_file(path)
    assert driver is None
    text = "\n".join(problems)
    assert "turns[1].audio: audio file not found" in text
    # a WAV that is there but holds no speech where the server's VAD must find some
    path = _write(tmp_path / "audio2.toml", 'name = "a"\n[[turns]]\naudio = "quiet.wav"\n')
    driver, problems = check_scenario_file(path)
    assert driver is None and "no speech found for the server's VAD" in problems[0]


def test_speak_turns_need_an_installed_engine_and_nothing_is_synthesized(tmp_path: Path) -> None:
    missing = _write(
        tmp_path / "missing.toml",
        'name = "m"\n[voices]\nengine = "no_such_module_xyz:tts"\n[[turns]]\nspeak = "Hello"\n',
    )
    driver, problems = check_scenario_file(missing)
    assert driver is None and "turns[0].speak" in problems[0]
    assert "no_such_module_xyz" in problems[0]

    voices_helpers.calls.clear()
    fake = _write(
        tmp_path / "fake.toml",
        f'name = "f"\n[voices]\nengine = "{voices_helpers.SPEC}"\nvoice = "high"\n'
        '[[turns]]\nspeak = "Hello there"\n[[turns]]\nspeak = "Bye"\nvoice = "falsetto"\n',
    )
    driver, problems = check_scenario_file(fake)
    assert driver is None and "turns[1].voice" in "\n".join(problems)
    assert "falsetto" in "\n".join(problems)
    good = _write(tmp_path / "good.toml", Path(fake).read_text().replace('"falsetto"', '"low"'))
    driver, problems = check_scenario_file(good)
    assert driver is not None and problems == []
    assert voices_helpers.calls == []  # validated, not synthesized


def test_embedded_server_tool_rules_are_checked(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "rules.toml",
        'name = "r"\n[[turns]]\nsay = "hi"\n[[server.tool_rules]]\npattern = "(unclosed"\n'
        'tool = "t"\n',
    )
    assert main(["validate", path]) == 1
    driver, problems = check_scenario_file(path)
    assert driver is None and "server.tool_rules" in problems[0]


def test_together_reports_files_that_cannot_share_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _write(
        tmp_path / "other.toml",
        'name = "other"\n[[turns]]\nsay = "hi"\n[server]\ngreeting = "Good morning."\n',
    )
    greeting = str(EXAMPLES / "greeting.toml")
    assert main(["validate", greeting]) == 0
    assert main(["validate", other]) == 0
    capsys.readouterr()
    assert main(["validate", greeting, other]) == 0  # each on its own: fine
    capsys.readouterr()
    assert main(["validate", "--together", greeting, other]) == 1
    err = capsys.readouterr().err
    assert "together:" in err and "two different greetings" in err


def test_quiet_prints_nothing_for_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-q", str(EXAMPLES / "faq_text.toml")]) == 0
    assert capsys.readouterr().out == ""


def test_the_summary_counts_problems_not_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nine = "".join(f"[[turns]]\nsay = {i}\n" for i in range(9))  # 9 bad turns, 1 file
    path = _write(tmp_path / "bad.toml", f'name = "bad"\n{nine}')
    assert main(["validate", path]) == 1
    err = capsys.readouterr().err
    assert f"scenario {path}: 9 problems:" in err
    assert err.splitlines()[-1] == "orchestrator validate: 9 problems in 1 file"
    missing = str(tmp_path / "nope.toml")
    assert main(["validate", missing]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "orchestrator validate: 1 problem in 1 file"
    )


def test_a_folder_is_not_a_scenario_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(EXAMPLES)]) == 1
    assert f"scenario {EXAMPLES}: a folder, not a scenario file" in capsys.readouterr().err
