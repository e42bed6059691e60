"""Several scenarios in one run: ``orchestrator run A.toml B.toml:3 ...`` (pure parts).

* :func:`parse_mix_arg` reads ``FILE`` or ``FILE:WEIGHT`` (a positive integer; default 1).
* :func:`weighted_order` is the order in which sessions play the scenarios: smooth
  weighted round-robin (nginx's upstream algorithm). Over every cycle of ``sum(weights)``
  sessions each scenario plays exactly its weight, spread out rather than in blocks
  (weights 3 and 1: ``A A B A`` then again), so a run cut short by ``--duration`` or a
  drain still saw the mix. The cycle is rotated by the seed, so two seeds interleave
  differently, and the same seed always gives the same order.
* :class:`ScenarioMix` is the conversation of such a run: session ``i`` gets the session
  config, tools and label (the scenario's ``name``: every record of the session names its
  scenario) of scenario ``order[i % cycle]``, and the mix's driver plays the scenario its
  session's label names. Two different files with the same ``name`` are refused (their
  records could not be told apart); the same file given twice adds up its weights.
* :func:`merged_server_hints` joins every scenario's ``[server]`` hints for the embedded
  server: tool rules are concatenated in scenario order (first match wins, as within one
  file); spoken transcripts are concatenated without repeats (they are the server's
  fallback transcripts, a list of lines, not a per-scenario setting); greetings must agree:
  two different greetings are refused (the embedded server has one greeting for all
  sessions), one greeting (or the same one in several files) applies to every session.

Every problem is a :class:`MixError` naming the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from orchestrator.mockserver import ConfigError, ToolRule
from orchestrator.scenario import ScenarioDriver

if TYPE_CHECKING:
    from orchestrator.session import Session

__all__ = [
    "MixEntry",
    "MixError",
    "ScenarioMix",
    "merged_server_hints",
    "mix_of",
    "parse_mix_arg",
    "tool_rules_of",
    "weighted_order",
]


class MixError(ValueError):
    """A bad ``FILE:WEIGHT`` argument or scenarios that cannot share one embedded server."""


@attrs.frozen
class MixEntry:
    """One scenario of a mix: its file and integer weight (>= 1)."""

    path: str
    weight: int = 1


def parse_mix_arg(text: str) -> MixEntry:
    """``FILE`` or ``FILE:WEIGHT``; a colon whose tail is not all digits is part of the
    path, unless what comes before it is a scenario file (``.toml`` or ``.json``) and the
    whole is not a file. Raises :class:`MixError` for a weight below 1 or not a whole
    number, or an empty path."""
    path, colon, tail = text.rpartition(":")
    numeric = tail.strip().lstrip("+-").isdigit()
    if (
        colon
        and not numeric
        and Path(path).suffix.lower() in (".toml", ".json")
        and not Path(text).exists()
    ):
        raise MixError(f"{text}: the weight must be a whole number >= 1, got {tail!r}")
    if colon and numeric:
        weight = int(tail)
        if not path:
            raise MixError(f"{text}: no scenario file before ':{tail}'")
        if weight < 1:
            raise MixError(f"{text}: the weight must be a whole number >= 1, got {weight}")
        return MixEntry(path, weight)
    if not text:
        raise MixError("an empty scenario argument")
    return MixEntry(text, 1)


def weighted_order(weights: Sequence[int], seed: int = 0) -> list[int]:
    """One cycle of smooth weighted round-robin over ``weights`` (indices into it), of
    length ``sum(weights)``, rotated by ``seed``: session ``i`` plays
    ``order[i % len(order)]``. Each index appears exactly its weight times per cycle.
    Deterministic; ``weights`` must be positive."""
    if not weights or any(w < 1 for w in weights):
        raise ValueError(f"weights must be positive integers, got {list(weights)}")
    total = sum(weights)
    current = [0] * len(weights)
    order: list[int] = []
    for _ in range(total):
        for k, w in enumerate(weights):
            current[k] += w
        best = max(range(len(weights)), key=lambda k: (current[k], -k))
        current[best] -= total
        order.append(best)
    shift = seed % total
    return order[shift:] + order[:shift]


def tool_rules_of(origin: str, hints: dict[str, Any]) -> tuple[ToolRule, ...]:
    """The embedded server's tool rules of one scenario's ``server_hints()``; a bad rule is
    a :class:`MixError` naming ``origin`` and ``server.tool_rules``."""
    try:
        return tuple(ToolRule(pattern=p, tool=t, arguments=a) for p, t, a in hints["tool_rules"])
    except ConfigError as exc:
        raise MixError(f"scenario {origin}: server.tool_rules: {exc}") from None


def merged_server_hints(
    hints: Sequence[tuple[str, dict[str, Any]]],
) -> tuple[tuple[ToolRule, ...], tuple[str, ...], str | None]:
    """``(tool_rules, spoken_transcripts, greeting)`` for one embedded server from the
    ``(origin, server_hints())`` of each scenario (see the module docstring for how they
    merge). Raises :class:`MixError` for a bad tool rule or greetings that differ."""
    rules: list[ToolRule] = []
    transcripts: list[str] = []
    for origin, h in hints:
        rules.extend(tool_rules_of(origin, h))
        transcripts.extend(t for t in h["spoken_transcripts"] if t not in transcripts)
    greetings = {origin: h["greeting"] for origin, h in hints}
    greeting = next(iter(greetings.values()), None)
    if len(set(greetings.values())) > 1:
        (a, ga), (b, gb) = next(
            ((x, gx), (y, gy))
            for x, gx in greetings.items()
            for y, gy in greetings.items()
            if gx != gy
        )
        if ga is not None and gb is not None:
            what = f"two different greetings ({ga!r}, {gb!r})"
        else:
            greeter, silent = (a, b) if ga is not None else (b, a)
            what = f"a greeting ({greeter}) and none ({silent}: it would hear one anyway)"
        raise MixError(
            f"scenarios {a} and {b} ask the embedded server for {what}; it greets every "
            "session of a run alike: run them separately, or give them the same [server] "
            "greeting"
        )
    return tuple(rules), tuple(transcripts), greeting


@attrs.define(eq=False)
class ScenarioMix:
    """Several scenarios played across the sessions of one run, by weight (see the module
    docstring). Behaves as one conversation for ``run``: ``name``, ``speaks``,
    :meth:`prepare`, and it is the driver (dispatching on the session's label)."""

    drivers: tuple[ScenarioDriver, ...]
    weights: tuple[int, ...]
    seed: int = 0
    order: list[int] = attrs.field(init=False)
    _by_name: dict[str, ScenarioDriver] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if len(self.drivers) != len(self.weights):
            raise ValueError("one weight per scenario")
        self.order = weighted_order(self.weights, self.seed)
        self._by_name = {}
        files: dict[str, str] = {}
        for d in self.drivers:
            other = files.get(d.name)
            if other is not None and other != d.scenario.origin:
                raise MixError(
                    f"scenarios {other} and {d.scenario.origin} are both named {d.name!r}: "
                    "give them different names so that their results can be told apart"
                )
            files[d.name] = d.scenario.origin
            self._by_name[d.name] = d

    @property
    def name(self) -> str:
        """The names of the scenarios and their weights, ``a:3+b:1``."""
        return "+".join(f"{d.name}:{w}" for d, w in zip(self.drivers, self.weights, strict=True))

    @property
    def speaks(self) -> bool:
        """Whether any scenario's callers say synthesized lines."""
        return any(d.speaks for d in self.drivers)

    def index_for(self, session: int) -> int:
        """Which scenario (index into :attr:`drivers`) session ``session`` plays."""
        return self.order[session % len(self.order)]

    def prepare(self) -> None:
        """Prepare every scenario (see :meth:`ScenarioDriver.prepare`); the first one that
        fails raises its ``ScenarioError``."""
        for d in self.drivers:
            d.prepare()

    async def __call__(self, session: Session) -> None:
        """Play the scenario named by ``session.spec.label`` (set by ``run`` from
        :meth:`index_for`); raises what that scenario's driver raises."""
        label = session.spec.label
        driver = self._by_name.get(label or "")
        if driver is None:
            raise MixError(f"session {session.spec.session_id}: no scenario named {label!r}")
        await driver(session)


def mix_of(
    entries: Sequence[MixEntry], drivers: Sequence[ScenarioDriver], seed: int
) -> ScenarioMix:
    """The :class:`ScenarioMix` of ``entries`` (loaded as ``drivers``, in the same order):
    the same file given twice is one scenario with the weights added."""
    weights: dict[str, int] = {}
    by_origin: dict[str, ScenarioDriver] = {}
    for entry, driver in zip(entries, drivers, strict=True):
        key = str(Path(entry.path).resolve())
        weights[key] = weights.get(key, 0) + entry.weight
        by_origin.setdefault(key, driver)
    return ScenarioMix(tuple(by_origin.values()), tuple(weights.values()), seed=seed)
