"""A cheap energy voice-activity detector with OpenAI server-VAD event semantics.

Algorithm. Audio is cut into 10 ms analysis windows on a fixed grid of the audio clock
(window ``k`` covers samples ``[k*W, (k+1)*W)``, ``W = rate // 100``); samples of an
incomplete window wait in a small buffer for the next :meth:`EnergyVad.feed`. A window
is *speech* when its energy (sum of squares, computed exactly in int64) is at least the
threshold energy. Speech starts when ``min_speech_ms`` of consecutive speech windows
have been seen; it stops once ``silence_duration_ms`` of audio has passed since the end
of the last speech window.

Events (all times are on the appended-audio clock, in integer ms of audio fed so far,
never wall-clock; see PROTOCOL_NOTES §3):

- ``speech_started``: ``audio_ms`` = start of the first speech window of the onset minus
  ``prefix_padding_ms``, clamped at 0 (and at the last :meth:`EnergyVad.reset` point /
  previous ``speech_stopped``, i.e. the start of the current input buffer). Emitted by
  the ``feed`` that completes the ``min_speech_ms`` confirmation.
- ``speech_stopped``: ``audio_ms`` = end of the last speech window plus
  ``silence_duration_ms``. Emitted by the ``feed`` whose audio reaches that point.

Because decisions depend only on the window grid and exact integer energies, the
concatenated event list is identical however the audio is chunked.

Threshold mapping: ``threshold`` in [0, 1] maps linearly in dB to a window RMS level of
``-90 * (1 - threshold)`` dBFS: 0.5 -> -45 dBFS, 0.8 -> -18 dBFS, 0.2 -> -72 dBFS.
``speech_like(dbfs=-20)`` is speech at 0.5; digital silence and -60 dBFS noise are not.

Cost: one reshape + int64 sum of squares per feed and a Python step per 10 ms window
only around speech transitions (whole runs of silence or of speech are skipped in bulk).
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import numpy as np

from .meter import dbfs_to_rms
from .pcm import SAMPLE_RATE, _check_rate, as_pcm16

__all__ = ["EnergyVad", "VadEvent", "threshold_to_dbfs"]

WINDOW_MS = 10


@attrs.frozen
class VadEvent:
    """A VAD decision on the appended-audio clock (``audio_ms`` = ms of audio since start)."""

    kind: Literal["speech_started", "speech_stopped"]
    audio_ms: int


def threshold_to_dbfs(threshold: float) -> float:
    """The window RMS level (dBFS) that ``threshold`` in [0, 1] stands for."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return -90.0 * (1.0 - threshold)


class EnergyVad:
    """Streaming energy VAD; feed it PCM16 as it is appended, collect :class:`VadEvent` s.

    ``threshold`` (0..1, see module docstring for the dB mapping), ``prefix_padding_ms``
    and ``silence_duration_ms`` follow the Realtime ``turn_detection`` fields of the same
    names; ``min_speech_ms`` is how much consecutive speech confirms an onset.
    Not thread-safe; one instance per audio stream.
    """

    # set by :meth:`reconfigure` (validated there, by name)
    prefix_padding_ms: int
    silence_duration_ms: int
    min_speech_ms: int

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 200,
        rate: int = SAMPLE_RATE,
        *,
        min_speech_ms: int = 30,
    ) -> None:
        self.rate = _check_rate(rate)
        self._win = self.rate // (1000 // WINDOW_MS)
        if self._win < 1:
            raise ValueError(f"rate {rate} is too low for {WINDOW_MS} ms analysis windows")
        self._pending = np.zeros(0, np.int16)
        self._windows_done = 0  # analysis windows processed so far
        self._floor_sample = 0  # start of the current input buffer (clamp for prefix padding)
        self._in_speech = False
        self._run = 0  # consecutive speech windows while not in speech
        self._last_speech_end = 0  # sample index just after the last speech window
        self.reconfigure(
            threshold=threshold,
            prefix_padding_ms=prefix_padding_ms,
            silence_duration_ms=silence_duration_ms,
            min_speech_ms=min_speech_ms,
        )

    def reconfigure(
        self,
        *,
        threshold: float | None = None,
        prefix_padding_ms: int | None = None,
        silence_duration_ms: int | None = None,
        min_speech_ms: int | None = None,
    ) -> None:
        """Change parameters mid-stream (e.g. on ``session.update``); clock and state are kept."""
        if threshold is not None:
            level = dbfs_to_rms(threshold_to_dbfs(threshold))
            # energy of a window whose RMS equals the threshold level
            self._thr_energy = math.ceil(level * level * self._win)
            self.threshold = float(threshold)
        for name, value in (
            ("prefix_padding_ms", prefix_padding_ms),
            ("silence_duration_ms", silence_duration_ms),
            ("min_speech_ms", min_speech_ms),
        ):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
                setattr(self, name, value)
        self._prefix_samples = self._ms_to_samples(self.prefix_padding_ms)
        self._silence_samples = self._ms_to_samples(self.silence_duration_ms)
        self._min_windows = max(1, -(-self.min_speech_ms // WINDOW_MS))

    def _ms_to_samples(self, ms: int) -> int:
        return -(-ms * self.rate // 1000)

    def _to_ms(self, sample: int) -> int:
        return sample * 1000 // self.rate

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio fed so far (the appended-audio clock)."""
        return self._to_ms(self._windows_done * self._win + self._pending.size)

    @property
    def in_speech(self) -> bool:
        """Whether a ``speech_started`` has been emitted without its ``speech_stopped``."""
        return self._in_speech

    def reset(self) -> None:
        """Forget any speech in progress without emitting events; the audio clock continues.

        Call when the input buffer is cleared or committed by the client: the next
        ``speech_started`` will not be padded back before this point.
        """
        self._in_speech = False
        self._run = 0
        self._floor_sample = self._windows_done * self._win + self._pending.size

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Append PCM16 mono samples; return the events decided by the audio fed so far."""
        x = as_pcm16(samples)
        if self._pending.size:
            x = np.concatenate((self._pending, x))
        n_win = x.size // self._win
        cut = n_win * self._win
        self._pending = x[cut:].copy()
        if n_win == 0:
            return []
        w = x[:cut].astype(np.int64).reshape(n_win, self._win)
        energy = np.einsum("ij,ij->i", w, w)
        speech = energy >= self._thr_energy
        first = self._windows_done
        self._windows_done += n_win
        return self._decide(speech, first)

    def _decide(self, speech: np.ndarray, first: int) -> list[VadEvent]:
        events: list[VadEvent] = []
        win = self._win
        n = speech.size
        i = 0
        while i < n:
            if self._in_speech:
                # skip ahead to the next non-speech window
                rest = speech[i:]
                if rest.all():
                    self._last_speech_end = (first + n) * win
                    break
                j = i + int(np.argmin(rest))
                if j > i:
                    self._last_speech_end = (first + j) * win
                # window j is silence: stop when enough silence has passed, or speech resumes
                stop_at = self._last_speech_end + self._silence_samples
                # first window index whose end reaches stop_at
                k_stop = max(-(-stop_at // win) - 1 - first, j)
                nxt = speech[j + 1 : min(k_stop, n - 1) + 1]
                resume = j + 1 + int(np.argmax(nxt)) if nxt.any() else None
                if resume is not None and resume <= k_stop:
                    i = resume
                    continue
                if k_stop < n:
                    self._in_speech = False
                    self._floor_sample = stop_at
                    self._run = 0
                    events.append(VadEvent("speech_stopped", self._to_ms(stop_at)))
                    i = k_stop + 1
                    continue
                break
            # not in speech: look for min_windows consecutive speech windows
            rest = speech[i:]
            if self._run == 0:
                if not rest.any():
                    break
                i += int(np.argmax(rest))
            if speech[i]:
                self._run += 1
                if self._run >= self._min_windows:
                    onset = (first + i + 1 - self._run) * win
                    start = max(onset - self._prefix_samples, self._floor_sample, 0)
                    self._in_speech = True
                    self._run = 0
                    self._last_speech_end = (first + i + 1) * win
                    events.append(VadEvent("speech_started", self._to_ms(start)))
            else:
                self._run = 0
            i += 1
        return events
