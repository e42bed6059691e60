"""The two wire dialects of the Realtime protocol."""

from __future__ import annotations

import enum


class Dialect(enum.Enum):
    """Which shape of the protocol a connection speaks.

    ``GA`` is the generally available protocol (``gpt-realtime*``, nested ``audio``
    session config, ``response.output_audio.*`` names). ``BETA`` is the preview
    protocol selected by the ``OpenAI-Beta: realtime=v1`` header (flat session config,
    ``response.audio.*`` names). The internal event model is GA-shaped; the codec
    translates at the edge.
    """

    GA = "ga"
    BETA = "beta"
