"""``orchestrator run A.toml B.toml:3 ...``: scenarios mixed across sessions by weight.

Pure parts (argument parsing, the weighted order, merging the ``[server]`` hints, the
run setup) without running anything; one short run on the embedded server in this
process (loopback port 0, text-only scenarios)."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import build_parser, main
from orchestrator.cli.mix import (
    MixEntry,
    MixError,
    ScenarioMix,
    merged_server_hints,
    parse_mix_arg,
    weighted_order,
)
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.metrics import read_results
from orchestrator.scenario import ScenarioDriver

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
FAQ = str(EXAMPLES / "faq_text.toml")
GREETING = str(EXAMPLES / "greeting.toml")
FAST = ["--server-ttfb-ms", "20", "--server-realtime-factor", "0", "--server-in-process"]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def _renamed(tmp_path: Path, name: str, source: str = FAQ, **replace: str) -> str:
    text = Path(source).read_text().replace('name = "faq-text"', f'name = "{name}"')
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("a.toml", MixEntry("a.toml", 1)),
        ("a.toml:3", MixEntry("a.toml", 3)),
        ("dir/b.json:12", MixEntry("dir/b.json", 12)),
        ("c:/x.toml", MixEntry("c:/x.toml", 1)),  # a colon that is part of the path
    ],
)
def test_scenario_arguments_take_a_weight(text: str, entry: MixEntry) -> None:
    assert parse_mix_arg(text) == entry


@pytest.mark.parametrize("text", ["a.toml:0", "a.toml:-2", ":3", ""])
def test_bad_weights_are_refused(text: str) -> None:
    with pytest.raises(MixError):
        parse_mix_arg(text)


@pytest.mark.parametrize("weights", [[1], [1, 1], [3, 1], [5, 2, 1], [2, 7, 3, 1]])
def test_each_cycle_plays_every_scenario_exactly_its_weight(weights: list[int]) -> None:
    for seed in range(4):
        order = weighted_order(weights, seed)
        assert len(order) == sum(weights)
        assert collections.Counter(order) == dict(enumerate(weights))
        assert order == weighted_order(weights, seed)  # deterministic


def test_the_order_is_interleaved_and_rotated_by_the_seed() -> None:
    assert weighted_order([3, 1]) == [0, 0, 1, 0]
    assert weighted_order([5, 2, 1]) == [0, 1, 0, 0, 2, 0, 1, 0]
    assert weighted_order([3, 1], seed=1) == [0, 1, 0, 0]
    assert weighted_order([3, 1], seed=5) == weighted_order([3, 1], seed=1)
    with pytest.raises(ValueError, match="positive"):
        weighted_order([1, 0])


def _hints(rules: list[tuple[str, str, str]], transcripts: list[str], greeting: str | None):
    return {"tool_rules": rules, "spoken_transcripts": transcripts, "greeting": greeting}


def test_server_hints_merge() -> None:
    rules, transcripts, greeting = merged_server_hints(
        [
            ("a.toml", _hints([("hours", "lookup", "{}")], ["one", "two"], "Hi")),
            ("b.toml", _hints([("weather", "get_weather", '{"city": "Paris"}')], ["two"], "Hi")),
            ("c.toml", _hints([], ["three"], "Hi")),  # the same greeting in every file
        ]
    )
    assert [(r.pattern, r.tool) for r in rules] == [("hours", "lookup"), ("weather", "get_weather")]
    assert transcripts == ("one", "two", "three")
    assert greeting == "Hi"
    assert merged_server_hints([("a.toml", _hints([], [], None))]) == ((), (), None)


def test_greetings_that_differ_are_refused() -> None:
    with pytest.raises(MixError, match=r"a.toml and b.toml .* two different greetings"):
        merged_server_hints([("a.toml", _hints([], [], "Hi")), ("b.toml", _hints([], [], "Yo"))])
    # a greeting in one file and none in the other: its sessions would hear one anyway
    with pytest.raises(MixError, match=r"a greeting \(b.toml\) and none \(a.toml"):
        merged_server_hints([("a.toml", _hints([], [], None)), ("b.toml", _hints([], [], "Yo"))])
    with pytest.raises(MixError, match=r"b.toml: server.tool_rules"):
        merged_server_hints([("b.toml", _hints([("(", "t", "{}")], [], None))])


def test_the_setup_mixes_the_scenarios_and_their_hints(tmp_path: Path) -> None:
    other = _renamed(tmp_path, "faq-two")
    third = _renamed(tmp_path, "faq-three", **{"opening hours|": "hours|"})
    setup = prepare(parse(FAQ, f"{other}:3", third, "--out", str(tmp_path / "o")), env={})
    mix = setup.conversation
    assert isinstance(mix, ScenarioMix)
    assert [d.name for d in mix.drivers] == ["faq-text", "faq-two", "faq-three"]
    assert mix.weights == (1, 3, 1)
    assert [mix.index_for(i) for i in range(10)] == mix.order + mix.order
    assert setup.server_config is not None
    assert [r.pattern for r in setup.server_config.tool_rules] == [
        "opening hours|when are you open", "opening hours|when are you open",
        "hours|when are you open",
    ]  # fmt: skip
    assert setup.server_config.greeting is None
    assert setup.config["scenario"] == "faq-text:1+faq-two:3+faq-three:1"
    assert setup.config["scenario_file"] is None
    assert [(s["name"], s["weight"]) for s in setup.config["scenarios"]] == [
        ("faq-text", 1), ("faq-two", 3), ("faq-three", 1),
    ]  # fmt: skip


def test_one_file_is_no_mix_and_the_same_file_twice_adds_its_weights(tmp_path: Path) -> None:
    assert isinstance(prepare(parse(f"{FAQ}:4"), env={}).conversation, ScenarioDriver)
    other = _renamed(tmp_path, "faq-two")
    mix = prepare(parse(FAQ, other, f"{FAQ}:2"), env={}).conversation
    assert isinstance(mix, ScenarioMix) and mix.weights == (3, 1)


@pytest.mark.parametrize(
    ("make_argv", "needle"),
    [
        (lambda tmp: [FAQ, _renamed(tmp, "faq-text")], "both named 'faq-text'"),
        (lambda tmp: [FAQ, "builtin"], "'builtin' cannot be mixed"),
        (lambda tmp: [FAQ, f"{FAQ}:0"], "weight must be a whole number >= 1"),
        (
            lambda tmp: [
                GREETING,
                _renamed(
                    tmp,
                    "g2",
                    GREETING,
                    **{'name = "greeting"': 'name = "g2"', "Hello, thanks": "Howdy, thanks"},
                ),
            ],
            "two different greetings",
        ),
        (lambda tmp: [FAQ, GREETING], "a greeting"),
        (lambda tmp: [FAQ, str(tmp / "nope.toml"), str(tmp / "gone.toml")], "gone.toml"),
    ],
)
def test_bad_mixes_are_refused_before_running(
    tmp_path: Path, make_argv: object, needle: str
) -> None:
    argv = make_argv(tmp_path)  # type: ignore[operator]
    with pytest.raises(UsageError) as info:
        prepare(parse(*argv), env={})
    assert needle in str(info.value)


def test_a_mixed_run_names_each_sessions_scenario(tmp_path: Path) -> None:
    other = _renamed(tmp_path, "faq-two")
    out = tmp_path / "out"
    argv = [FAQ, f"{other}:3", "--sessions", "8", "--concurrency", "4", "--quiet", *FAST]
    assert main(["run", *argv, "--out", str(out), "--threshold", "sessions_failed==0"]) == 0
    results = read_results(out / "results.jsonl")
    labels = collections.Counter(s.label for s in results.sessions)
    assert labels == {"faq-text": 2, "faq-two": 6}  # two full cycles of 1:3
    assert all(s.status == "completed" for s in results.sessions)
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert [s["name"] for s in summary["config"]["scenarios"]] == ["faq-text", "faq-two"]
