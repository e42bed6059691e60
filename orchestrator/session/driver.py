"""The driver API of a session: what a script (or a test) calls on the handle.

Every method is a coroutine that either completes or raises; none takes a timeout
(wrap calls in ``trio.fail_after`` / ``move_on_after``). Common promises:

- **Cancellation**: a cancelled call raises ``Cancelled``. If its client event was
  already queued it is still sent and the server still acts on it; the session itself
  is unaffected (cancelling a ``say_*`` call does not cancel the turn: ``turn.wait()``
  later still works; a manual-commit audio turn cancelled before its commit stays
  uncommitted and ends when the next turn starts).
- **Turn checks**: ``say_*`` / ``start_*_turn`` take ``check=fn`` (``fn(turn) ->
  Sequence[str]``), run once when the turn is finalized, before its record is emitted;
  its failure messages land on ``turn.expectation_failures`` and as
  ``expectation_failed`` errors on the record. Once the turn is opened it runs even if
  the call that started it is cancelled, and for every final status; an exception in it becomes a
  failure message. See :class:`~orchestrator.session.turns.Turn`.
- **Errors**: a server ``error`` echoing the request's ``event_id`` raises
  :class:`RequestRejected`; a connection drop while waiting raises :class:`LinkLost`; a
  call on (or during the end of) a finished session raises :class:`SessionEnded`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from orchestrator import protocol as P

from .audio_in import Utterance
from .errors import RequestRejected
from .reconnect import RolloverRequested
from .sources import as_source
from .state import text_message
from .turns import Turn, TurnCheck
from .waiters import Waiter

if TYPE_CHECKING:
    from .actor import Session

__all__ = ["SessionDriver"]


class SessionDriver:
    """Driver methods of :class:`~orchestrator.session.actor.Session`."""

    # ------------------------------------------------------------------ configuration
    async def configure(self: Session, config: Any) -> Any:
        """Send ``session.update`` with ``config`` (a ``SessionConfig``; partial configs
        merge server-side) and return the ``session`` of the ``session.updated`` answer.
        The config is re-sent after every reconnect."""
        event = P.SessionUpdate(session=config, event_id=P.new_id("event_"))
        result = await self._request(event, lambda ev: type(ev) is P.SessionUpdated)
        self._configs.append(config)
        return result.session

    # ------------------------------------------------------------------ input
    async def send_audio(self: Session, source: Any, *, start_at: float | None = None) -> None:
        """Stream ``source`` (an ``AudioSource``, WAV path or numpy array) to the input
        buffer on the pacing deadlines, starting at trio time ``start_at`` (default:
        now). Returns when the last frame is queued for sending. No commit, no turn."""
        self._check_alive()
        utt = Utterance(source=as_source(source), turn=None, start_at=start_at, tail=False)
        await self._utter_tx.send(utt)
        await utt.queued.wait()

    async def send_text(
        self: Session, text: str, *, role: str = "user", item_id: str | None = None
    ) -> str:
        """Add a text message item (``input_text``; ``output_text`` for the assistant)
        and return its id once the server has added it. No response is requested."""
        item = text_message(role, text, item_id)
        event = P.ConversationItemCreate(item=item, event_id=P.new_id("event_"))
        await self._request(event, _added(item.id))
        return item.id

    async def seed_history(self: Session, items: Iterable[Any]) -> list[str]:
        """Add prior conversation items in order: protocol items, or ``(role, text)``
        pairs. Returns their ids once the last one was added."""
        made = [
            text_message(it[0], it[1]) if isinstance(it, tuple) else _with_id(it) for it in items
        ]
        if not made:
            return []
        for item in made[:-1]:
            await self._enqueue(P.ConversationItemCreate(item=item), None)
        last = made[-1]
        event = P.ConversationItemCreate(item=last, event_id=P.new_id("event_"))
        await self._request(event, _added(last.id))
        return [item.id for item in made]

    async def send_tool_output(self: Session, call_id: str, output: str) -> str:
        """Send a ``function_call_output`` for ``call_id`` (for drivers that run tools
        themselves); returns the new item's id once added. No response is requested."""
        item = P.FunctionCallOutputItem(id=P.new_id("item_"), call_id=call_id, output=output)
        event = P.ConversationItemCreate(item=item, event_id=P.new_id("event_"))
        await self._request(event, _added(item.id))
        return item.id or ""

    async def commit(self: Session) -> str:
        """Commit the input audio buffer; returns the user item id from
        ``input_audio_buffer.committed``."""
        event = P.InputAudioBufferCommit(event_id=P.new_id("event_"))
        result = await self._request(event, lambda ev: type(ev) is P.InputAudioBufferCommitted)
        return result.item_id

    async def clear_audio(self: Session) -> None:
        """Discard the input audio buffer (waits for ``input_audio_buffer.cleared``)."""
        event = P.InputAudioBufferClear(event_id=P.new_id("event_"))
        await self._request(event, lambda ev: type(ev) is P.InputAudioBufferCleared)

    # ------------------------------------------------------------------ responses
    async def create_response(self: Session, params: Any = None) -> str:
        """Send ``response.create`` (``params``: ``ResponseParams`` overrides) and return
        the response id from ``response.created``. The response belongs to the open turn
        that has none yet, else to a new turn."""
        cur = self._current
        turn = cur if cur is not None and cur.status == "open" and not cur.response_ids else None
        if turn is None:
            turn = self._open_turn("text", None)
        event = P.ResponseCreate(response=params, event_id=P.new_id("event_"))
        self._claims.append((event.event_id, turn))
        result = await self._request(
            event,
            lambda ev: (
                type(ev) is P.ResponseCreated and self._resp_turn.get(ev.response.id) is turn
            ),
            turn,
        )
        return result.response.id

    async def cancel_response(self: Session) -> bool:
        """Cancel the active response, if there is one. Returns True once its
        ``response.done`` arrived, False when nothing was active (nothing is sent then,
        and a ``response_cancel_not_active`` race is tolerated)."""
        rid = self.state.active_response_id
        if rid is None:
            return False
        event = P.ResponseCancel(event_id=P.new_id("event_"))
        try:
            await self._request(
                event,
                lambda ev: type(ev) is P.ResponseDone and ev.response.id == rid,
                self._resp_turn.get(rid),
            )
        except RequestRejected as exc:
            if exc.code == "response_cancel_not_active":
                return False
            raise
        return True

    # ------------------------------------------------------------------ items
    async def truncate(
        self: Session, item_id: str, audio_end_ms: int, *, content_index: int = 0
    ) -> int:
        """Truncate an assistant audio item at ``audio_end_ms`` (sent as given; see
        ``state.truncate_point`` for a value the server cannot reject). Returns the
        ``audio_end_ms`` the server confirmed."""
        event = P.ConversationItemTruncate(
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=audio_end_ms,
            event_id=P.new_id("event_"),
        )
        result = await self._request(
            event, lambda ev: type(ev) is P.ConversationItemTruncated and ev.item_id == item_id
        )
        return result.audio_end_ms

    async def delete_item(self: Session, item_id: str) -> None:
        """Delete an item; returns when ``conversation.item.deleted`` arrived."""
        event = P.ConversationItemDelete(item_id=item_id, event_id=P.new_id("event_"))
        await self._request(
            event, lambda ev: type(ev) is P.ConversationItemDeleted and ev.item_id == item_id
        )

    async def retrieve_item(self: Session, item_id: str) -> Any:
        """The server's copy of an item (``conversation.item.retrieved``)."""
        event = P.ConversationItemRetrieve(item_id=item_id, event_id=P.new_id("event_"))
        result = await self._request(
            event,
            lambda ev: (
                type(ev) is P.ConversationItemRetrieved and getattr(ev.item, "id", None) == item_id
            ),
        )
        return result.item

    # ------------------------------------------------------------------ observing
    async def wait_for(self: Session, predicate: Callable[[Any], bool]) -> Any:
        """Wait for the next server event for which ``predicate(event)`` is true and
        return it. Only events received after the call count; waiting goes on across
        reconnects (no ``LinkLost``). The predicate runs on the receiver's path: keep it
        cheap and never let it raise."""
        self._check_alive()
        return await self._await_waiter(Waiter(predicate, None, "wait_for"))

    # ------------------------------------------------------------------ turns
    async def say_text(
        self: Session,
        text: str,
        *,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """One text turn: add a user ``input_text`` item, request a response, wait for
        the turn to finish (tool rounds included) and return it.

        ``check``: judged when the turn is finalized, before its record is emitted (see
        :class:`Turn`); its failures are in ``turn.expectation_failures`` on return.
        Cancellation: raises ``Cancelled``; the turn goes on and ``check`` still runs
        when it ends."""
        turn = await self.start_text_turn(text, response=response, label=label, check=check)
        return await turn.wait()

    async def start_text_turn(
        self: Session,
        text: str,
        *,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """Like :meth:`say_text` but returns as soon as the request is queued."""
        self._check_alive()
        await self._maybe_rollover()
        turn = self._open_turn("text", label, user_text=text, check=check)
        item = text_message("user", text)
        turn.user_item_id = item.id
        await self._enqueue(P.ConversationItemCreate(item=item, event_id=P.new_id("event_")), turn)
        await self._send_create(turn, response)
        return turn

    async def say_audio(
        self: Session,
        source: Any,
        *,
        commit: Literal["auto", "vad", "manual"] = "auto",
        barge_in_at_ms: float | None = None,
        during: Turn | None = None,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """One spoken turn; waits for it to finish and returns it. See
        :meth:`start_audio_turn` for the parameters.

        Cancellation: raises ``Cancelled``; the turn goes on (see the module docstring)
        and ``check`` still runs when it ends."""
        turn = await self.start_audio_turn(
            source,
            commit=commit,
            barge_in_at_ms=barge_in_at_ms,
            during=during,
            response=response,
            label=label,
            check=check,
        )
        return await turn.wait()

    async def start_audio_turn(
        self: Session,
        source: Any,
        *,
        commit: Literal["auto", "vad", "manual"] = "auto",
        barge_in_at_ms: float | None = None,
        during: Turn | None = None,
        response: Any = None,
        label: str | None = None,
        check: TurnCheck | None = None,
    ) -> Turn:
        """Start a spoken turn and return it once its audio is queued (and, without
        server VAD, committed and the response requested).

        ``commit``: ``"vad"`` lets the server's turn detection end the turn (silence keeps
        flowing after the source until ``speech_stopped``); ``"manual"`` commits and sends
        ``response.create`` (with ``response`` overrides) after the last frame; ``"auto"``
        picks ``vad`` when the session has server/semantic VAD.

        ``barge_in_at_ms``: start speaking when the simulated playback of the assistant
        audio of ``during`` (default: the latest turn) reaches that offset. That planned
        instant anchors ``barge_in_stop_ms``; the client then stops playback, truncates
        the assistant item at the played position (never past the audio received, never
        at 0) and cancels the response unless server VAD does.

        ``check``: ``fn(turn) -> Sequence[str]``, run once when the turn is finalized and
        before its record is emitted (see :class:`Turn`). The turn (and so the check) only
        exists once this call got past a barge-in wait and the rollover check: cancelled
        before that, no turn is opened and ``check`` never runs.
        """
        self._check_alive()
        src = as_source(source)
        vad = self._server_vad() if commit == "auto" else commit == "vad"
        start_at = None
        if barge_in_at_ms is not None:
            target = during if during is not None else self._current
            start_at = await self._barge_in_time(target, barge_in_at_ms)
        else:
            await self._maybe_rollover()
        turn = self._open_turn("audio" if vad else "manual", label, check=check)
        if start_at is not None:
            turn.timer.planned_barge_in = start_at
            if not vad:
                self._nursery.start_soon(self._local_interrupt, start_at)
        utt = Utterance(source=src, turn=turn, start_at=start_at, tail=vad)
        await self._utter_tx.send(utt)
        await utt.queued.wait()
        if not vad:
            event = P.InputAudioBufferCommit(event_id=P.new_id("event_"))
            committed = await self._request(
                event, lambda ev: type(ev) is P.InputAudioBufferCommitted, turn
            )
            turn.user_item_id = committed.item_id
            await self._send_create(turn, response)
        return turn

    # ------------------------------------------------------------------ internals
    async def _local_interrupt(self: Session, at: float) -> None:
        await trio.sleep_until(at)
        self._interrupt(trio.current_time(), by_server=False)

    async def _barge_in_time(self: Session, target: Turn | None, offset_ms: float) -> float:
        """When the playback of ``target``'s assistant audio reaches ``offset_ms``
        (waiting for that audio to arrive); the end of its audio if it is shorter."""
        while True:
            found = self._turn_audio_item(target)
            if found is not None:
                item_id, resp = found
                at = self.playback.time_at(item_id, offset_ms)
                if at is not None:
                    return at
                if resp.done:
                    end = self.playback.ends_at
                    return end if end is not None else trio.current_time()
            elif target is None or target.done:
                return trio.current_time()
            await self.wait_for(lambda ev: type(ev) in (P.ResponseOutputAudioDelta, P.ResponseDone))

    def _turn_audio_item(self: Session, turn: Turn | None) -> tuple[str, Any] | None:
        if turn is None:
            return None
        found = self.state.output_items(turn.response_ids)
        return next(((st.id, resp) for resp, st in found if st.audio_bytes), None)

    async def _maybe_rollover(self: Session) -> None:
        """At a turn boundary: move to a fresh connection if this one is too old or
        about to expire, and wait until it is ready."""
        started = self._link_started_at
        if started is None or self._link_scope is None or not self._link_ready.is_set():
            return
        now = trio.current_time()
        due = self.spec.rollover_after is not None and now - started >= self.spec.rollover_after
        expires = self.state.expires_at
        if expires is not None and time.time() >= expires - self.spec.expiry_margin:
            due = True
        if not due:
            return
        gen = self._ready_gen
        self._lost = RolloverRequested()
        self._link_scope.cancel()
        while self._ready_gen == gen:
            self._check_alive()
            await self._ready_changed.wait()


def _with_id(item: Any) -> Any:
    if getattr(item, "id", None):
        return item
    return attrs.evolve(item, id=P.new_id("item_"))


def _added(item_id: str | None) -> Callable[[Any], bool]:
    return lambda ev: (
        type(ev) is P.ConversationItemAdded and getattr(ev.item, "id", None) == item_id
    )
