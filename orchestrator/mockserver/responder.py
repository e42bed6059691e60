"""The pure plan of a response: which events, in which order, at which offsets.

:class:`ResponseStream` yields :class:`Step` s (offset from the anchor in seconds, a
GA-shaped event without ``event_id``, and an optional ground-truth mark / state effect)
in the real service's order (PROTOCOL_NOTES §4); the event and item shapes are in
:mod:`.response_events`:

- audio: ``response.created`` -> ``output_item.added`` -> ``conversation.item.added`` ->
  ``content_part.added`` -> interleaved transcript deltas (running ahead) and audio
  deltas -> ``output_audio.done`` -> ``output_audio_transcript.done`` ->
  ``content_part.done`` -> ``conversation.item.done`` -> ``output_item.done`` ->
  ``response.done``;
- text: the same with ``output_text.delta`` / ``.done``;
- tool calls (:mod:`.stream_parts`): function call: ``output_item.added`` -> ``conversation.item.added`` ->
  ``function_call_arguments.delta`` x N -> ``.done`` -> ``conversation.item.done`` ->
  ``output_item.done`` -> ``response.done``. Several (parallel) calls follow one
  another in that shape, one output item each (``output_index`` 0..n-1, own item id and
  call id), the argument deltas continuing on the response's delta timeline; the one
  ``response.done`` lists them all;
- MCP call (:mod:`.mcp`): the same with ``mcp_call_arguments.delta`` / ``.done``, then
  ``response.mcp_call.in_progress`` and, the call's duration later,
  ``.completed`` (or ``.failed``) before the item closes with its output; the answer
  (audio or text, as above) follows in the same response, its timeline shifted to
  start one ``response.created`` .. first-delta time after the call finished;
- MCP approval request: ``output_item.added`` -> ``conversation.item.added`` ->
  ``conversation.item.done`` -> ``output_item.done`` (no deltas) -> ``response.done``.

The stream remembers how far it got, so :meth:`ResponseStream.finish` can end it early
(cancelled / failed) with the closing events the real service sends for a partial
response. :meth:`ResponseStream.truncate` records a ``conversation.item.truncate`` of
the item while it is still streaming: later item snapshots (``content_part.done``,
``conversation.item.done``, ``output_item.done``, ``response.done``) then carry an
empty transcript, like the truncated item in the conversation (the delta stream itself
goes on; ``output_audio_transcript.done`` still closes it with the streamed text).
No I/O and no clock: the connection actor does the sleeping and sending.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .response_events import (
    arguments_delta,
    content_event,
    final_call_item,
)
from .spec import (
    PlannedCall,
    ResponseSpec,
    Step,
    obfuscation,
    response_usage,
    split_words,
)
from .stream_parts import StreamParts

#: the plan's data types live in :mod:`.spec`; importable from here too
__all__ = ["PlannedCall", "ResponseSpec", "ResponseStream", "Step"]


class ResponseStream(StreamParts):
    """Iterate :meth:`steps` for the full response; call :meth:`finish` to end early.

    State changes after each ``yield`` mean "that step was sent": the connection asks
    for the next step only after sending the previous one, so :meth:`finish` closes
    exactly what the client has seen opened.
    """

    @property
    def item_ids(self) -> list[str]:
        """The ids of the response's output items, in output order."""
        ids = [c.item_id for c in self._calls]
        return ids + [self.spec.item_id] if self._speaks else ids

    def truncate(self, item_id: str, audio_end_ms: int) -> bool:
        """Record a ``conversation.item.truncate`` of this response's audio message item
        while it is still streaming; False when ``item_id`` is not such an item."""
        if not self._speaks or self.spec.modality != "audio" or item_id != self.spec.item_id:
            return False
        self.truncated_ms = audio_end_ms
        return True

    # -- common pieces -------------------------------------------------------------
    def _said(self) -> str:
        # a truncated item keeps no transcript of the audio the user did not hear
        return "" if self.truncated_ms is not None else "".join(self.pieces_sent)

    def _part(self) -> dict[str, Any]:
        said = self._said()
        if self.spec.modality == "audio":
            return {"type": "audio", "transcript": said}
        return {"type": "text", "text": said}

    def _item_content(self) -> list[dict[str, Any]]:
        said = self._said()
        if self.spec.modality == "audio":
            return [{"type": "output_audio", "transcript": said}]
        return [{"type": "output_text", "text": said}]

    def _final_item(self, status: str) -> dict[str, Any]:
        assert self.item is not None
        if self._call is not None:
            ran = self._mcp_state == "done" and status == "completed"
            return final_call_item(self.item, self._call, status, self.args_sent, ran)
        item = dict(self.item)
        item["status"] = status
        opened = self.part_open or self.pieces_sent or self.truncated_ms is not None
        item["content"] = self._item_content() if opened else []
        return item

    # -- the plan ------------------------------------------------------------------
    def steps(self) -> Iterator[Step]:
        """The complete response, in order. Stops early if :meth:`finish` was called."""
        spec = self.spec
        t = spec.timing
        yield Step(
            t.created_s,
            {"type": "response.created", "response": self._response("in_progress")},
            "created",
        )
        if self.finished:
            return
        self._last_at = t.first_delta_s
        if self._calls:
            yield from self._tool_calls()
            if self.finished:
                return
        if self._speaks:
            yield from self._answer()
            if self.finished:
                return
        status = "incomplete" if self.incomplete else "completed"
        yield from self._closing(self._last_at, status, None)

    def _answer(self) -> Iterator[Step]:
        """The message: after MCP calls, once the last one is closed."""
        if self._calls:
            yield from self._close_item(self._last_at, "completed", stoppable=True)
            if self.finished:
                return
            self._call = None
            self._output_index = len(self._calls)
            self._shift = self._last_at - self.spec.timing.created_s
        at = self._at(0)
        self._last_at = at
        yield from self._open_item(at)
        if self.finished:
            return
        yield Step(
            at,
            content_event(
                "response.content_part.added", self._ids(), self._output_index, part=self._part()
            ),
            effect="add_part",
        )
        if self.finished:
            return
        self.part_open = True
        if self.spec.modality == "audio":
            yield from self._audio_steps()
        else:
            yield from self._text_steps()

    def n_deltas(self) -> int:
        """How many streamed deltas (audio, text or argument) the full response has."""
        n = sum(len(self._arg_pieces(c)) for c in self._calls)
        if not self._speaks:
            return n
        if self.spec.modality == "audio":
            return n + len(self._audio_chunks())
        return n + len(split_words(self.text))

    def _tool_calls(self) -> Iterator[Step]:
        """Each call in turn: open its item, stream its arguments, close it (the last
        one is closed by :meth:`_answer` or :meth:`_closing`). Deltas keep one timeline
        across calls."""
        last = len(self._calls) - 1
        for n, planned in enumerate(self._calls):
            self._call = planned
            self._output_index = n
            self.args_sent = ""
            yield from self._open_item(max(self._at(self._next_delta), self._last_at))
            if self.finished:
                return
            for piece in self._arg_pieces(planned):
                event = arguments_delta(
                    planned, self._ids(), n, piece, obfuscation(self.rng, piece)
                )
                yield self._delta(max(self._at(self._next_delta), self._last_at), event)
                if self.finished:
                    return
                self.args_sent += piece
                self._args_all += piece
            if n < last:
                yield from self._close_item(self._last_at, "completed", stoppable=True)
                if self.finished:
                    return

    def _close_item(
        self, at: float, item_status: str, *, stoppable: bool = False
    ) -> Iterator[Step]:
        """Close whatever of the current output item is open (each event once).

        ``stoppable``: closing an item in the middle of the plan, where :meth:`finish`
        may take over after any step (which then was not sent).
        """
        if self.item is not None and self._call is not None and self.item_open:
            yield from self._close_call(at, item_status, stoppable)
            if stoppable and self.finished:
                return
            at = max(at, self._last_at)
        if self.part_open:
            said = "".join(self.pieces_sent)
            ids, index = self._ids(), self._output_index
            if self.spec.modality == "audio":
                done = content_event("response.output_audio.done", ids, index)
                yield Step(at, done, audio_ms=self.audio_ms)
                yield Step(
                    at,
                    content_event(
                        "response.output_audio_transcript.done", ids, index, transcript=said
                    ),
                )
            else:
                yield Step(at, content_event("response.output_text.done", ids, index, text=said))
            part = content_event("response.content_part.done", ids, index, part=self._part())
            yield Step(at, part)
            self.part_open = False
        if self.item is not None and self.item_open:
            final = self._item_done or self._final_item(item_status)
            if self._item_done is None:
                yield Step(
                    at,
                    {"type": "conversation.item.done", "previous_item_id": None, "item": final},
                    effect="finish_item",
                    audio_ms=self.audio_ms,
                )
                if stoppable and self.finished:
                    return
                self._item_done = final
            yield Step(
                at,
                {
                    "type": "response.output_item.done",
                    "response_id": self.spec.response_id,
                    "output_index": self._output_index,
                    "item": final,
                },
            )
            if stoppable and self.finished:
                return
            self.item_open = False
            self.done_items.append(final)

    def _closing(self, at: float, status: str, details: dict[str, Any] | None) -> Iterator[Step]:
        """Close whatever is open, then ``response.done`` with ``status``."""
        self.finished = True
        item_status = "completed" if status == "completed" else "incomplete"
        yield from self._close_item(at, item_status)
        at = max(at, self._last_at)
        output = list(self.done_items)
        resp = self._response(status, details)
        resp["output"] = output
        resp["usage"] = response_usage(
            output,
            "".join(self.pieces_sent) or self._args_all,
            self.audio_ms,
            self.spec.input_tokens,
        )
        yield Step(at, {"type": "response.done", "response": resp}, "done", audio_ms=self.audio_ms)

    def finish(self, at: float, status: str, details: dict[str, Any] | None) -> list[Step]:
        """End the response now (``cancelled`` / ``failed``): the closing steps at ``at``."""
        if self.finished:
            return []
        self._last_at = min(self._last_at, at)
        return list(self._closing(at, status, details))

    def _response(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = dict(self.response)
        resp["status"] = status
        resp["status_details"] = details
        if status == "incomplete" and details is None:
            resp["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
        return resp
