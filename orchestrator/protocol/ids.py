"""Identifier generation in the style of the Realtime service (``item_`` + 21 base62)."""

from __future__ import annotations

import os

__all__ = ["new_id"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_LEN = 21
#: ``bytes.translate`` table: byte ``b`` < 248 -> ``_BASE62[b % 62]`` (248..255 are deleted)
_TABLE = bytes(ord(_BASE62[b % 62]) for b in range(248)) + bytes(8)
_REJECT = bytes(range(248, 256))


def new_id(prefix: str) -> str:
    """Return ``prefix`` followed by 21 random base62 characters.

    Typical prefixes: ``"event_"``, ``"item_"``, ``"resp_"``, ``"sess_"``, ``"call_"``,
    ``"conv_"``. The randomness comes from ``os.urandom``; ids are unique in practice,
    not secret. (Rejection sampling keeps the distribution uniform.)
    """
    # 248 = 4 * 62: bytes >= 248 are rejected so the rest map uniformly onto the alphabet;
    # translate() does the filtering and mapping in C (every server event gets an id)
    chars = os.urandom(_ID_LEN * 2).translate(_TABLE, _REJECT)
    while len(chars) < _ID_LEN:
        chars += os.urandom(_ID_LEN).translate(_TABLE, _REJECT)
    return prefix + chars[:_ID_LEN].decode("ascii")
