"""Secrets that never print: the :class:`Secret` wrapper, :func:`redact`, and a log filter.

An API key is carried as a :class:`Secret` from the moment it enters the library
(argument or environment) until the one place that needs the raw value, the handshake
header (:meth:`Secret.reveal`). ``str``/``repr``/f-strings show ``'***'``.

Servers sometimes echo a key back (in a close reason or a rejection body), so every text
that came from the peer passes through :func:`redact` before it lands in an exception.
Third-party debug logging (trio-websocket logs close reasons at DEBUG) is covered by
:class:`RedactingFilter`, installed on the ``trio-websocket`` logger and on ours, which
scrubs the keys of all connections currently open (:func:`registered`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import attrs

MASK: Final = "***"


@attrs.frozen(repr=False)
class Secret:
    """A string that is hidden in ``str()``, ``repr()`` and formatting.

    Equality compares the hidden values (so two Targets built from the same key are
    equal), but nothing except :meth:`reveal` returns the value.
    """

    _value: str = attrs.field(validator=attrs.validators.instance_of(str))

    def reveal(self) -> str:
        """Return the raw value. Only the handshake header builder should call this."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)


def _raw(secret: Secret | str | None) -> str | None:
    if secret is None:
        return None
    raw = secret.reveal() if isinstance(secret, Secret) else secret
    return raw or None


def redact(text: str, *secrets: Secret | str | None) -> str:
    """Return ``text`` with every occurrence of each secret replaced by ``'***'``.

    Empty or ``None`` secrets are ignored. Longer secrets are replaced first so a key
    that contains another key is fully masked.
    """
    raws = sorted({r for s in secrets if (r := _raw(s)) is not None}, key=len, reverse=True)
    for raw in raws:
        if raw in text:
            text = text.replace(raw, MASK)
    return text


# Keys of connections that are open right now, with a use count (several sessions may
# share one key). Guarded by a lock because logging may happen from worker threads.
_active: Counter[str] = Counter()
_active_lock = threading.Lock()


@contextmanager
def registered(secret: Secret | None) -> Iterator[None]:
    """Register ``secret`` with :class:`RedactingFilter` for the duration of the block."""
    raw = _raw(secret)
    if raw is None:
        yield
        return
    with _active_lock:
        _active[raw] += 1
    try:
        yield
    finally:
        with _active_lock:
            _active[raw] -= 1
            if _active[raw] <= 0:
                del _active[raw]


def active_secrets() -> tuple[str, ...]:
    """The raw values currently registered (for the log filter; never log this)."""
    with _active_lock:
        return tuple(_active)


class RedactingFilter(logging.Filter):
    """Scrub registered secrets from a record's message before any handler sees it.

    Filters run only for records that passed the level check, so this costs nothing
    when DEBUG logging is off.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = active_secrets()
        if not secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, *secrets)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned_text = redact(text, *secrets)
            if cleaned_text != text:
                record.exc_text = cleaned_text
                record.exc_info = None
        return True


_FILTER: Final = RedactingFilter()


def install_log_filter(*logger_names: str) -> None:
    """Install the shared :class:`RedactingFilter` on the named loggers (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
