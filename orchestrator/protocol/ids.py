"""Identifier generation in the style of the Realtime service (``item_`` + 21 base62)."""

from __future__ import annotations

import os

__all__ = ["new_id"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_LEN = 21


def new_id(prefix: str) -> str:
    """Return ``prefix`` followed by 21 random base62 characters.

    Typical prefixes: ``"event_"``, ``"item_"``, ``"resp_"``, ``"sess_"``, ``"call_"``,
    ``"conv_"``. The randomness comes from ``os.urandom``; ids are unique in practice,
    not secret. (Rejection sampling keeps the distribution uniform.)
    """
    out: list[str] = []
    while len(out) < _ID_LEN:
        for b in os.urandom(_ID_LEN * 2):
            if b < 248:  # 248 = 4 * 62: uniform over the alphabet
                out.append(_BASE62[b % 62])
                if len(out) == _ID_LEN:
                    break
    return prefix + "".join(out)
