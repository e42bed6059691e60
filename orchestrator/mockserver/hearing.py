"""The embedded server's hearing: which cached caller line was spoken in a user turn.

Callers synthesize their lines into a voice cache (layout:
:mod:`orchestrator.audio.voices.layout`) and send a clip, possibly varied per session
(a noise bed down to ~10 dB SNR, leading/trailing silence, an 8 kHz µ-law telephone
round trip, G.711 input). :class:`Hearing` finds which clip a committed turn contains
and returns its text, so the server's transcript of a spoken turn is the spoken text.

Fingerprint. A signal is cut into 20 ms frames every 10 ms (Hann window, at its own
rate: 24 kHz PCM16 or 8 kHz G.711, no resampling; both give 50 Hz bins). Each frame's
power spectrum is pooled into :data:`N_BANDS` log-spaced bands between 300 and 3400 Hz
(the telephone band, so a µ-law round trip loses little the fingerprint uses) and taken
as log energy over an absolute floor (digital silence is not ``-inf``). Normalisation
removes what the variations change and keeps what the words decide:

1. per frame, the mean over bands is subtracted (loudness);
2. per band, the mean over the signal's speech frames is subtracted (the speaker's
   average spectrum, the channel, a noise bed's tilt);
3. each frame is scaled to unit length (its spectral *shape* is left).

A clip's frames are weighted: 1 for speech frames (within :data:`SPEECH_RANGE_DB` of its
loudest frames), 0 for its pauses; it spans its first to its last speech frame. A turn
is first trimmed of padding far from its speech (cheap broadband levels), so a long
silent or noisy turn costs what its speech costs.

Score. At offset ``o`` in the turn, a clip scores the weighted mean cosine similarity
of its frames and the turn's frames ``o, o+1, ...``, times the square root of its
*coverage*: the share of the turn's core frames (within :data:`CORE_RANGE_DB` of the
turn's loudest) inside the clip's window. Coverage stops a short line ("No.") from
matching a stretch of a longer one. A clip's score is its best offset that keeps it
whole inside the turn; the best clip is heard when it scores at least
:data:`MATCH_THRESHOLD`. The correlation over all offsets runs as FFTs for all
candidates at once (their transforms cached per FFT size): one turn FFT, one batched
product and one inverse FFT per candidate.

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

import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from orchestrator.audio import AudioFileError, read_wav
from orchestrator.audio.voices.layout import ClipInfo, read_info

__all__ = [
    "MATCH_THRESHOLD",
    "Hearing",
    "Match",
    "TurnAudio",
    "fingerprint",
]

log = logging.getLogger("orchestrator.mockserver")

FRAME_S = 0.020
HOP_S = 0.010
LOW_HZ = 300.0
HIGH_HZ = 3400.0
N_BANDS = 16
#: Band power floor (full scale = 1.0): about -80 dBFS, so digital silence is finite.
POWER_FLOOR = 1e-8
#: A clip frame within this many dB of its loudest frames (95th percentile) is speech.
SPEECH_RANGE_DB = 30.0
#: A turn frame this many dB above the turn's floor (quietest tenth) may be speech.
ABOVE_FLOOR_DB = 6.0
#: A turn frame within this many dB of its loudest frames is part of what was said.
CORE_RANGE_DB = 15.0
#: The lowest score that counts as hearing the clip.
MATCH_THRESHOLD = 0.45
#: Padding kept around a turn's speech when it is trimmed (see :func:`turn_features`).
TRIM_MARGIN_S = 0.3
#: Shortest wait between two rescans of the clip directory after unmatched turns.
RESCAN_INTERVAL_S = 2.0
#: Audio kept per turn (the most recent part of a longer turn).
MAX_TURN_S = 30.0
#: Clip lines longer than this are not loaded (no turn could hold them).
MAX_CLIP_S = MAX_TURN_S
#: Sample rate of cached clips (see the layout).
CLIP_RATE = 24000


@functools.cache
def _analysis(rate: int) -> tuple[int, int, np.ndarray, slice, np.ndarray]:
    """(frame length, hop, Hann window, the FFT bins of the band range, their bins x
    bands pooling matrix) for ``rate``."""
    n = round(rate * FRAME_S)
    hop = round(rate * HOP_S)
    window = np.hanning(n)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)  # 50 Hz apart at any rate
    edges = np.geomspace(LOW_HZ, HIGH_HZ, N_BANDS + 1)
    used = np.flatnonzero((freqs >= LOW_HZ) & (freqs < HIGH_HZ))
    bins = slice(int(used[0]), int(used[-1]) + 1)
    centres = freqs[bins]
    pool = np.zeros((centres.size, N_BANDS))
    for b in range(N_BANDS):
        inside = (centres >= edges[b]) & (centres < edges[b + 1])
        if not inside.any():  # a band narrower than a bin: the bin nearest its middle
            inside = np.arange(centres.size) == np.argmin(np.abs(centres - edges[b : b + 2].mean()))
        # mean power per bin, scaled so white noise of variance s^2 reads s^2 per band
        pool[inside, b] = 2.0 / (inside.sum() * float(np.sum(window**2)))
    return n, hop, window, bins, pool


def log_bands(samples: np.ndarray, rate: int) -> np.ndarray:
    """Log band energies, shape (frames, :data:`N_BANDS`), of int16 ``samples``."""
    n, hop, window, bins, pool = _analysis(rate)
    if samples.size < n:
        return np.zeros((0, N_BANDS))
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    # float64 on purpose: numpy's float32 FFTs are several times slower
    spectrum = np.fft.rfft(sliding_window_view(x, n)[::hop] * window)[:, bins]
    power = spectrum.real**2 + spectrum.imag**2
    return np.log10(power @ pool + POWER_FLOOR)


def _normalise(bands: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """Steps 1-3 of the module docstring: frame shapes relative to the loud frames'
    average shape, each frame of unit length (all-floor frames stay zero)."""
    shape = bands - bands.mean(axis=1, keepdims=True)
    if loud.any():
        shape -= shape[loud].mean(axis=0)
    norm = np.linalg.norm(shape, axis=1, keepdims=True)
    return np.divide(shape, norm, out=np.zeros_like(shape), where=norm > 1e-9)


def _loud_frames(bands: np.ndarray) -> np.ndarray:
    """Frames within :data:`SPEECH_RANGE_DB` of the loudest (95th percentile) frames."""
    if bands.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    level = 10.0 * np.log10(np.mean(10.0**bands, axis=1))
    return level >= np.percentile(level, 95) - SPEECH_RANGE_DB


def _speech_levels(level: np.ndarray) -> tuple[float, float]:
    """(speech threshold, core threshold) in dB for a turn's frame levels in dB."""
    floor, top = np.percentile(level, (10, 99))
    return max(top - SPEECH_RANGE_DB, floor + ABOVE_FLOOR_DB), top - CORE_RANGE_DB


def _trim(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` without the leading and trailing padding (silence or noise bed) far
    from any speech: cheap broadband levels on the hop grid decide, with
    :data:`TRIM_MARGIN_S` kept on each side (a long padded turn costs what its speech
    costs)."""
    hop = round(rate * HOP_S)
    blocks = samples[: samples.size // hop * hop].reshape(-1, hop).astype(np.float64)
    if blocks.shape[0] == 0:
        return samples
    level = 10.0 * np.log10(np.mean(blocks * blocks, axis=1) + 1.0)
    speech = np.flatnonzero(level >= _speech_levels(level)[0])
    if speech.size == 0:  # nothing stands out of the floor: no speech at all
        return samples[:0]
    margin = round(TRIM_MARGIN_S / HOP_S)
    first = max(0, int(speech[0]) - margin)
    last = min(blocks.shape[0], int(speech[-1]) + 1 + margin)
    return samples[first * hop : last * hop]


def turn_features(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The turn side of the fingerprint: (normalised frames, core mask), over the turn
    trimmed of padding far from speech.

    The average shape (step 2) is taken over the turn's speech frames: within
    :data:`SPEECH_RANGE_DB` of its loudest frames (99th percentile: a short line may be
    a few percent of a long turn) and at least :data:`ABOVE_FLOOR_DB` above its floor
    (its quietest tenth: silence padding or the noise bed). The *core* frames are those
    within :data:`CORE_RANGE_DB` of the loudest frames: what a clip must cover to be the
    whole of what was said."""
    bands = log_bands(_trim(samples, rate), rate)
    if bands.shape[0] == 0:
        return bands, np.zeros(0, dtype=bool)
    level = 10.0 * np.log10(np.mean(10.0**bands, axis=1))
    speech, core = _speech_levels(level)
    return _normalise(bands, level >= speech), level >= core


@attrs.frozen(eq=False)
class Fingerprint:
    """A clip's weighted frames: ``frames`` (speech frames scaled by 1 / their count,
    pauses zero) and ``span`` (frames from its first to its last speech frame)."""

    frames: np.ndarray
    span: int


def fingerprint(samples: np.ndarray, rate: int) -> Fingerprint | None:
    """The fingerprint of a clean clip, or None when it holds no sound."""
    bands = log_bands(samples, rate)
    if bands.shape[0] == 0 or float(bands.max()) <= np.log10(POWER_FLOOR) + 1.0:
        return None
    speech = _loud_frames(bands)
    frames = _normalise(bands, speech) * speech[:, None]
    where = np.flatnonzero(speech)
    first, last = int(where[0]), int(where[-1])
    weighted = frames[first : last + 1] / speech.sum()
    return Fingerprint(frames=weighted.astype(np.float32), span=last - first + 1)


@attrs.frozen
class Match:
    """The best clip for a turn: its text, key and score (None text: nothing heard)."""

    text: str | None
    key: str | None
    score: float


def _fft_size(frames: int) -> int:
    """The FFT size for a (padded) turn of ``frames`` frames: a power of two."""
    return 1 << (frames - 1).bit_length()


@attrs.define(eq=False)
class _Bank:
    """Loaded candidates and their FFTs per size (rebuilt when candidates are added)."""

    infos: list[ClipInfo] = attrs.field(factory=list)
    prints: list[Fingerprint] = attrs.field(factory=list)
    _spans: np.ndarray = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))
    _spectra: dict[int, np.ndarray] = attrs.field(factory=dict)

    def add(self, info: ClipInfo, print_: Fingerprint) -> None:
        self.infos.append(info)
        self.prints.append(print_)
        self._spans = np.append(self._spans, print_.span)
        self._spectra.clear()

    def spectra(self, nfft: int) -> np.ndarray:
        """Conjugate rFFTs of every candidate's frames, (nfft // 2 + 1, candidates, bands)."""
        cached = self._spectra.get(nfft)
        if cached is None:
            stacked = np.zeros((len(self.prints), N_BANDS, nfft))
            for i, p in enumerate(self.prints):
                stacked[i, :, : p.span] = p.frames.T
            spectra = np.conj(np.fft.rfft(stacked, axis=-1)).transpose(2, 0, 1)
            cached = self._spectra[nfft] = np.ascontiguousarray(spectra, dtype=np.complex64)
        return cached

    def warm(self) -> None:
        """Build the transforms for turns no longer than the longest clip (most turns)."""
        if self.prints:
            self.spectra(_fft_size(int(self._spans.max())))

    def best(self, turn: np.ndarray, core: np.ndarray) -> tuple[int, float]:
        """(candidate index, score) of the best candidate for a turn (its normalised
        frames and core mask, :func:`turn_features`)."""
        spans = self._spans
        # the turn, padded to hold the longest clip; a power of two at least that long
        # keeps every whole-clip offset free of circular wrap-around
        length = max(turn.shape[0], int(spans.max()))
        nfft = _fft_size(length)
        padded = np.zeros((N_BANDS, nfft))
        padded[:, : turn.shape[0]] = turn.T
        spectrum = np.fft.rfft(padded, axis=-1).T[:, :, None].astype(np.complex64)
        product = np.matmul(self.spectra(nfft), spectrum)[:, :, 0]  # (freqs, candidates)
        similarity = np.fft.irfft(product.astype(np.complex128), n=nfft, axis=0)[:length].T
        # coverage: the share of the turn's core frames inside the clip's window
        offsets = np.arange(length)
        inside = np.concatenate(([0], np.cumsum(core)))
        ends = np.minimum(offsets[None, :] + spans[:, None], core.size)
        starts = np.minimum(offsets, core.size)[None, :]
        coverage = (inside[ends] - inside[starts]) / max(1, int(core.sum()))
        # offsets 0 .. length - span keep the whole clip inside the (padded) turn
        valid = offsets[None, :] <= (length - spans)[:, None]
        scores = np.where(valid, similarity * np.sqrt(coverage), -np.inf).max(axis=1)
        index = int(np.argmax(scores))
        return index, float(scores[index])


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
        self._bank = _Bank()
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
        self._blocks.clear()
        self._n = 0
        return out[-self._cap :]
