"""Small shared pieces of the event model: the explicit-null sentinel and type aliases."""

from __future__ import annotations

import enum
from typing import Literal, TypeAlias

__all__ = ["MAX_ARRAY_LENGTH", "NULL", "MaxTokens", "Null", "b64_repr"]


class Null(enum.Enum):
    """Explicit JSON ``null`` for a field where null means something.

    The codec omits fields that are ``None`` (unset), so a partial ``session.update``
    only changes what it names. Where the protocol gives ``null`` a meaning — e.g.
    ``turn_detection: null`` turns server VAD off, ``transcription: null`` turns input
    transcription off — set the field to :data:`NULL` and it is encoded as ``null``.
    Decoding never produces ``NULL``: a ``null`` from the wire decodes to ``None``.
    """

    NULL = "null"

    def __repr__(self) -> str:
        return "NULL"


NULL = Null.NULL

#: The longest JSON array the codec decodes into a list field. No Realtime event comes
#: near it (output items, content parts, tools, rate limits: tens; transcription
#: ``logprobs``: one per token of a user turn); a longer array is rejected at once, before
#: any element is looked at, so a junk frame costs microseconds, not seconds.
MAX_ARRAY_LENGTH = 10_000

MaxTokens: TypeAlias = int | Literal["inf"]
"""``max_output_tokens``: an integer or the string ``"inf"``."""


def b64_repr(value: str | None) -> str:
    """``repr`` for base64 audio fields: the size, not kilobytes of text."""
    return "None" if value is None else f"<{len(value)} base64 chars>"
