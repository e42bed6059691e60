"""Audio layer: numpy PCM helpers for the Realtime protocol (no I/O other than WAV files).

Public names (all importable from ``orchestrator.audio``):

- PCM16 framing / wire encoding (``pcm``): ``SAMPLE_RATE``, ``pcm16_to_b64``,
  ``b64_to_pcm16``, ``frames``, ``samples_for_ms``, ``ms_for_samples``, ``as_pcm16``,
  ``float_to_pcm16``
- Resampling (``resample``): ``resample``, ``Resampler``
- G.711 (``g711``): ``ulaw_encode``, ``ulaw_decode``, ``alaw_encode``, ``alaw_decode``
- WAV files (``wav``): ``read_wav``, ``write_wav``, ``AudioFileError``
- Synthetic sources (``synth``): ``silence``, ``tone``, ``white_noise``, ``speech_like``
- Metering (``meter``): ``rms``, ``rms_dbfs``, ``peak_dbfs``
- Voice activity (``vad``): ``EnergyVad``, ``VadEvent``, ``threshold_to_dbfs``
"""

from .g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .meter import peak_dbfs, rms, rms_dbfs
from .pcm import (
    SAMPLE_RATE,
    as_pcm16,
    b64_to_pcm16,
    float_to_pcm16,
    frames,
    ms_for_samples,
    pcm16_to_b64,
    samples_for_ms,
)
from .resample import Resampler, resample
from .synth import silence, speech_like, tone, white_noise
from .vad import EnergyVad, VadEvent, threshold_to_dbfs
from .wav import AudioFileError, read_wav, write_wav

__all__ = [
    "SAMPLE_RATE",
    "AudioFileError",
    "EnergyVad",
    "Resampler",
    "VadEvent",
    "alaw_decode",
    "alaw_encode",
    "as_pcm16",
    "b64_to_pcm16",
    "float_to_pcm16",
    "frames",
    "ms_for_samples",
    "pcm16_to_b64",
    "peak_dbfs",
    "read_wav",
    "resample",
    "rms",
    "rms_dbfs",
    "samples_for_ms",
    "silence",
    "speech_like",
    "threshold_to_dbfs",
    "tone",
    "ulaw_decode",
    "ulaw_encode",
    "white_noise",
    "write_wav",
]
