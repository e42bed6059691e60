"""Where synthesized caller lines live on disk: the contract between the voice cache
(which writes clips) and the embedded server's hearing (which reads them).

A cache directory holds, per clip, two files named by the clip's key:

- ``<key>.wav``: the clean synthesized line, mono PCM16 at 24 kHz (the engine's output
  resampled), before any per-session variation;
- ``<key>.json``: its :class:`ClipInfo` (text, engine, engine version, voice, speed,
  sample count).

The key is a digest of (engine, engine version, voice, speed, text), so a new engine
release or another voice never reuses an old clip. Writers write the WAV first and the
JSON last, each through a temporary file renamed into place: a ``.json`` that exists
means its WAV is complete, so readers (possibly another process) never see half a clip.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import attrs
import orjson

__all__ = [
    "CACHE_ENV",
    "ClipInfo",
    "clip_key",
    "default_cache_dir",
    "read_info",
    "scan",
    "write_atomic",
]

#: Environment variable that overrides the default cache directory.
CACHE_ENV = "ORCHESTRATOR_VOICE_CACHE"


def default_cache_dir() -> Path:
    """``$ORCHESTRATOR_VOICE_CACHE``, else ``$XDG_CACHE_HOME/realtime-orchestrator/voices``,
    else ``~/.cache/realtime-orchestrator/voices``. Not created here."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "realtime-orchestrator" / "voices"


def clip_key(engine: str, engine_version: str, voice: str, speed: float, text: str) -> str:
    """The file-name key of a clip: 32 hex digits of a SHA-256 over its identity."""
    identity = orjson.dumps([engine, engine_version, voice, round(float(speed), 4), text])
    return hashlib.sha256(identity).hexdigest()[:32]


@attrs.frozen
class ClipInfo:
    """What a cached clip says: ``text`` spoken by ``engine`` (``engine_version``) in
    ``voice`` at ``speed``; ``samples`` at 24 kHz. ``wav`` is the clip's audio file."""

    text: str
    engine: str
    engine_version: str
    voice: str
    speed: float
    samples: int
    wav: Path

    @property
    def key(self) -> str:
        return self.wav.stem

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "text": self.text,
                "engine": self.engine,
                "engine_version": self.engine_version,
                "voice": self.voice,
                "speed": self.speed,
                "samples": self.samples,
            }
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, renamed
    into place (readers see the old file or the whole new one, never a part)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_info(meta: Path) -> ClipInfo | None:
    """The :class:`ClipInfo` in ``meta`` (a ``<key>.json``), or None when it is unreadable,
    malformed or its WAV is missing (a foreign or damaged file is skipped, not fatal)."""
    try:
        raw = orjson.loads(meta.read_bytes())
        info = ClipInfo(
            text=str(raw["text"]),
            engine=str(raw["engine"]),
            engine_version=str(raw["engine_version"]),
            voice=str(raw["voice"]),
            speed=float(raw["speed"]),
            samples=int(raw["samples"]),
            wav=meta.with_suffix(".wav"),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return info if info.wav.is_file() else None


def scan(directory: Path) -> list[ClipInfo]:
    """Every complete clip in ``directory`` (sorted by key; empty when the directory does
    not exist)."""
    try:
        metas = sorted(directory.glob("*.json"))
    except OSError:
        return []
    return [info for meta in metas if (info := read_info(meta)) is not None]
