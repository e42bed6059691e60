"""The streamed pieces of a response plan (:class:`StreamParts`, the base of
:class:`~.responder.ResponseStream`, which decides the order): the stream's state,
opening an output item, the deltas of an answer (audio with its transcript running
ahead, or text) and the closing events of a tool call.

A tool call's item (:mod:`.response_events` has the shapes): a function call streams
``function_call_arguments.delta`` x N then ``.done``; an MCP call (:mod:`.mcp`) streams
``mcp_call_arguments.delta`` / ``.done``, then ``response.mcp_call.in_progress`` and,
the call's duration later, ``.completed`` (``.failed`` for an injected failure or when
the response ends first); an MCP approval request has no deltas at all. Pure: no I/O,
no clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from .response_events import (
    arguments_done,
    call_item,
    content_event,
    mcp_call_event,
)
from .spec import PlannedCall, ResponseSpec, Step, audio_ms_for, obfuscation, split_words


class StreamParts:
    """State and the streamed pieces of one response (see the module docstring)."""

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
        self._speaks = spec.speaks
        self._output_index = 0
        self._args_all = ""
        self._item_done: dict[str, Any] | None = None  # conversation.item.done sent
        self._args_done = False  # function_call_arguments.done sent
        self._mcp_state: str | None = None  # "in_progress" / "done" sent
        self._next_delta = 0
        self._first_marked = False
        self._last_at = 0.0
        self._shift = 0.0  # the answer's timeline after MCP calls
        text = spec.text
        self.incomplete = False
        if spec.max_words is not None and self._speaks:
            words = text.split(" ")
            if len(words) > spec.max_words:
                text = " ".join(words[: spec.max_words])
                self.incomplete = True
        self.text = text

    def _ids(self) -> dict[str, Any]:
        item_id = self._call.item_id if self._call is not None else self.spec.item_id
        return {"response_id": self.spec.response_id, "item_id": item_id}

    def _at(self, index: float) -> float:
        return self.spec.timing.delta_at(index) + self._shift

    def _new_item(self) -> dict[str, Any]:
        if self._call is not None:
            return call_item(self._call)
        return {
            "id": self.spec.item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }

    def _open_item(self, at: float) -> Iterator[Step]:
        """``output_item.added`` + ``conversation.item.added`` of the next output item."""
        self.item = self._new_item()
        self._item_done = None
        self._args_done = False
        self._mcp_state = None
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

    def _delta(self, at: float, event: dict[str, Any], audio_ms: int | None = None) -> Step:
        """A streamed delta. The ``first_delta`` mark is the response's first delta that
        every dialect sends: MCP argument deltas (GA only) do not take it, so after an
        MCP call it is the answer's first delta."""
        idx = self._next_delta
        self._next_delta += 1
        self._last_at = at
        first = not self._first_marked and not event["type"].startswith("response.mcp_")
        self._first_marked = self._first_marked or first
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
    def _arg_pieces(planned: PlannedCall) -> list[str]:
        if planned.mcp is not None and planned.mcp.approval:
            return []  # an approval request carries its arguments whole
        args = planned.call.arguments
        return [args[i : i + 8] for i in range(0, len(args), 8)] or [""]

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
        index = self._output_index
        for k, (payload, ms) in enumerate(chunks):
            # paced by audio: a short (partial silence) chunk takes a shorter slot
            at = self._at(self.audio_ms / spec.chunk_ms)
            for piece in by_chunk[k]:
                padding = obfuscation(self.rng, piece)
                yield Step(
                    at,
                    content_event(
                        "response.output_audio_transcript.delta",
                        self._ids(),
                        index,
                        delta=piece,
                        obfuscation=padding,
                    ),
                    audio_ms=self.audio_ms,
                )
                if self.finished:
                    return
                self.pieces_sent.append(piece)
            event = content_event("response.output_audio.delta", self._ids(), index, delta=payload)
            yield self._delta(at, event, audio_ms=self.audio_ms + ms)
            if self.finished:
                return
            self.audio_ms += ms

    def _text_steps(self) -> Iterator[Step]:
        for k, piece in enumerate(split_words(self.text)):
            padding = obfuscation(self.rng, piece)
            event = content_event(
                "response.output_text.delta",
                self._ids(),
                self._output_index,
                delta=piece,
                obfuscation=padding,
            )
            yield self._delta(self._at(k), event)
            if self.finished:
                return
            self.pieces_sent.append(piece)

    def _close_call(self, at: float, item_status: str, stoppable: bool) -> Iterator[Step]:
        """The call-specific closing events: arguments done; an MCP call runs (in
        progress, then completed / failed its duration later; failed when cut short)."""
        planned = self._call
        assert planned is not None
        if planned.mcp is not None and planned.mcp.approval:
            return
        if not self._args_done:
            yield Step(at, arguments_done(planned, self._ids(), self._output_index, self.args_sent))
            if stoppable and self.finished:
                return
            self._args_done = True
        mcp = planned.mcp
        if mcp is None or self._mcp_state == "done":
            return
        if self._mcp_state is None and item_status == "completed":
            yield Step(at, mcp_call_event("in_progress", planned.item_id, self._output_index))
            if stoppable and self.finished:
                return
            self._mcp_state = "in_progress"
            at += mcp.duration_s
            self._last_at = at
        if self._mcp_state == "in_progress":
            ok = item_status == "completed" and mcp.error is None
            phase = "completed" if ok else "failed"
            yield Step(at, mcp_call_event(phase, planned.item_id, self._output_index))
            if stoppable and self.finished:
                return
            self._mcp_state = "done"
