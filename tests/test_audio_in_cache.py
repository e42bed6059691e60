"""The shared base64 frame cache of the audio-in task (``shared_b64_frames``)."""

from __future__ import annotations

import numpy as np

from orchestrator.audio import pcm16_to_b64
from orchestrator.session.audio_in import shared_b64_frames
from orchestrator.session.sources import AudioSource


def _per_frame(samples: np.ndarray, chunk: int, pad_last: bool) -> list[str]:
    out = []
    for pos in range(0, len(samples), chunk):
        frame = samples[pos : pos + chunk]
        if len(frame) < chunk and pad_last:
            frame = np.concatenate([frame, np.zeros(chunk - len(frame), np.int16)])
        out.append(pcm16_to_b64(frame))
    return out


def _read_only_source(ms: float) -> AudioSource:
    source = AudioSource.synthetic(ms, lead_ms=20, tail_ms=30, seed=3)
    source.samples.flags.writeable = False
    return source


def test_frames_equal_per_frame_encoding_and_are_computed_once() -> None:
    source = _read_only_source(250)  # 300 ms = 7200 samples: 4.5 frames of 1600
    for pad_last in (True, False):
        frames = shared_b64_frames(source, 1600, pad_last)
        assert frames is not None
        assert list(frames) == _per_frame(source.samples, 1600, pad_last)
        assert shared_b64_frames(source, 1600, pad_last) is frames
    padded = shared_b64_frames(source, 1600, True)
    unpadded = shared_b64_frames(source, 1600, False)
    assert padded is not None and unpadded is not None
    assert len(padded[-1]) > len(unpadded[-1])  # the padded last frame is a full frame


def test_writable_audio_is_not_cached() -> None:
    source = AudioSource.synthetic(100)
    assert source.samples.flags.writeable
    assert shared_b64_frames(source, 2400, True) is None
    # a read-only view of writable memory could still change under the cache
    base = np.zeros(4800, np.int16)
    view = base[:]
    view.flags.writeable = False
    assert shared_b64_frames(AudioSource(view), 2400, True) is None


def test_sources_that_cannot_be_weakly_referenced_are_not_cached() -> None:
    class Plain:
        __slots__ = ("samples",)

        def __init__(self, samples: np.ndarray) -> None:
            self.samples = samples

    samples = np.zeros(4800, np.int16)
    samples.flags.writeable = False
    assert shared_b64_frames(Plain(samples), 2400, True) is None
