"""The embedded server's hearing: which cached caller line was spoken in a user turn.

Callers synthesize their lines into a voice cache (layout:
:mod:`orchestrator.audio.voices.layout`) and send a clip, possibly varied per session
(a noise bed down to ~10 dB SNR, leading/trailing silence, an 8 kHz µ-law telephone
round trip, G.711 input). :class:`Hearing` finds which clip a committed turn contains
and returns its text, so the server's transcript of a spoken turn is the spoken text.

The signal analysis (fingerprints, scoring) is in :mod:`.fingerprint`.

Measured (hibari clips, 10 sentences incl. a near-duplicate pair differing in one word;
a turn is the clip between 0.5 s and 0.6 s of silence, 5 ms off the frame grid to take
the worst alignment): the right clip scores 0.99 clean, 0.87 through a telephone round
trip or as 8 kHz µ-law input, 0.71-0.80 under a white or pink bed at 10 dB SNR (0.55
when the 10 dB noise covers the speech only), 0.71 telephone + 10 dB noise; every other
clip scores at most 0.33, the near-duplicate 0.41, speech-like synthetic sound 0.23,
noise 0. Cost (100 candidates of 1.6-5.7 s, one core): 2-3.5 ms per turn for turns of
4-30 s (silence-padded); loading about 3 ms per clip, plus the candidates' transforms
(about 10 ms, and 6.5 MB, per 100 candidates and FFT size; built for the common size at
load, for a longer turn's size when one first comes).

A turn holding only part of a clip (the server VAD split it at a long pause) is not that
clip: the server falls back to its other transcripts.

New clips. A long-running server sees callers add lines. When a turn matches nothing,
the directory is rescanned for clips not seen before (only new files are read): at once
when the directory changed, else at most every :data:`RESCAN_INTERVAL_S` seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from orchestrator.audio import AudioFileError, read_wav
from orchestrator.audio.voices.layout import ClipInfo, read_info

from .fingerprint import ClipBank, Fingerprint, fingerprint, turn_features

__all__ = [
    "MATCH_THRESHOLD",
    "Hearing",
    "Match",
    "TurnAudio",
    "fingerprint",
]

log = logging.getLogger("orchestrator.mockserver")

#: The lowest score that counts as hearing the clip.
MATCH_THRESHOLD = 0.45
#: Shortest wait between two rescans of the clip directory after unmatched turns.
RESCAN_INTERVAL_S = 2.0
#: Audio kept per turn (the most recent part of a longer turn).
MAX_TURN_S = 30.0
#: Clip lines longer than this are not loaded (no turn could hold them).
MAX_CLIP_S = MAX_TURN_S
#: Sample rate of cached clips (see the layout).
CLIP_RATE = 24000


@attrs.frozen
class Match:
    """The best clip for a turn: its text, key and score (None text: nothing heard)."""

    text: str | None
    key: str | None
    score: float


class Hearing:
    """Recognises cached caller lines in committed user turns.

    ``directory``: a voice cache (it need not exist yet). Clips are loaded at
    construction and, after a turn that matched nothing, by a rescan that reads only
    clips not seen before: at once when the directory changed since the last scan (its
    modification time), otherwise at most every ``rescan_interval_s`` of ``clock``.
    Synchronous: loading reads files (a few ms per clip), matching is pure numpy.
    """

    def __init__(
        self,
        directory: Path,
        *,
        threshold: float = MATCH_THRESHOLD,
        rescan_interval_s: float = RESCAN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.threshold = threshold
        self.rescan_interval_s = rescan_interval_s
        self._clock = clock
        self._bank = ClipBank()
        self._seen: set[str] = set()
        self._last_scan = -math.inf
        self._last_mtime: int | None = None
        self.rescans = 0
        self.load_new()

    @property
    def clips(self) -> int:
        """How many clips are loaded."""
        return len(self._bank.infos)

    def _mtime(self) -> int | None:
        try:
            return self.directory.stat().st_mtime_ns
        except OSError:
            return None

    def load_new(self) -> int:
        """Read the clips of the directory not seen before; returns how many were loaded
        (a clip that cannot be read or holds no sound is skipped, and not retried)."""
        self._last_scan = self._clock()
        self._last_mtime = self._mtime()
        try:
            metas = sorted(self.directory.glob("*.json"))
        except OSError:
            return 0
        loaded = 0
        for meta in metas:
            if meta.stem in self._seen:
                continue
            info = read_info(meta)
            if info is None:
                continue  # not (yet) a complete clip: looked at again on the next scan
            self._seen.add(info.key)
            print_ = self._load(info)
            if print_ is not None:
                self._bank.add(info, print_)
                loaded += 1
        if loaded:
            self._bank.warm()
        return loaded

    @staticmethod
    def _load(info: ClipInfo) -> Fingerprint | None:
        if info.samples > MAX_CLIP_S * CLIP_RATE:
            return None
        try:
            samples = read_wav(info.wav)
        except AudioFileError as exc:
            log.warning("hearing: skipping clip %s: %s", info.wav, exc)
            return None
        return fingerprint(samples, CLIP_RATE)

    def match(self, samples: np.ndarray, rate: int) -> Match:
        """The best loaded clip for a turn of int16 ``samples`` at ``rate`` (no rescan)."""
        if not self._bank.infos:
            return Match(None, None, 0.0)
        turn, core = turn_features(samples, rate)
        if turn.shape[0] == 0:
            return Match(None, None, 0.0)
        index, score = self._bank.best(turn, core)
        info = self._bank.infos[index]
        heard = score >= self.threshold
        return Match(info.text if heard else None, info.key if heard else None, score)

    def hear(self, samples: np.ndarray, rate: int) -> str | None:
        """The text of the clip spoken in the turn, or None when none matches well.

        An unmatched turn triggers a rescan for new clips (see the class docstring) and
        is matched again if any were found."""
        result = self.match(samples, rate)
        if result.text is None and self._should_rescan():
            self.rescans += 1
            if self.load_new():
                result = self.match(samples, rate)
        return result.text

    def has_clips(self) -> bool:
        """Whether any clip is loaded; when none is, looks for new ones first (rescan
        rules as for an unmatched turn). A connection keeps its turns' audio only when
        there is something to hear."""
        if not self._bank.infos and self._should_rescan():
            self.rescans += 1
            self.load_new()
        return bool(self._bank.infos)

    def _should_rescan(self) -> bool:
        if self._mtime() != self._last_mtime:
            return True
        return self._clock() - self._last_scan >= self.rescan_interval_s


class TurnAudio:
    """The input audio of the current turn, kept for :class:`Hearing` (the most recent
    ``max_s`` seconds; appending keeps a reference to each decoded block, no copy)."""

    def __init__(self, rate: int, max_s: float = MAX_TURN_S) -> None:
        self.rate = rate
        self._cap = round(max_s * rate)
        self._blocks: deque[np.ndarray] = deque()
        self._n = 0

    def append(self, samples: np.ndarray) -> None:
        self._blocks.append(samples)
        self._n += samples.size
        while self._blocks and self._n - self._blocks[0].size >= self._cap:
            self._n -= self._blocks.popleft().size

    def take(self) -> np.ndarray:
        """The kept samples (at most ``max_s`` seconds); empties the turn."""
        out = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.int16)
        self.clear()
        return out[-self._cap :]

    def clear(self) -> None:
        """Forget the kept samples."""
        self._blocks.clear()
        self._n = 0
