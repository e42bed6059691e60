"""scenario layer: scripted conversations played through one session.

* :mod:`.builtin` — the built-in "one spoken question, one answer" conversation
  (:class:`BuiltinConversation`, a driver callable) and :func:`voice_session_config`.
"""

from orchestrator.scenario.builtin import BuiltinConversation, ScenarioFailed, voice_session_config

__all__ = ["BuiltinConversation", "ScenarioFailed", "voice_session_config"]
