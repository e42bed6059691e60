"""The seeded latency model: distributions and the timing plan of one response.

Every emission time of a response is a pure function of the model, the response's
random stream and its anchor (``speech_stopped`` emission for VAD turns, receipt of
``response.create`` otherwise). The connection actor sleeps until those absolute
deadlines; sending adds no delay of its own, so on trio's ``MockClock`` a fixed
time-to-first-delta of 300 ms is observed by the client as exactly 300 ms.
"""

from __future__ import annotations

import math
import random
from typing import Literal

import attrs

DistKind = Literal["fixed", "uniform", "normal", "lognormal"]
_KINDS: tuple[str, ...] = ("fixed", "uniform", "normal", "lognormal")
#: One sensible example per kind, for messages.
_EXAMPLES: dict[str, str] = {
    "fixed": "fixed:300",
    "uniform": "uniform:200:400",
    "normal": "normal:300:50",
    "lognormal": "lognormal:350:0.25",
}
#: Largest log-space sigma of a lognormal: at 3 the 95th percentile is already ~140 x
#: the median; anything larger is a unit mistake (sigma given in ms).
MAX_LOGNORMAL_SIGMA = 3.0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class DistributionError(ValueError):
    """A distribution spec string or parameter set is invalid (the message names it)."""


@attrs.frozen
class Distribution:
    """A non-negative random duration (or count) in the model's unit (ms or words).

    - ``fixed:a`` always ``a``;
    - ``uniform:a:b`` uniform in ``[a, b]``;
    - ``normal:mean:sd`` normal, clamped at 0;
    - ``lognormal:median:sigma`` log-normal with that median and log-space standard
      deviation ``sigma`` (0 < sigma <= 3; e.g. ``lognormal:350:0.25``), not in ms.
    """

    kind: DistKind
    a: float
    b: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise DistributionError(
                f"unknown distribution {self.kind!r} (expected {', '.join(_KINDS)})"
            )
        if not (math.isfinite(self.a) and math.isfinite(self.b)):
            raise DistributionError(f"{self}: parameters must be finite")
        if self.a < 0:
            raise DistributionError(f"{self}: first parameter must be >= 0")
        if self.kind == "uniform" and self.b < self.a:
            raise DistributionError(f"{self}: uniform needs low <= high")
        if self.kind == "normal" and self.b < 0:
            raise DistributionError(f"{self}: spread must be >= 0")
        if self.kind == "lognormal" and not 0 < self.b <= MAX_LOGNORMAL_SIGMA:
            raise DistributionError(
                f"{self}: sigma is the log-space standard deviation (not ms) and must be "
                f"in (0, {MAX_LOGNORMAL_SIGMA:g}], e.g. {_EXAMPLES['lognormal']} (median "
                "350 ms, about 2/3 of draws within 275-450 ms); use fixed:MS for no spread"
            )

    @classmethod
    def parse(cls, spec: str) -> Distribution:
        """Parse ``"300"``, ``"fixed:300"``, ``"uniform:200:400"``, ``"normal:300:50"`` or
        ``"lognormal:350:0.25"`` (``,`` also separates parameters). A first part that is
        neither a kind nor a number is an unknown kind."""
        text = spec.strip().replace(",", ":")
        parts = [p for p in text.split(":") if p != ""]
        if not parts:
            raise DistributionError(f"empty distribution spec {spec!r}")
        if parts[0] not in _KINDS:
            if not _is_number(parts[0]):
                raise DistributionError(
                    f"distribution {spec!r}: unknown distribution {parts[0]!r} "
                    f"(expected {', '.join(_KINDS)})"
                )
            parts.insert(0, "fixed")
        kind = parts[0]
        want = 1 if kind == "fixed" else 2
        if len(parts) - 1 != want:
            raise DistributionError(
                f"distribution {spec!r}: {kind} takes {want} parameter(s), e.g. {_EXAMPLES[kind]}"
            )
        try:
            values = [float(p) for p in parts[1:]]
        except ValueError:
            raise DistributionError(f"distribution {spec!r}: parameters must be numbers") from None
        return cls(kind, values[0], values[1] if want == 2 else 0.0)  # type: ignore[arg-type]

    def sample(self, rng: random.Random) -> float:
        """Draw one value (>= 0). ``fixed`` consumes no randomness."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        if self.a == 0:
            return 0.0
        return math.exp(rng.gauss(math.log(self.a), self.b))

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.a:g}"
        return f"{self.kind}:{self.a:g}:{self.b:g}"


@attrs.frozen
class LatencyModel:
    """How long the simulated model takes, all in milliseconds from the anchor.

    ``delta_interval_ms`` of ``None`` paces deltas by audio duration: one chunk of
    ``audio_chunk_ms`` every ``audio_chunk_ms / realtime_factor`` (a factor of 0 means
    as fast as possible). ``response_words`` is the length of generated answers.
    ``leading_silence_ms``: digital silence at the start of every audio answer, part of
    its audio stream (real models often start with 75-341 ms of it; PROTOCOL_NOTES §8).
    ``mcp_call_ms``: how long a simulated MCP call runs (``response.mcp_call.in_progress``
    to ``.completed``).
    """

    response_created_ms: Distribution = Distribution("fixed", 5.0)
    first_delta_ms: Distribution = Distribution("lognormal", 350.0, 0.25)
    delta_interval_ms: Distribution | None = None
    response_words: Distribution = Distribution("uniform", 8.0, 20.0)
    realtime_factor: float = 2.0
    audio_chunk_ms: int = 100
    speech_ms_per_word: int = 350
    transcription_ms: Distribution = Distribution("fixed", 150.0)
    leading_silence_ms: Distribution = Distribution("fixed", 0.0)
    mcp_call_ms: Distribution = Distribution("fixed", 200.0)

    def __attrs_post_init__(self) -> None:
        if not (self.realtime_factor >= 0 and math.isfinite(self.realtime_factor)):
            raise DistributionError("realtime_factor must be a finite number >= 0")
        if not 10 <= self.audio_chunk_ms <= 5000:
            raise DistributionError("audio_chunk_ms must be in 10..5000")
        if self.speech_ms_per_word <= 0:
            raise DistributionError("speech_ms_per_word must be > 0")

    def interval_s(self, rng: random.Random) -> float:
        """Seconds between consecutive deltas of a response."""
        if self.delta_interval_ms is not None:
            return self.delta_interval_ms.sample(rng) / 1000.0
        if self.realtime_factor == 0:
            return 0.0
        return self.audio_chunk_ms / 1000.0 / self.realtime_factor


@attrs.frozen
class ResponseTiming:
    """Offsets (seconds from the anchor) for one response, drawn once up front, and the
    milliseconds of silence an audio answer starts with."""

    created_s: float
    first_delta_s: float
    interval_s: float
    words: int
    leading_silence_ms: int = 0

    def delta_at(self, index: float) -> float:
        """Offset of the ``index``-th streamed delta (0 = first; audio deltas count in
        chunks of audio sent before them, so a partial chunk is a fraction)."""
        return self.first_delta_s + index * self.interval_s


def plan_timing(model: LatencyModel, rng: random.Random) -> ResponseTiming:
    """Draw a response's timing. The first delta never precedes ``response.created``.
    The leading silence is drawn last (``fixed`` draws consume no randomness, so the
    default of 0 leaves every other draw as it was)."""
    created = model.response_created_ms.sample(rng) / 1000.0
    first = max(created, model.first_delta_ms.sample(rng) / 1000.0)
    interval = model.interval_s(rng)
    words = max(1, round(model.response_words.sample(rng)))
    silence = round(model.leading_silence_ms.sample(rng))
    return ResponseTiming(
        created_s=created,
        first_delta_s=first,
        interval_s=interval,
        words=words,
        leading_silence_ms=silence,
    )
