"""Test-wide settings: no test reads or writes the user's own voice cache."""

from __future__ import annotations

import pytest

from orchestrator.audio.voices.layout import CACHE_ENV


@pytest.fixture(autouse=True)
def _voice_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Synthesized caller lines go to one temporary folder shared by the whole test run
    (tests that need a cache of their own set ``ORCHESTRATOR_VOICE_CACHE`` themselves);
    subprocesses inherit it."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "voice-cache"))
