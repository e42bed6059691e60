"""Prices as data: the built-in ``prices.toml``, ``--prices FILE``, cost null with a reason.

The model names come from the official ``openai`` package (test-only): every realtime
model its ``RealtimeSessionCreateRequestParam.model`` Literal lists is in the table,
priced or marked unpriced with the reason.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import orjson
import pytest
from test_cli_run import QUICK, parse

from orchestrator.cli import main
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.metrics.prices import (
    BUILTIN_PRICES_FILE,
    ModelPrice,
    PriceFileError,
    PriceTable,
    builtin_prices,
    load_prices,
)
from orchestrator.metrics.summary import PRICES, build_summary, estimate_cost

TOKENS = {
    "input_tokens": 1_000_000, "input_text_tokens": 200_000, "input_audio_tokens": 800_000,
    "output_tokens": 500_000, "output_text_tokens": 100_000, "output_audio_tokens": 400_000,
}  # fmt: skip
ONES = ModelPrice(
    text_in=1.0, text_cached=1.0, text_out=1.0, audio_in=1.0, audio_cached=1.0, audio_out=1.0
)
ONES_TOML = """
[models."gpt-realtime-2"]
text_in = 1
text_cached = 1
text_out = 1
audio_in = 1
audio_cached = 1
audio_out = 1
source = "my contract"
"""


def _openai_realtime_models() -> list[str]:
    openai = pytest.importorskip("openai")
    from openai.types.realtime import realtime_session_create_request_param as param

    assert openai  # the package is the schema, test-only
    hints = typing.get_type_hints(param.RealtimeSessionCreateRequestParam)
    (_, literal) = typing.get_args(hints["model"])
    return list(typing.get_args(literal))


def test_every_model_the_openai_package_lists_is_in_the_table() -> None:
    table = builtin_prices()
    models = _openai_realtime_models()
    assert "gpt-realtime-2" in models and "gpt-realtime-mini" in models
    for model in models:
        priced = table.price_for(model) is not None
        reason = table.missing_reason(model)
        assert priced or "unknown to the price table" not in reason, model
    assert table.source == "built-in"
    assert dict(PRICES) == dict(table.prices)  # the summary's table is the data file's


def test_snapshots_and_reasons() -> None:
    table = builtin_prices()
    assert table.price_for("gpt-realtime-2025-08-28") is table.prices["gpt-realtime"]
    assert table.price_for("gpt-realtime-mini-2025-12-15") is table.prices["gpt-realtime-mini"]
    usd, note = estimate_cost(TOKENS, "gpt-realtime-2", table)
    assert usd is None and "no verified list price" in (note or "") and "--prices" in (note or "")
    usd, note = estimate_cost(TOKENS, "my-llama", table)
    assert usd is None and "'my-llama' (unknown to the price table)" in (note or "")
    usd, note = estimate_cost(TOKENS, None, table)
    assert usd is None and "no model" in (note or "")


def test_override_file_toml_and_json(tmp_path: Path) -> None:
    toml_file = tmp_path / "prices.toml"
    toml_file.write_text(ONES_TOML)
    override = load_prices(toml_file)
    assert override.prices == {"gpt-realtime-2": ONES}
    table = builtin_prices().merged(override)
    usd, note = estimate_cost(TOKENS, "gpt-realtime-2", table)
    assert usd == pytest.approx(1.5) and note is None
    assert table.price_for("gpt-realtime") == builtin_prices().prices["gpt-realtime"]
    assert table.source == f"built-in + {toml_file}"
    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"models": {"gpt-realtime": {"unpriced": "renegotiating"}}}))
    table = builtin_prices().merged(load_prices(json_file))
    usd, note = estimate_cost(TOKENS, "gpt-realtime", table)
    assert usd is None and "renegotiating" in (note or "")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("models = 3", 'expected a "models" table'),
        ("[models.x]\ntext_in = 1", "missing rate(s) text_cached"),
        (ONES_TOML.replace("audio_out = 1", "audio_out = -1"), "audio_out: expected a number"),
        (ONES_TOML.replace("source", "sauce"), "unknown key(s) sauce"),
        ('[models.x]\nunpriced = "why"\ntext_in = 1', "'unpriced' takes a reason"),
        ("[models", "not valid TOML"),
    ],
)
def test_bad_price_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PriceFileError, match=None) as info:
        load_prices(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_missing_file_and_builtin_file_load() -> None:
    with pytest.raises(PriceFileError, match="cannot read"):
        load_prices("/nonexistent/prices.toml")
    assert load_prices(BUILTIN_PRICES_FILE).prices == builtin_prices().prices


def test_summary_records_the_source_and_the_reason() -> None:
    s = build_summary([], [], model="gpt-realtime-2.1")
    assert s["cost"]["usd"] is None and s["totals"]["cost_usd"] is None
    assert "gpt-realtime-2.1" in s["cost"]["note"] and s["cost"]["prices_source"] == "built-in"
    table = PriceTable(prices={"m": ONES}, source="f.toml")
    s = build_summary([], [], model="m", prices=table)
    assert s["cost"]["prices_per_1m"]["audio_out"] == 1.0 and s["cost"]["prices_source"] == "f.toml"


def test_run_refuses_a_bad_prices_file_before_running(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.x]\ntext_in = 1")
    with pytest.raises(UsageError, match=r"^--prices: .*bad.toml: models.x: missing rate"):
        prepare(parse("--prices", str(bad)), env={})
    assert prepare(parse(), env={}).prices is None


def test_run_with_prices_file(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(ONES_TOML.replace("gpt-realtime-2", "gpt-realtime"))
    out = tmp_path / "out"
    argv = ["run", "--sessions", "1", "--concurrency", "1", "--out", str(out), *QUICK]
    assert main([*argv, "--prices", str(prices), "--server-in-process"]) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["cost"]["model"] == "gpt-realtime"
    assert summary["cost"]["prices_per_1m"] == {k: 1.0 for k in summary["cost"]["prices_per_1m"]}
    assert summary["cost"]["prices_source"] == f"built-in + {prices}"
    assert summary["config"]["prices"] == str(prices)
    tokens = summary["tokens"]
    assert summary["cost"]["usd"] == pytest.approx(
        (tokens["input_tokens"] + tokens["output_tokens"]) / 1e6, abs=1e-6
    )
