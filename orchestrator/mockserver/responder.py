"""The pure plan of a response: which events, in which order, at which offsets.

:class:`ResponseStream` yields :class:`Step` s (offset from the anchor in seconds, a
GA-shaped event without ``event_id``, and an optional ground-truth mark / state effect)
in the real service's order (PROTOCOL_NOTES §4):

- audio: ``response.created`` -> ``output_item.added`` -> ``conversation.item.added`` ->
  ``content_part.added`` -> interleaved transcript deltas (running ahead) and audio
  deltas -> ``output_audio.done`` -> ``output_audio_transcript.done`` ->
  ``content_part.done`` -> ``conversation.item.done`` -> ``output_item.done`` ->
  ``response.done``;
- text: the same with ``output_text.delta`` / ``.done``;
- function call: ``output_item.added`` -> ``conversation.item.added`` ->
  ``function_call_arguments.delta`` x N -> ``.done`` -> ``conversation.item.done`` ->
  ``output_item.done`` -> ``response.done``. Several (parallel) calls follow one
  another in that shape, one output item each (``output_index`` 0..n-1, own item id and
  call id), the argument deltas continuing on the response's delta timeline; the one
  ``response.done`` lists them all.

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

import random
from collections.abc import Iterator
from typing import Any

from .spec import (
    PlannedCall,
    ResponseSpec,
    Step,
    audio_ms_for,
    obfuscation,
    response_usage,
    split_words,
)

#: the plan's data types live in :mod:`.spec`; importable from here too
__all__ = ["PlannedCall", "ResponseSpec", "ResponseStream", "Step"]


class ResponseStream:
    """Iterate :meth:`steps` for the full response; call :meth:`finish` to end early.

    State changes after each ``yield`` mean "that step was sent": the connection asks
    for the next step only after sending the previous one, so :meth:`finish` closes
    exactly what the client has seen opened.
    """

    def __init__(
        self, spec: ResponseSpec, *, ms_per_word: int, rng: random.Random | None = None
    ) -> None:
        self.spec = spec
        #: draws the delta padding (``obfuscation``); unseeded when not given
        self.rng = rng if rng is not None else random.Random()
        self.ms_per_word = ms_per_word
        self.response = dict(spec.response_object)
        self.item: dict[str, Any] | None = None
        self.part_open = False
        self.item_open = False
        self.pieces_sent: list[str] = []
        self.audio_ms = 0
        self.args_sent = ""  # arguments streamed for the current call
        self.finished = False
        #: ``audio_end_ms`` of a truncate received while the item was streaming
        self.truncated_ms: int | None = None
        #: final snapshots of the output items closed so far (``response.done.output``)
        self.done_items: list[dict[str, Any]] = []
        self._calls = spec.calls()
        self._call: PlannedCall | None = self._calls[0] if self._calls else None
        self._output_index = 0
        self._args_all = ""
        self._item_done: dict[str, Any] | None = None  # conversation.item.done sent
        self._args_done = False  # function_call_arguments.done sent
        self._next_delta = 0
        self._last_at = 0.0
        text = spec.text
        self.incomplete = False
        if spec.max_words is not None and spec.tool_call is None:
            words = text.split(" ")
            if len(words) > spec.max_words:
                text = " ".join(words[: spec.max_words])
                self.incomplete = True
        self.text = text

    @property
    def item_ids(self) -> list[str]:
        """The ids of the response's output items, in output order."""
        return [c.item_id for c in self._calls] or [self.spec.item_id]

    def truncate(self, item_id: str, audio_end_ms: int) -> bool:
        """Record a ``conversation.item.truncate`` of this response's audio message item
        while it is still streaming; False when ``item_id`` is not such an item."""
        if self._calls or self.spec.modality != "audio" or item_id != self.spec.item_id:
            return False
        self.truncated_ms = audio_end_ms
        return True

    # -- common pieces -------------------------------------------------------------
    def _ids(self) -> dict[str, Any]:
        item_id = self._call.item_id if self._call is not None else self.spec.item_id
        return {"response_id": self.spec.response_id, "item_id": item_id}

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

    def _new_item(self) -> dict[str, Any]:
        if self._call is not None:
            return {
                "id": self._call.item_id,
                "type": "function_call",
                "status": "in_progress",
                "name": self._call.call.name,
                "call_id": self._call.call_id,
                "arguments": "",
            }
        return {
            "id": self.spec.item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }

    def _final_item(self, status: str) -> dict[str, Any]:
        assert self.item is not None
        item = dict(self.item)
        item["status"] = status
        if item["type"] == "function_call":
            item["arguments"] = self.args_sent
        else:
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
        t0 = t.first_delta_s
        self._last_at = t0
        if self._calls:
            yield from self._function_calls()
        else:
            yield from self._open_item(t0)
            if self.finished:
                return
            yield Step(
                t0,
                {
                    **self._ids(),
                    "type": "response.content_part.added",
                    "output_index": 0,
                    "content_index": 0,
                    "part": self._part(),
                },
                effect="add_part",
            )
            if self.finished:
                return
            self.part_open = True
            if spec.modality == "audio":
                yield from self._audio_steps()
            else:
                yield from self._text_steps()
        if self.finished:
            return
        status = "incomplete" if self.incomplete else "completed"
        yield from self._closing(self._last_at, status, None)

    def _open_item(self, at: float) -> Iterator[Step]:
        """``output_item.added`` + ``conversation.item.added`` of the next output item."""
        self.item = self._new_item()
        self._item_done = None
        self._args_done = False
        yield Step(
            at,
            {
                "type": "response.output_item.added",
                "response_id": self.spec.response_id,
                "output_index": self._output_index,
                "item": dict(self.item),
            },
        )
        if self.finished:
            return
        self.item_open = True
        yield Step(
            at,
            {"type": "conversation.item.added", "previous_item_id": None, "item": dict(self.item)},
            effect="add_item",
        )

    def _delta(
        self, at: float, event: dict[str, Any], first: bool, audio_ms: int | None = None
    ) -> Step:
        idx = self._next_delta
        self._next_delta += 1
        self._last_at = at
        return Step(
            at,
            event,
            "first_delta" if first else None,
            delta_index=idx,
            audio_ms=self.audio_ms if audio_ms is None else audio_ms,
        )

    def _audio_chunks(self) -> list[tuple[str, int]]:
        """(payload, ms) of every audio delta: the leading silence, then the speech."""
        spec = self.spec
        speech = audio_ms_for(self.text, self.ms_per_word, spec.chunk_ms) // spec.chunk_ms
        bank = spec.audio_chunks
        return [
            *spec.lead_chunks,
            *((bank[(spec.chunk_offset + k) % len(bank)], spec.chunk_ms) for k in range(speech)),
        ]

    @staticmethod
    def _arg_pieces(args: str) -> list[str]:
        return [args[i : i + 8] for i in range(0, len(args), 8)] or [""]

    def n_deltas(self) -> int:
        """How many streamed deltas (audio, text or argument) the full response has."""
        if self._calls:
            return sum(len(self._arg_pieces(c.call.arguments)) for c in self._calls)
        if self.spec.modality == "audio":
            return len(self._audio_chunks())
        return len(split_words(self.text))

    def _audio_steps(self) -> Iterator[Step]:
        spec = self.spec
        chunks = self._audio_chunks()
        n_chunks = len(chunks)
        pieces = split_words(self.text)
        # transcript runs ahead: spread the words over the first half of the audio
        ahead = max(1, (n_chunks + 1) // 2)
        by_chunk: list[list[str]] = [[] for _ in range(n_chunks)]
        for j, piece in enumerate(pieces):
            by_chunk[min(n_chunks - 1, j * ahead // len(pieces))].append(piece)
        for k, (payload, ms) in enumerate(chunks):
            # paced by audio: a short (partial silence) chunk takes a shorter slot
            at = spec.timing.delta_at(self.audio_ms / spec.chunk_ms)
            for piece in by_chunk[k]:
                yield Step(
                    at,
                    {
                        **self._ids(),
                        "type": "response.output_audio_transcript.delta",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                        "obfuscation": obfuscation(self.rng, piece),
                    },
                    audio_ms=self.audio_ms,
                )
                if self.finished:
                    return
                self.pieces_sent.append(piece)
            yield self._delta(
                at,
                {
                    **self._ids(),
                    "type": "response.output_audio.delta",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": payload,
                },
                first=k == 0,
                audio_ms=self.audio_ms + ms,
            )
            if self.finished:
                return
            self.audio_ms += ms

    def _text_steps(self) -> Iterator[Step]:
        for k, piece in enumerate(split_words(self.text)):
            yield self._delta(
                self.spec.timing.delta_at(k),
                {
                    **self._ids(),
                    "type": "response.output_text.delta",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "obfuscation": obfuscation(self.rng, piece),
                },
                first=k == 0,
            )
            if self.finished:
                return
            self.pieces_sent.append(piece)

    def _function_calls(self) -> Iterator[Step]:
        """Each call in turn: open its item, stream its arguments, close it (the last
        one is closed by :meth:`_closing`). Deltas keep one timeline across calls."""
        last = len(self._calls) - 1
        for n, planned in enumerate(self._calls):
            self._call = planned
            self._output_index = n
            self.args_sent = ""
            yield from self._open_item(self.spec.timing.delta_at(self._next_delta))
            if self.finished:
                return
            for piece in self._arg_pieces(planned.call.arguments):
                k = self._next_delta
                yield self._delta(
                    self.spec.timing.delta_at(k),
                    {
                        **self._ids(),
                        "type": "response.function_call_arguments.delta",
                        "output_index": n,
                        "call_id": planned.call_id,
                        "delta": piece,
                        "obfuscation": obfuscation(self.rng, piece),
                    },
                    first=k == 0,
                )
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
        spec = self.spec
        if self.item is not None and self._call is not None and self.item_open:
            if not self._args_done:
                yield Step(
                    at,
                    {
                        **self._ids(),
                        "type": "response.function_call_arguments.done",
                        "output_index": self._output_index,
                        "call_id": self._call.call_id,
                        "name": self._call.call.name,
                        "arguments": self.args_sent,
                    },
                )
                if stoppable and self.finished:
                    return
                self._args_done = True
        if self.part_open:
            said = "".join(self.pieces_sent)
            if spec.modality == "audio":
                yield Step(
                    at,
                    {
                        **self._ids(),
                        "type": "response.output_audio.done",
                        "output_index": 0,
                        "content_index": 0,
                    },
                    audio_ms=self.audio_ms,
                )
                yield Step(
                    at,
                    {
                        **self._ids(),
                        "type": "response.output_audio_transcript.done",
                        "output_index": 0,
                        "content_index": 0,
                        "transcript": said,
                    },
                )
            else:
                yield Step(
                    at,
                    {
                        **self._ids(),
                        "type": "response.output_text.done",
                        "output_index": 0,
                        "content_index": 0,
                        "text": said,
                    },
                )
            yield Step(
                at,
                {
                    **self._ids(),
                    "type": "response.content_part.done",
                    "output_index": 0,
                    "content_index": 0,
                    "part": self._part(),
                },
            )
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
                    "response_id": spec.response_id,
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
        return list(self._closing(at, status, details))

    def _response(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = dict(self.response)
        resp["status"] = status
        resp["status_details"] = details
        if status == "incomplete" and details is None:
            resp["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
        return resp
