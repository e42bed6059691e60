"""The assistant speaking first: whether it did, and when the caller heard it.

Voice agents often greet the caller before anyone speaks. A response is the greeting
when it is the session's first response, nobody asked for it
(no ``response.create`` of ours claimed it) and the conversation was still empty: no
user input committed (``speech_stopped`` / ``input_audio_buffer.committed``) and no item
added (a message, seeded history) before it. It belongs to no turn, so it can never be
mistaken for the answer to the caller's first turn. (On later connections the same kind
of response, a re-greeting, belongs to no turn either, and is not measured; there the
items our replay of the conversation adds do not count as content.) Limit: a
driver that requests a response of its own before the greeting was created cannot tell
the two apart (``response.created`` does not name its request), so its request claims
the greeting; a scenario waits for the greeting first.

:class:`Greeting` is fed by the session core (synchronously, on the receive path) and
settles :meth:`Greeting.wait`: ``done`` True once the greeting's ``response.done``
arrived, False once no greeting can come any more (another response came first, the user's
input was committed first, the connection was lost before it finished, or the session
ended).
"""

from __future__ import annotations

import trio

__all__ = ["Greeting"]


class Greeting:
    """See the module docstring. ``response_id``: the greeting's response (None until it
    started); ``audible_at``: trio time at which its first audible sample plays (None:
    not heard, or no greeting); ``done``: its ``response.done`` arrived."""

    __slots__ = ("_open", "_settled", "audible_at", "done", "response_id")

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.audible_at: float | None = None
        self.done = False
        self._open = True  # a response nobody claimed may still be the greeting
        self._settled = trio.Event()

    def unprompted(self, response_id: str) -> bool:
        """A response nobody claimed was created: True (and it is the greeting) when the
        assistant is speaking first; False otherwise."""
        if not self._open:
            return False
        self._open = False
        self.response_id = response_id
        return True

    def close(self) -> None:
        """No greeting can start any more (a response came first, user input was
        committed); :meth:`wait` answers False unless the greeting already started."""
        self._open = False
        if self.response_id is None:
            self._settled.set()

    def mark_audible(self, t: float) -> None:
        if self.audible_at is None or t < self.audible_at:
            self.audible_at = t

    def playback_stopped(self, t: float) -> None:
        """Playback stopped at ``t``: an audible sample due later was never heard."""
        if self.audible_at is not None and self.audible_at > t:
            self.audible_at = None

    def finished(self) -> None:
        """The greeting's ``response.done`` arrived."""
        self.done = True
        self._settled.set()

    def release(self) -> None:
        """The connection or the session ended: stop waiting (False unless done)."""
        self._open = False
        self._settled.set()

    def ms_after(self, t0: float | None) -> float | None:
        """``greeting_ms``: from ``t0`` (session ready) to the first audible sample."""
        if t0 is None or self.audible_at is None:
            return None
        return (self.audible_at - t0) * 1000.0

    async def wait(self) -> None:
        """Wait until the question is settled: then ``done`` is the answer.

        Cancellation: raises ``Cancelled``; nothing changes."""
        await self._settled.wait()
