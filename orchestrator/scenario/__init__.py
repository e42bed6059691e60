"""scenario layer: scripted conversations played through one session.

* :mod:`.builtin` — the built-in "one spoken question, one answer" conversation
  (:class:`BuiltinConversation`, a driver callable) and :func:`voice_session_config`.
* :mod:`.model` — the scenario file model (:class:`Scenario`, :class:`TurnSpec`, ...):
  validated frozen attrs values.
* :mod:`.loader` — :func:`load_scenario` (TOML or JSON file; the format reference is its
  module docstring) and :func:`parse_scenario`; every problem is a :class:`ScenarioError`
  naming the file and the field path.
* :mod:`.expect` — pure expectation checks (:func:`check_turn`).
* :mod:`.driver` — :class:`ScenarioDriver`, the driver playing a scenario through a
  session; a failed expectation raises :class:`ScenarioFailed`.
"""

from orchestrator.scenario.builtin import BuiltinConversation, voice_session_config
from orchestrator.scenario.driver import ScenarioDriver, TurnOutcome
from orchestrator.scenario.errors import ScenarioError, ScenarioFailed
from orchestrator.scenario.expect import ExpectationFailure, Observed, check_turn
from orchestrator.scenario.loader import load_scenario, parse_scenario
from orchestrator.scenario.model import (
    BUDGET_METRICS,
    HistoryItem,
    Scenario,
    ServerHints,
    SessionSettings,
    ToolRuleHint,
    ToolSpec,
    TurnSpec,
)

__all__ = [
    "BUDGET_METRICS",
    "BuiltinConversation",
    "ExpectationFailure",
    "HistoryItem",
    "Observed",
    "Scenario",
    "ScenarioDriver",
    "ScenarioError",
    "ScenarioFailed",
    "ServerHints",
    "SessionSettings",
    "ToolRuleHint",
    "ToolSpec",
    "TurnOutcome",
    "TurnSpec",
    "check_turn",
    "load_scenario",
    "parse_scenario",
    "voice_session_config",
]
