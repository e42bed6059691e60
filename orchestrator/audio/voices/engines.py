"""Text-to-speech engines for caller voices: ``hibari``, ``espeak`` and ``module:function``.

An engine turns text into samples; it does no caching (see :mod:`.cache`) and no
resampling (its native rate is returned with the samples). Every engine is synchronous
and may take tens of milliseconds to seconds: call it before a run's clock starts, never
on the trio event loop.

- ``hibari`` (PyPI ``hibari-tts``, the ``voices`` extra): 24 kHz float32. Only the
  voice bundled in the wheel (``heart``) exists offline; another hibari voice is used only
  when its model file is already in hibari's own cache. Nothing is ever downloaded. The
  model is loaded once per process and voice, on first use. Synthesis is seeded
  (``seed=0``), so the same line gives the same samples every time.
- ``espeak`` (the ``espeak-ng`` program, ``apt-get install espeak-ng``): many voices and
  languages; speed maps to ``-s 175 * speed`` words per minute.
- ``module:function``: a user's engine, ``function(text, voice=..., speed=...)``
  returning ``(samples, rate)`` (1-D float in [-1, 1] or int16 samples, rate in Hz). Its
  version (a cache key part) is the function's or module's ``__version__``, else a
  digest of the function's code, so editing the function invalidates its cached clips.
  An optional ``function.voices`` (a sequence of names) lists its voices.

:func:`get_engine` returns one shared engine per spec per process (thread-safe); every
problem is a :class:`VoiceError` saying what was wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from orchestrator.audio.wav import AudioFileError, parse_riff

__all__ = [
    "ESPEAK_WPM",
    "EXTRA_HINT",
    "Engine",
    "EspeakEngine",
    "FunctionEngine",
    "HibariEngine",
    "VoiceError",
    "engine_available",
    "get_engine",
]

#: How to install the hibari engine.
EXTRA_HINT = "install the voices extra: pip install 'realtime-orchestrator[voices]'"

#: espeak-ng words per minute at speed 1.0.
ESPEAK_WPM = 175


class VoiceError(ValueError):
    """A caller voice cannot be made: unknown engine or voice, engine not installed, bad
    speed or text, an engine that failed. The message says what and how to fix it."""


class Engine(Protocol):
    """A text-to-speech engine.

    ``name`` and ``version`` are part of every cached clip's key; ``native_rate`` is the
    rate :meth:`synthesize` usually returns; ``default_voice`` is used when a line names
    none.
    """

    name: str
    version: str
    native_rate: int
    default_voice: str

    def voices(self) -> tuple[str, ...]:
        """The voices usable now (offline), ``default_voice`` among them."""
        ...

    def synthesize(self, text: str, voice: str, speed: float) -> tuple[np.ndarray, int]:
        """``text`` spoken in ``voice`` at ``speed`` (1.0 = the engine's normal pace):
        ``(samples, rate)``, samples 1-D float in [-1, 1] or int16. Raises
        :class:`VoiceError`. Synchronous and slow: never call it on the event loop."""
        ...


def _check_request(engine: Engine, text: str, voice: str, speed: float) -> None:
    if not text.strip():
        raise VoiceError(f"{engine.name}: nothing to say (the text is empty)")
    if not 0.25 <= speed <= 4.0:
        raise VoiceError(f"{engine.name}: speed must be in [0.25, 4], got {speed!r}")
    if voice not in engine.voices():
        raise VoiceError(
            f"{engine.name}: unknown voice {voice!r}; voices available offline: "
            + ", ".join(engine.voices())
        )


# --------------------------------------------------------------------------- hibari


class HibariEngine:
    """The ``hibari-tts`` engine (see the module docstring). Raises :class:`VoiceError`
    at construction when ``hibari`` is not installed."""

    name = "hibari"
    native_rate = 24000
    default_voice = "heart"

    def __init__(self) -> None:
        try:
            import hibari  # type: ignore[import-untyped]
            import hibari.voices  # type: ignore[import-untyped]
        except ImportError:
            raise VoiceError(f"engine 'hibari' is not installed: {EXTRA_HINT}") from None
        self._hibari = hibari
        self.version = f"hibari-tts {hibari.__version__}"
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _offline(self, voice: str) -> bool:
        try:
            self._hibari.voices.voice_path(voice, download_missing=False)
        except (FileNotFoundError, ValueError):
            return False
        return True

    def voices(self) -> tuple[str, ...]:
        """The bundled voice and any other hibari voice already in hibari's own cache."""
        return tuple(v for v in self._hibari.voices.VOICES if self._offline(v))

    def _model(self, voice: str) -> Any:
        with self._lock:
            model = self._models.get(voice)
            if model is None:
                path = self._hibari.voices.voice_path(voice, download_missing=False)
                model = self._hibari.Hibari(voice=voice, model=path, threads=1)
                self._models[voice] = model
            return model

    def synthesize(self, text: str, voice: str, speed: float) -> tuple[np.ndarray, int]:
        if voice not in self._hibari.voices.VOICES:
            raise VoiceError(
                f"hibari: unknown voice {voice!r}; hibari voices: "
                + ", ".join(self._hibari.voices.VOICES)
            )
        if not self._offline(voice):
            raise VoiceError(
                f"hibari: voice {voice!r} is not available offline (only the bundled voice "
                f"{self.default_voice!r} ships with hibari-tts, and nothing is downloaded at "
                f"run time); use voice {self.default_voice!r}, or fetch it once beforehand "
                f"with: python -c \"import hibari.voices as v; v.voice_path('{voice}')\""
            )
        _check_request(self, text, voice, speed)
        model = self._model(voice)
        with self._lock:  # one onnxruntime session per voice; calls are serialised
            samples = model(text, speed=speed, seed=0)
        return np.asarray(samples, dtype=np.float32), self.native_rate


# --------------------------------------------------------------------------- espeak


class EspeakEngine:
    """The ``espeak-ng`` program (see the module docstring). Raises :class:`VoiceError`
    at construction when it is not on PATH."""

    name = "espeak"
    native_rate = 22050
    default_voice = "en-us"

    def __init__(self) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise VoiceError(
                "engine 'espeak' needs the espeak-ng program, which is not on PATH: "
                "apt-get install espeak-ng (or brew install espeak-ng)"
            )
        self._exe = exe
        out = self._run(["--version"], b"").decode("utf-8", "replace")
        # "eSpeak NG text-to-speech: 1.51  Data at: ..."
        self.version = "espeak-ng " + out.split(":", 1)[-1].split()[0] if ":" in out else out
        self._voices: tuple[str, ...] | None = None

    def _run(self, args: list[str], stdin: bytes) -> bytes:
        try:
            done = subprocess.run(
                [self._exe, *args], input=stdin, capture_output=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VoiceError(f"espeak: could not run {self._exe}: {exc}") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()
            raise VoiceError(f"espeak: espeak-ng {' '.join(args[:4])} failed: {err}")
        return done.stdout

    def voices(self) -> tuple[str, ...]:
        """Every voice of ``espeak-ng --voices`` (its language codes and voice names)."""
        if self._voices is None:
            names: list[str] = []
            for line in self._run(["--voices"], b"").decode("utf-8", "replace").splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 5:
                    names.extend(c for c in (cols[1], cols[3]) if c not in names)
            self._voices = tuple(names)
        return self._voices

    def synthesize(self, text: str, voice: str, speed: float) -> tuple[np.ndarray, int]:
        _check_request(self, text, voice, speed)
        wpm = str(round(ESPEAK_WPM * speed))
        raw = self._run(["--stdout", "--stdin", "-v", voice, "-s", wpm], text.encode("utf-8"))
        try:
            riff = parse_riff("<espeak-ng --stdout>", raw)
        except AudioFileError as exc:
            raise VoiceError(f"espeak: unexpected output: {exc}") from None
        if riff.tag != 1 or riff.bits != 16 or riff.channels != 1:
            raise VoiceError(f"espeak: expected 16-bit mono PCM, got {riff}")
        usable = len(riff.data) // 2 * 2  # streamed: the header's size is a placeholder
        return np.frombuffer(riff.data[:usable], "<i2").astype(np.int16), riff.rate


# --------------------------------------------------------------------------- module:function


def _code_digest(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return "unversioned"
    identity = code.co_code + repr(code.co_consts).encode()
    return "code-" + hashlib.sha256(identity).hexdigest()[:12]


class FunctionEngine:
    """A user's engine ``module:function`` (see the module docstring). Raises
    :class:`VoiceError` when the module cannot be imported or has no such function."""

    native_rate = 24000
    default_voice = "default"

    def __init__(self, spec: str) -> None:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise VoiceError(
                f"engine {spec!r}: give 'hibari', 'espeak' or MODULE:FUNCTION (e.g. mytts:speak)"
            )
        self.name = spec
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise VoiceError(
                f"engine {spec!r}: cannot import module {module_name!r} ({exc}); is it on "
                "PYTHONPATH?"
            ) from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise VoiceError(f"engine {spec!r}: module {module_name!r} has no function {attr!r}")
        self._fn: Callable[..., Any] = fn
        version = getattr(fn, "__version__", None) or getattr(module, "__version__", None)
        self.version = str(version) if version else _code_digest(fn)
        declared = getattr(fn, "voices", None)
        self._voices = tuple(str(v) for v in declared) if declared else (self.default_voice,)
        self.default_voice = self._voices[0]

    def voices(self) -> tuple[str, ...]:
        return self._voices

    def synthesize(self, text: str, voice: str, speed: float) -> tuple[np.ndarray, int]:
        _check_request(self, text, voice, speed)
        try:
            result = self._fn(text, voice=voice, speed=speed)
        except Exception as exc:  # noqa: BLE001 - the user's code: report it as data
            raise VoiceError(f"engine {self.name}: raised {type(exc).__name__}: {exc}") from exc
        return _check_result(self.name, result)


def _check_result(name: str, result: Any) -> tuple[np.ndarray, int]:
    """``(samples, rate)`` of a user's engine, checked; :class:`VoiceError` naming the
    function otherwise."""
    expect = "must return (samples, rate): a 1-D float [-1, 1] or int16 array and a rate in Hz"
    if not isinstance(result, tuple) or len(result) != 2:
        raise VoiceError(f"engine {name} {expect}; it returned {type(result).__name__}")
    samples, rate = result
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise VoiceError(f"engine {name} {expect}; its rate is {rate!r}")
    arr = np.asarray(samples)
    if arr.ndim != 1 or arr.size == 0:
        raise VoiceError(f"engine {name} {expect}; its samples have shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise VoiceError(f"engine {name} {expect}; its samples hold NaN or infinity")
    elif arr.dtype != np.int16:
        raise VoiceError(f"engine {name} {expect}; its samples are {arr.dtype}")
    return arr, int(rate)


# --------------------------------------------------------------------------- lookup

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_ALIASES = {"hibari": "hibari", "hibari-tts": "hibari", "espeak": "espeak", "espeak-ng": "espeak"}


def get_engine(spec: str) -> Engine:
    """The engine ``spec`` names: ``hibari``, ``espeak`` (``espeak-ng``) or
    ``module:function``; one shared instance per spec per process (the hibari model loads
    on first synthesis). Raises :class:`VoiceError` saying what is missing and how to get
    it."""
    key = _ALIASES.get(spec.strip().lower(), spec.strip())
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if key == "hibari":
                engine = HibariEngine()
            elif key == "espeak":
                engine = EspeakEngine()
            elif ":" in key:
                engine = FunctionEngine(key)
            else:
                raise VoiceError(
                    f"unknown voice engine {spec!r}: use 'hibari', 'espeak' or "
                    "MODULE:FUNCTION (a function(text, voice=, speed=) -> (samples, rate))"
                )
            _ENGINES[key] = engine
        return engine


def engine_available(spec: str) -> str | None:
    """None when :func:`get_engine` finds ``spec``'s engine, else the reason (the
    :class:`VoiceError` message). Cheap: it does not load the hibari model."""
    try:
        if _ALIASES.get(spec.strip().lower()) == "hibari":
            import hibari  # noqa: F401 - checked on every call, not only the first
        get_engine(spec)
    except ImportError:
        return f"engine 'hibari' is not installed: {EXTRA_HINT}"
    except VoiceError as exc:
        return str(exc)
    return None
