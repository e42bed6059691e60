"""Fingerprints of speech and their matching, for :mod:`.hearing`.

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
:data:`.hearing.MATCH_THRESHOLD`. The correlation over all offsets runs as FFTs for all
candidates at once (their transforms cached per FFT size): one turn FFT, one batched
product and one inverse FFT per candidate.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from orchestrator.audio.voices.layout import ClipInfo

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
#: Padding kept around a turn's speech when it is trimmed (see :func:`turn_features`).
TRIM_MARGIN_S = 0.3


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


def _fft_size(frames: int) -> int:
    """The FFT size for a (padded) turn of ``frames`` frames: a power of two."""
    return 1 << (frames - 1).bit_length()


@attrs.define(eq=False)
class ClipBank:
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
