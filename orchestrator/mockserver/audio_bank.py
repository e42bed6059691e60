"""The shared bank of synthetic answer audio: precomputed base64 chunks per output
format, the chunks an answer may start with, and encoded digital silence.

Built once per format at first use (seeded) and read by every response of the server;
no I/O and no clock.
"""

from __future__ import annotations

import base64

import attrs
import numpy as np

from orchestrator.audio import (
    alaw_decode,
    alaw_encode,
    pcm16_to_b64,
    rms_dbfs,
    samples_for_ms,
    speech_like,
    ulaw_decode,
    ulaw_encode,
)
from orchestrator.audio.meter import dbfs_to_rms

from .defaults import codec_rate

#: A bank chunk may open an answer when its first :data:`ONSET_PROBE_MS` are at least
#: :data:`ONSET_DBFS` (RMS) and its very first sample at least :data:`ONSET_SAMPLE_DBFS`
#: (as the client decodes it): the answer is audible from its first sample (after any
#: leading silence), so a client's first-audible-sample time is exact.
ONSET_PROBE_MS = 5
ONSET_DBFS = -30.0
ONSET_SAMPLE_DBFS = -40.0


@attrs.define(eq=False)
class AudioBank:
    """Precomputed base64 chunks of synthetic speech per output format (shared, read-only).

    One utterance of ``bank_ms`` is synthesized per format at first use (seeded), cut into
    ``chunk_ms`` chunks and base64-encoded once; responses cycle through the chunks,
    starting at one of the :meth:`onsets`. Digital silence (leading silence of answers)
    is encoded once per format and length.
    """

    seed: int
    chunk_ms: int
    bank_ms: int = 6000
    _chunks: dict[str, list[str]] = attrs.field(factory=dict)
    _onsets: dict[str, list[int]] = attrs.field(factory=dict)
    _silence: dict[tuple[str, int], str] = attrs.field(factory=dict)

    def chunks(self, codec: str) -> list[str]:
        """The chunk list for ``codec`` (``pcm16``, ``g711_ulaw`` or ``g711_alaw``)."""
        cached = self._chunks.get(codec)
        if cached is None:
            cached = self._chunks[codec] = self._build(codec)
        return cached

    def onsets(self, codec: str) -> list[int]:
        """Indices of the chunks an answer may start with: loud from their first sample
        region (see :data:`ONSET_DBFS`), never a pause or a syllable's fade-in."""
        self.chunks(codec)
        return self._onsets[codec]

    def silence(self, codec: str, ms: int) -> list[tuple[str, int]]:
        """``ms`` of digital silence as (payload, ms) chunks of at most ``chunk_ms``."""
        out: list[tuple[str, int]] = []
        while ms > 0:
            part = min(ms, self.chunk_ms)
            payload = self._silence.get((codec, part))
            if payload is None:
                payload = self._silence[(codec, part)] = _encode(
                    codec, np.zeros(samples_for_ms(part, codec_rate(codec)), np.int16)
                )
            out.append((payload, part))
            ms -= part
        return out

    def _build(self, codec: str) -> list[str]:
        rate = codec_rate(codec)
        samples = speech_like(self.bank_ms, seed=self.seed, rate=rate)
        per = samples_for_ms(self.chunk_ms, rate)
        probe = samples_for_ms(ONSET_PROBE_MS, rate)
        n = max(1, samples.size // per)
        chunks = [samples[i * per : (i + 1) * per] for i in range(n)]
        heard = samples  # the onsets are judged as the client will decode them
        if codec in _G711:
            encode, decode = _G711[codec]
            heard = decode(encode(samples))
        first_sample = dbfs_to_rms(ONSET_SAMPLE_DBFS)
        self._onsets[codec] = [
            i
            for i in range(n)
            if rms_dbfs(heard[i * per : i * per + probe]) >= ONSET_DBFS
            and abs(int(heard[i * per])) >= first_sample
        ] or [0]
        return [_encode(codec, chunk) for chunk in chunks]


#: codec -> (encode, decode) of the G.711 output formats
_G711 = {"g711_ulaw": (ulaw_encode, ulaw_decode), "g711_alaw": (alaw_encode, alaw_decode)}


def _encode(codec: str, samples: np.ndarray) -> str:
    """Base64 payload of int16 ``samples`` in ``codec``."""
    if codec == "pcm16":
        return pcm16_to_b64(samples)
    return base64.b64encode(_G711[codec][0](samples).tobytes()).decode("ascii")
