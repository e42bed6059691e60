"""Token prices as data: the built-in table (``prices.toml`` beside this module) and
``--prices FILE`` overrides.

A :class:`PriceTable` maps model names to :class:`ModelPrice` (USD per 1M tokens of
text in / cached / out and audio in / cached / out) and names the models it knows but
cannot price (``unpriced``, with the reason). A model name matches its entry exactly or
as a dated snapshot of it (``gpt-realtime-2025-08-28`` -> ``gpt-realtime``); every other
model gets no price, and :meth:`PriceTable.missing_reason` says why, so the summary's
``cost.usd`` is ``null`` with a note instead of a guess.

File layout (TOML, or JSON with the same structure)::

    [models."my-model"]
    text_in = 4.0        # and text_cached, text_out, audio_in, audio_cached, audio_out
    source = "..."       # optional
    [models."other-model"]
    unpriced = "why"     # known, no price

:func:`load_prices` reads such a file; :meth:`PriceTable.merged` lays one table over
another (a model named in the override replaces the base's entry).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "BUILTIN_PRICES_FILE",
    "ModelPrice",
    "PriceFileError",
    "PriceTable",
    "builtin_prices",
    "load_prices",
]

#: the built-in price table
BUILTIN_PRICES_FILE = Path(__file__).with_name("prices.toml")

_RATES = ("text_in", "text_cached", "text_out", "audio_in", "audio_cached", "audio_out")
_SNAPSHOT = re.compile(r"^(?P<base>.+?)(?:-\d{4}-\d{2}-\d{2})?$")


@attrs.frozen(kw_only=True)
class ModelPrice:
    """USD per 1M tokens."""

    text_in: float
    text_cached: float
    text_out: float
    audio_in: float
    audio_cached: float
    audio_out: float


class PriceFileError(ValueError):
    """A price file could not be read or has a bad entry; the message names the file
    and the entry."""


@attrs.frozen(kw_only=True)
class PriceTable:
    """Prices by model name, the models known to have no price, and where they came from."""

    prices: Mapping[str, ModelPrice] = attrs.field(factory=dict)
    #: known model -> why it has no price
    unpriced: Mapping[str, str] = attrs.field(factory=dict)
    #: the file(s) the table was read from, for the summary
    source: str = "given"

    def _entry(self, model: str) -> str | None:
        """The table's name for ``model`` (itself, or the base of a dated snapshot)."""
        if model in self.prices or model in self.unpriced:
            return model
        m = _SNAPSHOT.match(model)
        if m and (m["base"] in self.prices or m["base"] in self.unpriced):
            return m["base"]
        return None

    def price_for(self, model: str | None) -> ModelPrice | None:
        """The price of ``model`` (exact name or name + ``-YYYY-MM-DD``), else ``None``."""
        if not model:
            return None
        name = self._entry(model)
        return None if name is None else self.prices.get(name)

    def missing_reason(self, model: str | None) -> str:
        """Why ``model`` has no price (for the summary's cost note)."""
        if not model:
            return "no model known for this run; cost not estimated"
        name = self._entry(model)
        if name is not None and name in self.unpriced:
            return (
                f"no price for model {model!r}: {self.unpriced[name]}; cost not estimated "
                "(give one with --prices FILE)"
            )
        return (
            f"no price for model {model!r} (unknown to the price table); cost not estimated "
            "(give one with --prices FILE)"
        )

    def merged(self, override: PriceTable) -> PriceTable:
        """This table with ``override``'s entries laid over it (an override's model
        replaces this table's entry, priced or not)."""
        prices = {k: v for k, v in self.prices.items() if k not in override.unpriced}
        prices.update(override.prices)
        unpriced = {k: v for k, v in self.unpriced.items() if k not in override.prices}
        unpriced.update(override.unpriced)
        return PriceTable(
            prices=prices, unpriced=unpriced, source=f"{self.source} + {override.source}"
        )


def _entry(path: str, name: object, raw: object) -> ModelPrice | str:
    where = f"{path}: models.{name}"
    if not isinstance(name, str) or not name:
        raise PriceFileError(f"{path}: model names must be non-empty strings, got {name!r}")
    if not isinstance(raw, dict):
        raise PriceFileError(f"{where}: expected a table of rates, got {type(raw).__name__}")
    if "unpriced" in raw:
        reason = raw["unpriced"]
        extra = set(raw) - {"unpriced", "source"}
        if not isinstance(reason, str) or extra:
            raise PriceFileError(
                f"{where}: 'unpriced' takes a reason string and no rates"
                + (f" (got {', '.join(sorted(extra))})" if extra else "")
            )
        return reason
    unknown = set(raw) - set(_RATES) - {"source"}
    if unknown:
        raise PriceFileError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(_RATES)}"
        )
    missing = [r for r in _RATES if r not in raw]
    if missing:
        raise PriceFileError(f"{where}: missing rate(s) {', '.join(missing)} (USD per 1M tokens)")
    rates: dict[str, float] = {}
    for r in _RATES:
        v = raw[r]
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
            raise PriceFileError(f"{where}.{r}: expected a number >= 0, got {v!r}")
        rates[r] = float(v)
    return ModelPrice(**rates)


def load_prices(path: str | os.PathLike[str]) -> PriceTable:
    """Read a price file (TOML; JSON when its name ends in ``.json``).

    Raises :class:`PriceFileError` (a ``ValueError``) naming the file and what is wrong:
    unreadable, not TOML/JSON, no ``models`` table, or a bad entry.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PriceFileError(f"{p}: cannot read the price file: {exc.strerror or exc}") from None
    try:
        doc: Any = json.loads(data) if p.suffix == ".json" else tomllib.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if p.suffix == ".json" else "TOML"
        raise PriceFileError(f"{p}: not valid {kind}: {exc}") from None
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, dict):
        raise PriceFileError(f'{p}: expected a "models" table of model name -> rates')
    prices: dict[str, ModelPrice] = {}
    unpriced: dict[str, str] = {}
    for name, raw in models.items():
        entry = _entry(str(p), name, raw)
        if isinstance(entry, str):
            unpriced[name] = entry
        else:
            prices[name] = entry
    return PriceTable(prices=prices, unpriced=unpriced, source=str(p))


@functools.cache
def builtin_prices() -> PriceTable:
    """The built-in table (:data:`BUILTIN_PRICES_FILE`), read once; source ``built-in``."""
    return attrs.evolve(load_prices(BUILTIN_PRICES_FILE), source="built-in")
