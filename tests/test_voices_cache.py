"""The caller-voice cache: one engine call per line, in memory and on disk, keyed by the
engine version, safe with concurrent writers; 500 callers of one line cost one call.

Engines: the fast fake ``voices_helpers:fake_tts`` (counts its calls) and, once, hibari.
Every cache directory is under ``tmp_path`` (never ``~/.cache``)."""

from __future__ import annotations

import multiprocessing
import wave
from pathlib import Path

import numpy as np
import orjson
import pytest
import voices_helpers

from orchestrator.audio import resample
from orchestrator.audio.voices import layout
from orchestrator.audio.voices.cache import Line, VoiceCache, to_clip
from orchestrator.audio.voices.engines import VoiceError, get_engine
from orchestrator.audio.voices.variation import Variation
from orchestrator.scenario import BuiltinConversation

LINE = Line("Is it raining?", engine=voices_helpers.SPEC, voice="high", speed=1.0)


@pytest.fixture(autouse=True)
def cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The default cache directory points into the test's tmp_path."""
    directory = tmp_path / "env-cache"
    monkeypatch.setenv(layout.CACHE_ENV, str(directory))
    voices_helpers.calls.clear()
    return directory


def test_miss_then_memory_hit_shares_one_read_only_array(tmp_path: Path) -> None:
    cache = VoiceCache(tmp_path / "c")
    clip = cache.clip(LINE)
    assert cache.engine_calls == 1 and voices_helpers.calls == [("Is it raining?", "high", 1.0)]
    assert clip.dtype == np.int16 and not clip.flags.writeable
    raw, rate = voices_helpers.fake_tts("Is it raining?", voice="high")
    np.testing.assert_array_equal(clip, to_clip(raw, rate))  # resampled 16 -> 24 kHz
    assert cache.clip(Line("Is it raining?", engine=voices_helpers.SPEC, voice="high")) is clip
    assert cache.engine_calls == 1


def test_files_follow_the_layout_and_a_new_process_reads_them(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    clip = VoiceCache(directory).clip(LINE)
    (info,) = layout.scan(directory)
    engine = get_engine(voices_helpers.SPEC)
    assert info.key == layout.clip_key(engine.name, engine.version, "high", 1.0, LINE.text)
    assert (info.text, info.engine, info.voice, info.speed) == (LINE.text, LINE.engine, "high", 1.0)
    assert info.engine_version == engine.version and info.samples == clip.size
    with wave.open(str(info.wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        stored = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    np.testing.assert_array_equal(stored, clip)  # the exact clean clip
    assert sorted(p.name for p in directory.iterdir()) == [f"{info.key}.json", f"{info.key}.wav"]

    fresh = VoiceCache(directory)  # another process: disk hit, no engine call
    np.testing.assert_array_equal(fresh.clip(LINE), clip)
    assert fresh.engine_calls == 0 and len(voices_helpers.calls) == 1


def test_default_directory_comes_from_the_environment(cache_env: Path) -> None:
    cache = VoiceCache()
    assert cache.directory == cache_env
    cache.clip(LINE)
    assert len(layout.scan(cache_env)) == 1


def test_an_incomplete_clip_is_synthesized_again(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    VoiceCache(directory).clip(LINE)
    (info,) = layout.scan(directory)
    info.wav.write_bytes(info.wav.read_bytes()[:100])  # cut short: samples do not match
    cache = VoiceCache(directory)
    cache.clip(LINE)
    assert cache.engine_calls == 1
    info.wav.with_suffix(".json").unlink()  # no JSON: the WAV is not trusted
    cache = VoiceCache(directory)
    cache.clip(LINE)
    assert cache.engine_calls == 1


def test_the_key_covers_engine_version_voice_speed_and_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "c"
    VoiceCache(directory).clip(LINE)
    for line in (
        Line(LINE.text, engine=LINE.engine, voice="low"),
        Line(LINE.text, engine=LINE.engine, voice="high", speed=1.05),
        Line("Is it snowing?", engine=LINE.engine, voice="high"),
    ):
        cache = VoiceCache(directory)
        cache.clip(line)
        assert cache.engine_calls == 1, line
    engine = get_engine(voices_helpers.SPEC)
    monkeypatch.setattr(engine, "version", "2.0")  # a new engine release
    cache = VoiceCache(directory)
    cache.clip(LINE)
    assert cache.engine_calls == 1
    assert len(layout.scan(directory)) == 5


def test_no_voice_means_the_engines_default(tmp_path: Path) -> None:
    cache = VoiceCache(tmp_path)
    assert cache.info(Line("x", engine=voices_helpers.SPEC)).voice == "low"


def test_an_unwritable_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(VoiceError, match=f"voice cache {blocker}/sub: cannot write"):
        VoiceCache(blocker / "sub").clip(LINE)


def _fill(directory: str) -> bytes:
    """A process filling the cache: the clip's bytes."""
    return VoiceCache(directory).clip(LINE).tobytes()


def test_concurrent_processes_writing_one_key_are_safe(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_fill, [str(directory)] * 8)
    assert len(set(results)) == 1
    (info,) = layout.scan(directory)
    assert VoiceCache(directory).clip(LINE).tobytes() == results[0]
    assert orjson.loads(info.wav.with_suffix(".json").read_bytes())["samples"] == info.samples
    assert sorted(p.suffix for p in directory.iterdir()) == [".json", ".wav"]  # no temp files


def test_500_callers_of_one_line_cost_one_engine_call(tmp_path: Path) -> None:
    cache = VoiceCache(tmp_path / "c")
    conversation = BuiltinConversation(
        speak=LINE, variation=Variation(noise="pink", snr_db=15, jitter_ms=80), cache=cache
    )
    conversation.prepare()
    sources = [conversation.source(caller) for caller in range(500)]
    assert cache.engine_calls == 1 and len(voices_helpers.calls) == 1
    for _ in range(500):
        cache.clip(LINE)
    assert cache.engine_calls == 1
    assert len({id(s.samples) for s in sources}) == 32  # a bounded pool of callers, shared
    assert all(not s.samples.flags.writeable for s in sources)


def test_hibari_clips_are_cached_at_24k(tmp_path: Path) -> None:
    cache = VoiceCache(tmp_path / "c")
    clip = cache.clip(Line("Hello there."))
    raw, rate = get_engine("hibari").synthesize("Hello there.", "heart", 1.0)
    assert rate == 24000
    np.testing.assert_array_equal(clip, to_clip(raw, rate))
    assert (layout.scan(tmp_path / "c")[0].engine, cache.engine_calls) == ("hibari", 1)


def test_to_clip_converts_int16_at_other_rates() -> None:
    x = (np.arange(800) % 200 - 100).astype(np.int16)
    np.testing.assert_array_equal(to_clip(x, 8000), resample(x, 8000, 24000))
