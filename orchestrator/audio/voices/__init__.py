"""Caller voices: text-to-speech engines, the on-disk clip cache and per-session variation.

``layout`` is the on-disk contract shared with the embedded server's hearing.
"""

from .layout import CACHE_ENV, ClipInfo, clip_key, default_cache_dir, scan

__all__ = ["CACHE_ENV", "ClipInfo", "clip_key", "default_cache_dir", "scan"]
