"""The conversation state machine of one session (pure: events in, state out, no I/O).

It mirrors what the server holds, from server events only:

- **items** in server order. ``conversation.item.added`` (beta ``.created``) inserts after
  ``previous_item_id`` (``None`` = first); ``.done`` / ``.retrieved`` only update content
  (their ``previous_item_id`` is sometimes a spurious ``null``, PROTOCOL_NOTES §4);
  ``.deleted`` removes; ``.truncated`` records the cut and drops the transcript;
- **responses** and their output items, usage and final status; the *active* response
  (``response.created`` .. ``response.done``);
- the **current audio** output (response, item, content index) and how much audio each
  item received (counted from the base64 length, never decoded here);
- **tool calls** whose arguments are done and whose output has not been seen yet, and
  MCP approval requests not answered yet (``ToolCall.kind == "mcp_approval"``: the
  client answers them like function calls, with an ``mcp_approval_response``);
- the **MCP calls** the server made (or asked approval for) per response
  (:class:`McpCall`, from the output items and ``response.mcp_call.*``).

``apply(event)`` dispatches on the event class through a dict; unknown classes are
ignored. It never raises for odd-but-legal server behaviour (unknown ids, duplicates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import attrs

from orchestrator import protocol as P
from orchestrator.protocol.beta import FORMAT_TO_BETA

__all__ = [
    "ConversationState",
    "ItemState",
    "McpCall",
    "ResponseState",
    "ToolCall",
    "b64_decoded_len",
    "text_message",
]


def b64_decoded_len(data: str) -> int:
    """Decoded byte length of a base64 string, without decoding it."""
    n = len(data)
    if n == 0:
        return 0
    pad = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    return n * 3 // 4 - pad


def text_message(role: str, text: str, item_id: str | None = None) -> Any:
    """A message item of one text part (``output_text`` for the assistant, else
    ``input_text``) with ``item_id`` or a new id."""
    part = "output_text" if role == "assistant" else "input_text"
    return P.MessageItem(
        id=item_id or P.new_id("item_"),
        role=role,
        content=[P.ContentPart(type=part, text=text)],
    )


@attrs.define(slots=True, eq=False)
class ToolCall:
    """A function call whose arguments are complete, or (``kind`` ``mcp_approval``) an
    MCP approval request to answer: ``call_id`` is then the request's item id."""

    call_id: str
    name: str
    arguments: str
    item_id: str | None
    response_id: str | None
    kind: Literal["function", "mcp_approval"] = "function"
    server_label: str | None = None


@attrs.define(slots=True, eq=False)
class McpCall:
    """An MCP call the server made, or asked approval for: ``status``
    ``approval_requested``, ``in_progress``, ``completed`` or ``failed``;
    ``approval_request_id``: the request it carries out; ``approve``: the answer the
    client gave to this request (None: not asked, or not answered yet); ``response_id``:
    the response whose output it is (``response.mcp_call.*`` events carry only the item)."""

    item_id: str
    name: str
    server_label: str
    status: str
    approval_request_id: str | None = None
    approve: bool | None = None
    response_id: str | None = None


@attrs.define(slots=True, eq=False)
class ItemState:
    """What the client knows of one conversation item. ``item`` is the last protocol
    item object seen for it; ``text`` accumulates assistant text/transcript deltas;
    ``audio_bytes`` counts received assistant audio; ``truncated_ms`` is set by
    ``conversation.item.truncated``."""

    id: str
    item: Any
    response_id: str | None = None
    text_parts: list[str] = attrs.field(factory=list)
    final_text: str | None = None
    input_transcript: str | None = None
    audio_bytes: int = 0
    truncated_ms: int | None = None

    @property
    def type(self) -> str | None:
        return getattr(self.item, "type", None)

    @property
    def role(self) -> str | None:
        return getattr(self.item, "role", None)

    @property
    def text(self) -> str:
        """Assistant text or audio transcript (final when done, else deltas so far)."""
        if self.final_text is not None:
            return self.final_text
        return "".join(self.text_parts)


@attrs.define(slots=True, eq=False)
class ResponseState:
    """One response: ``status`` is ``in_progress`` until ``response.done``."""

    id: str
    status: str = "in_progress"
    output_item_ids: list[str] = attrs.field(factory=list)
    function_calls: list[ToolCall] = attrs.field(factory=list)
    mcp_calls: list[McpCall] = attrs.field(factory=list)
    final: Any = None  # the Response object of response.done

    @property
    def done(self) -> bool:
        return self.status != "in_progress"


@attrs.define(eq=False)
class ConversationState:
    """See the module docstring. ``bytes_per_ms`` converts received output audio bytes to
    milliseconds (48 for 24 kHz PCM16); ``output_codec`` (``pcm16``, ``g711_ulaw``,
    ``g711_alaw``) and ``output_rate`` say how to decode it. All three follow the output
    format of the server's session."""

    order: list[str] = attrs.field(factory=list)
    items: dict[str, ItemState] = attrs.field(factory=dict)
    responses: dict[str, ResponseState] = attrs.field(factory=dict)
    active_response_id: str | None = None
    audio_response_id: str | None = None
    audio_item_id: str | None = None
    audio_content_index: int = 0
    calls_in_flight: dict[str, ToolCall] = attrs.field(factory=dict)
    mcp_by_item: dict[str, McpCall] = attrs.field(factory=dict)
    session: Any = None
    expires_at: int | None = None
    bytes_per_ms: float = 48.0
    output_codec: str = "pcm16"
    output_rate: int = 24000
    last_delta_bytes: int = 0
    _pending_owner: dict[str, str] = attrs.field(factory=dict)

    # ---------------------------------------------------------------- dispatch
    def apply(self, event: object) -> None:
        """Update the state from one decoded server event."""
        handler = _DISPATCH.get(type(event))
        if handler is not None:
            handler(self, event)

    # ---------------------------------------------------------------- queries
    def output_items(
        self, response_ids: Iterable[str]
    ) -> Iterator[tuple[ResponseState, ItemState]]:
        """The known output items of ``response_ids`` (in order), each with its response."""
        for rid in response_ids:
            resp = self.responses.get(rid)
            if resp is None:
                continue
            for item_id in resp.output_item_ids:
                st = self.items.get(item_id)
                if st is not None:
                    yield resp, st

    def item_ms(self, item_id: str) -> float:
        """Milliseconds of assistant audio received for ``item_id``."""
        st = self.items.get(item_id)
        return st.audio_bytes / self.bytes_per_ms if st is not None else 0.0

    def truncate_point(self, item_id: str, played_ms: float) -> int | None:
        """The ``audio_end_ms`` to truncate ``item_id`` at after ``played_ms`` of it was
        heard, or None when no truncate should be sent: unknown/deleted item, not an
        assistant audio item, nothing played (never ``audio_end_ms=0``), already truncated
        at or before that point, or fully played with no more audio coming. Capped at the
        audio actually received, so the server cannot reject it as too long."""
        st = self.items.get(item_id)
        if st is None or st.audio_bytes == 0 or st.role != "assistant":
            return None
        received = st.audio_bytes / self.bytes_per_ms
        end = int(min(played_ms, received))
        if end <= 0:
            return None
        if st.truncated_ms is not None and st.truncated_ms <= end:
            return None
        resp = self.responses.get(st.response_id) if st.response_id else None
        if played_ms >= received and (resp is None or resp.done):
            return None  # everything was heard; nothing to cut
        return end

    def replay_items(self) -> list[Any]:
        """The conversation as protocol items to re-create on a fresh connection:
        user/system text (user audio as its transcript when known), assistant text or
        transcript (as heard: a truncated item's transcript is gone), function calls with
        their outputs. Items with nothing replayable are skipped."""
        out: list[Any] = []
        for item_id in self.order:
            st = self.items[item_id]
            item = st.item
            kind = st.type
            if kind == "function_call":
                out.append(
                    P.FunctionCallItem(
                        id=item_id,
                        call_id=item.call_id,
                        name=item.name,
                        arguments=item.arguments or "",
                    )
                )
            elif kind == "function_call_output":
                out.append(
                    P.FunctionCallOutputItem(id=item_id, call_id=item.call_id, output=item.output)
                )
            elif kind == "message":
                text = _message_text(st)
                if not text:
                    continue
                out.append(text_message(st.role or "user", text, item_id))
        return out

    def reset_connection(self) -> None:
        """Forget per-connection state (active response, audio) after a disconnect; the
        item history is kept for replay."""
        self.active_response_id = None
        self.audio_response_id = None
        self.audio_item_id = None
        for resp in self.responses.values():
            if resp.status == "in_progress":
                resp.status = "interrupted"
        self.calls_in_flight.clear()

    def clear_history(self) -> None:
        """Forget all items (before replaying them on a fresh connection)."""
        self.order.clear()
        self.items.clear()

    # ---------------------------------------------------------------- handlers
    def _insert(self, item: Any, previous_item_id: str | None) -> ItemState:
        item_id = item.id
        st = self.items.get(item_id)
        if st is None:
            st = ItemState(
                id=item_id, item=item, response_id=self._pending_owner.pop(item_id, None)
            )
            self.items[item_id] = st
        else:
            st.item = item
            if item_id in self.order:
                return st  # else it was known from audio deltas only
        if previous_item_id is None:
            self.order.insert(0, item_id)  # null = first ("root")
        else:
            try:
                idx = self.order.index(previous_item_id)
            except ValueError:
                self.order.append(item_id)
            else:
                self.order.insert(idx + 1, item_id)
        kind = getattr(item, "type", None)
        if kind == "function_call_output":
            self.calls_in_flight.pop(getattr(item, "call_id", None) or "", None)
        elif kind == "mcp_approval_response":
            request = item.approval_request_id or ""
            self.calls_in_flight.pop(request, None)
            asked = self.mcp_by_item.get(request)
            if asked is not None:
                asked.approve = item.approve
        _take_input_transcript(st)
        return st

    def _on_item_added(self, ev: Any) -> None:
        if ev.item is None or getattr(ev.item, "id", None) is None:
            return
        self._insert(ev.item, ev.previous_item_id)

    def _on_item_done(self, ev: Any) -> None:
        item = ev.item
        if item is None or getattr(item, "id", None) is None:
            return
        st = self.items.get(item.id)
        if st is None:
            st = self._insert(item, ev.previous_item_id)
        else:
            st.item = item
            _take_input_transcript(st)
        if st.role == "assistant":
            text = _content_text(item)
            if text is not None and st.truncated_ms is None:
                st.final_text = text

    def _on_item_retrieved(self, ev: Any) -> None:
        item = ev.item
        st = self.items.get(getattr(item, "id", None) or "")
        if st is not None:
            st.item = item

    def _on_item_deleted(self, ev: Any) -> None:
        if self.items.pop(ev.item_id, None) is not None and ev.item_id in self.order:
            self.order.remove(ev.item_id)

    def _on_item_truncated(self, ev: Any) -> None:
        st = self.items.get(ev.item_id)
        if st is not None:
            st.truncated_ms = ev.audio_end_ms
            st.final_text = ""  # the server drops the transcript (PROTOCOL_NOTES §5)

    def _on_transcription_completed(self, ev: Any) -> None:
        st = self.items.get(ev.item_id)
        if st is not None:
            st.input_transcript = ev.transcript

    def _on_response_created(self, ev: Any) -> None:
        rid = ev.response.id
        self.responses[rid] = ResponseState(id=rid)
        self.active_response_id = rid

    def _on_output_item_added(self, ev: Any) -> None:
        resp = self.responses.get(ev.response_id)
        item = ev.item
        item_id = getattr(item, "id", None)
        if resp is not None and item_id is not None and item_id not in resp.output_item_ids:
            resp.output_item_ids.append(item_id)
        st = self.items.get(item_id) if item_id else None
        if st is not None:
            st.response_id = ev.response_id
        elif item_id is not None:
            # out-of-band responses (conversation "none") never get conversation.item.added
            self._pending_owner[item_id] = ev.response_id
        if resp is not None and item_id is not None:
            self._mcp_item(resp, item)

    def _mcp_item(self, resp: ResponseState, item: Any) -> McpCall | None:
        """The :class:`McpCall` of an ``mcp_call`` / ``mcp_approval_request`` output item
        (made when first seen), None for other items."""
        kind = getattr(item, "type", None)
        if kind not in ("mcp_call", "mcp_approval_request"):
            return None
        call = self.mcp_by_item.get(item.id)
        if call is None:
            call = McpCall(
                item_id=item.id,
                name=item.name or "",
                server_label=item.server_label or "",
                status="in_progress" if kind == "mcp_call" else "approval_requested",
                approval_request_id=getattr(item, "approval_request_id", None),
                response_id=resp.id,
            )
            self.mcp_by_item[item.id] = call
            resp.mcp_calls.append(call)
        return call

    def _on_output_item_done(self, ev: Any) -> None:
        resp = self.responses.get(ev.response_id)
        item = ev.item
        if resp is None or getattr(item, "id", None) is None:
            return
        call = self._mcp_item(resp, item)
        if call is None:
            return
        if item.type == "mcp_call":
            if getattr(item, "error", None) is not None:
                call.status = "failed"
            elif call.status == "in_progress" and getattr(item, "output", None) is not None:
                call.status = "completed"
        elif call.approve is None and item.id not in self.calls_in_flight:
            request = ToolCall(
                call_id=item.id,
                name=call.name,
                arguments=item.arguments or "",
                item_id=item.id,
                response_id=ev.response_id,
                kind="mcp_approval",
                server_label=call.server_label,
            )
            self.calls_in_flight[item.id] = request
            resp.function_calls.append(request)

    def _on_mcp_call_ended(self, ev: Any) -> None:
        call = self.mcp_by_item.get(ev.item_id)
        if call is not None:
            call.status = "failed" if type(ev) is P.ResponseMcpCallFailed else "completed"

    def _on_audio_delta(self, ev: Any) -> None:
        n = self.last_delta_bytes = b64_decoded_len(ev.delta)
        st = self.items.get(ev.item_id)
        if st is None:
            st = ItemState(id=ev.item_id, item=None, response_id=ev.response_id)
            self.items[ev.item_id] = st  # not in order: out of band, or before item.added
        st.audio_bytes += n
        if st.response_id is None:
            st.response_id = ev.response_id
        self.audio_response_id = ev.response_id
        self.audio_item_id = ev.item_id
        self.audio_content_index = ev.content_index

    def _on_text_delta(self, ev: Any) -> None:
        st = self.items.get(ev.item_id)
        if st is not None:
            st.text_parts.append(ev.delta)

    def _on_transcript_done(self, ev: Any) -> None:
        st = self.items.get(ev.item_id)
        if st is not None and st.truncated_ms is None:
            st.final_text = ev.transcript

    def _on_text_done(self, ev: Any) -> None:
        st = self.items.get(ev.item_id)
        if st is not None:
            st.final_text = ev.text

    def _on_arguments_done(self, ev: Any) -> None:
        call = ToolCall(
            call_id=ev.call_id,
            name=ev.name,
            arguments=ev.arguments,
            item_id=ev.item_id,
            response_id=ev.response_id,
        )
        self.calls_in_flight[ev.call_id] = call
        resp = self.responses.get(ev.response_id)
        if resp is not None:
            resp.function_calls.append(call)

    def _on_response_done(self, ev: Any) -> None:
        r = ev.response
        resp = self.responses.get(r.id)
        if resp is None:
            resp = self.responses[r.id] = ResponseState(id=r.id)
        resp.status = r.status or "completed"
        resp.final = r
        for item in r.output or ():
            item_id = getattr(item, "id", None)
            if item_id and item_id not in resp.output_item_ids:
                resp.output_item_ids.append(item_id)
        if self.active_response_id == r.id:
            self.active_response_id = None

    def _on_session(self, ev: Any) -> None:
        s = ev.session
        if type(ev) is P.TranscriptionSessionUpdated and getattr(s, "type", None) is None:
            s = attrs.evolve(s, type="transcription")  # beta sessions have no type
        self.session = s
        expires = getattr(s, "expires_at", None)
        if expires is not None:
            self.expires_at = expires
        found = _output_format(s)
        if found is not None:
            self.output_codec, self.output_rate = found
            self.bytes_per_ms = self.output_rate * (1 if found[0] != "pcm16" else 2) / 1000.0


_G711 = {k: v for k, v in FORMAT_TO_BETA.items() if v.startswith("g711")}
_G711.update({v: v for v in _G711.values()})  # the beta spelling names itself


def _output_format(session: Any) -> tuple[str, int] | None:
    """``(codec, rate)`` of the session's output audio (``pcm16``, ``g711_ulaw`` or
    ``g711_alaw``), None when the session does not say."""
    try:
        fmt = session.audio.output.format
    except AttributeError:
        return None
    if fmt is None:
        return None
    g711 = _G711.get(getattr(fmt, "type", None) or "")
    if g711 is not None:
        return g711, 8000
    rate = getattr(fmt, "rate", None)
    if not isinstance(rate, int | float) or not rate > 0:
        rate = 24000  # absent, or nonsense (zero, negative): the protocol's only PCM rate
    return "pcm16", int(rate)


def _content_text(item: Any) -> str | None:
    for part in getattr(item, "content", None) or ():
        ptype = getattr(part, "type", None)
        if ptype in ("output_audio", "audio") and getattr(part, "transcript", None) is not None:
            return part.transcript
        if ptype in ("output_text", "text") and getattr(part, "text", None) is not None:
            return part.text
    return None


def _take_input_transcript(st: ItemState) -> None:
    for part in getattr(st.item, "content", None) or ():
        if getattr(part, "type", None) == "input_audio" and getattr(part, "transcript", None):
            st.input_transcript = part.transcript


def _message_text(st: ItemState) -> str:
    if st.role == "assistant":
        if st.truncated_ms is not None:
            return ""
        return st.text
    texts: list[str] = []
    for part in getattr(st.item, "content", None) or ():
        ptype = getattr(part, "type", None)
        if ptype in ("input_text", "text", "output_text") and part.text:
            texts.append(part.text)
        elif ptype in ("input_audio", "audio"):
            transcript = getattr(part, "transcript", None) or st.input_transcript
            if transcript:
                texts.append(transcript)
    return " ".join(texts)


_cs = ConversationState
_DISPATCH: dict[type, Callable[[ConversationState, Any], None]] = {
    P.SessionCreated: _cs._on_session,
    P.SessionUpdated: _cs._on_session,
    P.TranscriptionSessionUpdated: _cs._on_session,
    P.ConversationItemAdded: _cs._on_item_added,
    P.ConversationItemCreated: _cs._on_item_added,
    P.ConversationItemDone: _cs._on_item_done,
    P.ConversationItemRetrieved: _cs._on_item_retrieved,
    P.ConversationItemDeleted: _cs._on_item_deleted,
    P.ConversationItemTruncated: _cs._on_item_truncated,
    P.ConversationItemInputAudioTranscriptionCompleted: _cs._on_transcription_completed,
    P.ResponseCreated: _cs._on_response_created,
    P.ResponseOutputItemAdded: _cs._on_output_item_added,
    P.ResponseOutputAudioDelta: _cs._on_audio_delta,
    P.ResponseOutputAudioTranscriptDelta: _cs._on_text_delta,
    P.ResponseOutputTextDelta: _cs._on_text_delta,
    P.ResponseOutputAudioTranscriptDone: _cs._on_transcript_done,
    P.ResponseOutputTextDone: _cs._on_text_done,
    P.ResponseFunctionCallArgumentsDone: _cs._on_arguments_done,
    P.ResponseOutputItemDone: _cs._on_output_item_done,
    P.ResponseMcpCallCompleted: _cs._on_mcp_call_ended,
    P.ResponseMcpCallFailed: _cs._on_mcp_call_ended,
    P.ResponseDone: _cs._on_response_done,
}
