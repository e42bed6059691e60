"""Caller-voice engines: hibari (real synthesis, offline only), espeak-ng (when on PATH),
a user's ``module:function``, and the errors that say how to fix a missing engine.

The hibari model is loaded once per process (the engine registry shares it)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import voices_helpers

from orchestrator.audio.voices import engines
from orchestrator.audio.voices.engines import (
    EXTRA_HINT,
    VoiceError,
    engine_available,
    get_engine,
)

QUESTION = "What is the weather in Paris today?"


@pytest.fixture
def no_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty engine registry for the test (the shared one is restored after)."""
    monkeypatch.setattr(engines, "_ENGINES", {})


def test_hibari_synthesizes_the_bundled_voice_deterministically() -> None:
    engine = get_engine("hibari")
    assert engine.name == "hibari" and engine.version.startswith("hibari-tts ")
    assert engine.native_rate == 24000 and engine.default_voice == "heart"
    assert "heart" in engine.voices()
    samples, rate = engine.synthesize(QUESTION, "heart", 1.0)
    assert rate == 24000 and samples.dtype == np.float32 and samples.ndim == 1
    assert 2.0 <= samples.size / rate <= 3.5
    assert 0.05 < float(np.max(np.abs(samples))) <= 1.0
    again, _ = engine.synthesize(QUESTION, "heart", 1.0)
    np.testing.assert_array_equal(samples, again)  # seeded: bit-identical
    faster, _ = engine.synthesize(QUESTION, "heart", 1.5)
    assert faster.size < 0.8 * samples.size
    assert get_engine("hibari") is engine  # one per process: the model loads once


def test_hibari_never_downloads_a_voice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path))  # hibari's own cache: empty
    engine = get_engine("hibari")
    assert engine.voices() == ("heart",)
    with pytest.raises(VoiceError, match="'emma' is not available offline.*nothing is downloaded"):
        engine.synthesize("Hello.", "emma", 1.0)
    with pytest.raises(VoiceError, match="unknown voice 'nobody'; hibari voices: heart"):
        engine.synthesize("Hello.", "nobody", 1.0)
    with pytest.raises(VoiceError, match="speed must be in"):
        engine.synthesize("Hello.", "heart", 9.0)
    with pytest.raises(VoiceError, match="nothing to say"):
        engine.synthesize("  ", "heart", 1.0)


@pytest.mark.usefixtures("no_engines")
def test_missing_hibari_says_how_to_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hibari", None)  # import hibari -> ImportError
    with pytest.raises(VoiceError) as info:
        get_engine("hibari")
    assert "pip install 'realtime-orchestrator[voices]'" in str(info.value)
    assert engine_available("hibari") == f"engine 'hibari' is not installed: {EXTRA_HINT}"


@pytest.mark.usefixtures("no_engines")
def test_missing_espeak_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(VoiceError, match="apt-get install espeak-ng"):
        get_engine("espeak")


def test_unknown_engine_names_the_choices() -> None:
    with pytest.raises(VoiceError, match="unknown voice engine 'festival': use 'hibari', 'espeak'"):
        get_engine("festival")
    assert engine_available("festival") is not None


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_synthesizes_with_many_voices() -> None:
    engine = get_engine("espeak-ng")
    assert engine is get_engine("espeak")
    assert engine.version.startswith("espeak-ng ")
    assert {"en-us", "en-gb", "de", "fr-fr"} <= set(engine.voices())
    samples, rate = engine.synthesize(QUESTION, "en-us", 1.0)
    assert rate == 22050 and samples.dtype == np.int16
    assert 1.5 <= samples.size / rate <= 3.5
    fast, _ = engine.synthesize(QUESTION, "en-us", 2.0)  # -s 350
    assert fast.size < 0.7 * samples.size
    dash, _ = engine.synthesize("-5 degrees", "en-us", 1.0)  # text is never an option
    assert dash.size > 0
    with pytest.raises(VoiceError, match="unknown voice 'xx-nowhere'"):
        engine.synthesize("Hi.", "xx-nowhere", 1.0)


def test_a_users_function_is_an_engine() -> None:
    engine = get_engine(voices_helpers.SPEC)
    assert engine.name == voices_helpers.SPEC
    assert engine.voices() == ("low", "high") and engine.default_voice == "low"
    assert engine.version.startswith("code-")  # no __version__: a digest of its code
    samples, rate = engine.synthesize("hello", "high", 1.25)
    assert rate == voices_helpers.RATE and samples.dtype == np.float32
    assert voices_helpers.calls[-1] == ("hello", "high", 1.25)


def test_a_users_module_or_function_that_is_not_there() -> None:
    with pytest.raises(VoiceError, match="cannot import module 'no_such_tts_module'"):
        get_engine("no_such_tts_module:speak")
    with pytest.raises(VoiceError, match="module 'voices_helpers' has no function 'nope'"):
        get_engine("voices_helpers:nope")
    with pytest.raises(VoiceError, match="give 'hibari', 'espeak' or MODULE:FUNCTION"):
        get_engine(":speak")


@pytest.mark.parametrize(
    ("result", "says"),
    [
        (None, "it returned NoneType"),
        ([np.zeros(10), 24000], "it returned list"),
        ((np.zeros(10), 24000, 1), "it returned tuple"),
        ((np.zeros(10), 0), "its rate is 0"),
        ((np.zeros(10), 24000.0), "its rate is 24000.0"),
        ((np.zeros((10, 2)), 24000), "its samples have shape (10, 2)"),
        ((np.zeros(0), 24000), "its samples have shape (0,)"),
        ((np.array([0.0, np.nan]), 24000), "NaN or infinity"),
        ((np.zeros(10, np.int32), 24000), "its samples are int32"),
    ],
)
def test_a_users_engine_returning_the_wrong_thing_is_named(result: object, says: str) -> None:
    voices_helpers.bad_tts.result = result  # type: ignore[attr-defined]
    engine = get_engine("voices_helpers:bad_tts")
    with pytest.raises(VoiceError) as info:
        engine.synthesize("hello", "default", 1.0)
    msg = str(info.value)
    assert msg.startswith("engine voices_helpers:bad_tts must return (samples, rate)"), msg
    assert says in msg, msg


def test_a_users_engine_that_raises_is_named() -> None:
    engine = get_engine("voices_helpers:failing_tts")
    with pytest.raises(VoiceError, match="engine voices_helpers:failing_tts: raised RuntimeError"):
        engine.synthesize("hello", "default", 1.0)
