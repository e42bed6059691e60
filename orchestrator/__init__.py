"""realtime-orchestrator: concurrent OpenAI Realtime conversations, measured honestly."""

__version__ = "0.1.0"
