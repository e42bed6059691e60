"""The per-connection actor: one nursery, four kinds of task, bounded channels.

::

    websocket ─► receiver ─(parsed frames)─► control ─┬─► response runs ─┐
                                      (VAD, state,    │  (one task each,  │
                                       dispatch)      │   timed plans)    │
                 timers (expiry, close-after,         │                   │
                 idle timeout) ───────────────────────┴───────────────────┴─► outbox ─► sender ─► websocket

- ``receiver`` only reads frames, turns them into dicts (or a bad-frame marker) and
  stamps the receive time; it never blocks on slow work, so pings keep flowing.
- ``control`` owns the conversation state and the input audio buffer / VAD, and handles
  client events strictly in arrival order.
- each response runs in its own task, sleeping until the absolute deadlines of its plan
  (:mod:`.responder` + :mod:`.latency`) and putting events into the outbox.
- ``sender`` is the only writer to the socket; it stamps the actual send time (ground
  truth) and performs closes. Sending never sleeps, so emission times are exactly the
  plan's deadlines -- except during a scheduled server-wide freeze, when the sender
  holds each frame (in order) until the freeze ends; receiving, VAD and the plans go
  on, and the ground truth's ``actual`` times show the hold.

Any failure ends this connection only: the server logs it, counts it and goes on. Bad
client events are answered with ``error`` events and counted; only the first
:data:`REFUSALS_LOGGED` per connection are logged as warnings, the rest in one line when
the connection ends.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from orchestrator.protocol import Dialect, new_id
from orchestrator.protocol.beta import FORMAT_TO_BETA

from .defaults import RATE_LIMIT_REQUESTS, RATE_LIMIT_TOKENS, conversation_created, default_session
from .errors import (
    ClientError,
    error_event,
    invalid_type,
    invalid_value,
    missing_parameter,
    unknown_parameter,
)
from .faults import FAULT_CLOSE_CODE, ConnectionFaults, ResponseFaults
from .latency import plan_timing
from .nulls import drop_unset_nulls
from .responder import PlannedCall, ResponseSpec, ResponseStream, Step, make_sentence, new_call_id
from .session_update import response_params
from .state import Conversation, item_text, normalize_item
from .tools import ToolCall, decide_tool_calls
from .vad import InputAudio
from .wire import encode, render

if TYPE_CHECKING:  # avoids an import cycle
    from .server import MockServer

log = logging.getLogger("orchestrator.mockserver")

OUTBOX_SIZE = 256
INBOX_SIZE = 64
CLOSE_GRACE_S = 2.0
#: Refused client events logged as a WARNING per connection; later ones are logged at
#: DEBUG only, counted, and summed up in one WARNING when the connection ends (a client
#: that sends thousands of bad frames must not flood the log; ``stats.client_errors``
#: has the count of every refusal by code).
REFUSALS_LOGGED = 3

#: client event type -> allowed top-level fields besides ``type`` / ``event_id``
CLIENT_EVENTS: dict[str, tuple[str, ...]] = {
    "session.update": ("session",),
    "input_audio_buffer.append": ("audio",),
    "input_audio_buffer.commit": (),
    "input_audio_buffer.clear": (),
    "conversation.item.create": ("item", "previous_item_id"),
    "conversation.item.retrieve": ("item_id",),
    "conversation.item.truncate": ("item_id", "content_index", "audio_end_ms"),
    "conversation.item.delete": ("item_id",),
    "response.create": ("response",),
    "response.cancel": ("response_id",),
    "output_audio_buffer.clear": ("response_id",),
}

SERVER_ERROR_MESSAGE = (
    "The server had an error while processing your request. Sorry about that! (injected fault)"
)


@attrs.frozen
class _Frame:
    """One received client frame: parsed JSON object, or a framing problem."""

    t: float
    data: dict[str, Any] | None
    error: ClientError | None = None


@attrs.frozen
class _Close:
    code: int
    reason: str


Hook = Callable[[float], None] | None


@attrs.define(eq=False)
class _Run:
    """A response in flight: its plan, anchor, drawn faults and ground-truth record."""

    response_id: str
    in_conversation: bool
    stream: ResponseStream
    anchor: float
    faults: ResponseFaults
    record: dict[str, Any]
    #: ``previous_item_id`` of the output item the response added last
    prev_item: str | None = None
    cancel_reason: str | None = None
    wake: trio.Event = attrs.field(factory=trio.Event)

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self.wake.set()


class ConnectionActor:
    """Serves one accepted websocket until either side closes it.

    Resource handling: :meth:`run` owns the connection; when it returns the socket is
    closed (by the client, by a server close, or abortively on cancellation).
    Error handling: bad client input becomes ``error`` events; unexpected exceptions
    propagate out of :meth:`run` to the server, which logs and counts them.
    """

    def __init__(
        self,
        ws: WebSocketConnection,
        server: MockServer,
        *,
        index: int,
        dialect: Dialect,
        model: str,
    ) -> None:
        self.ws = ws
        self.server = server
        self.config = server.config
        self.stats = server.stats
        self.index = index
        self.dialect = dialect
        self.rng = random.Random(f"{self.config.seed}:conn:{index}")
        self.faults = ConnectionFaults(
            self.config.faults, random.Random(f"{self.config.seed}:faults:{index}")
        )
        session = default_session(
            session_id=new_id("sess_"),
            model=model,
            expires_at=int(time.time() + self.config.faults.session_max_s),
        )
        self.conv = Conversation(session=session, dialect=dialect)
        hears = server.hearing is not None and server.hearing.has_clips()
        self.input = InputAudio(session["audio"]["input"], keep_turns=hears)
        self.session_id: str = session["id"]
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[str, Hook] | _Close](
            OUTBOX_SIZE
        )
        self._in_send, self._in_recv = trio.open_memory_channel[_Frame](INBOX_SIZE)
        self._active: _Run | None = None
        self._runs: dict[str, _Run] = {}
        self._transcripts: dict[str, str] = {}
        self._speech_item: str | None = None
        #: a VAD turn that ended while a response was active: its input item id, answered
        #: when that response ends (see :meth:`_speech_stopped`)
        self._pending_turn: str | None = None
        self._turns = 0
        self._greeted = False
        self._closing = False
        self._idle_deadline = math.inf
        self._timer_changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.started_at = 0.0
        #: client events refused with an ``error`` event on this connection
        self.refusals = 0

    # -- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection. Returns when it is closed; cancellation aborts it."""
        self.started_at = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.emit({"type": "session.created", "session": self.conv.session})
                if self.dialect is Dialect.BETA:  # beta only; GA never sends it
                    await self.emit(conversation_created(self.conv.conversation_id))
                nursery.start_soon(self._sender)
                nursery.start_soon(self._receiver)
                nursery.start_soon(self._control)
                nursery.start_soon(self._timers)
                if self.config.ping_interval_s:
                    nursery.start_soon(self._pinger, self.config.ping_interval_s)
        finally:
            if self.refusals > REFUSALS_LOGGED:
                log.warning(
                    "connection %d: %d more refused client events not logged above "
                    "(%d in all on this connection)",
                    self.index,
                    self.refusals - REFUSALS_LOGGED,
                    self.refusals,
                )
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE_S):
                await self.ws.aclose()

    def _stop(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def close(self, code: int, reason: str) -> None:
        """Close after everything already queued has been sent."""
        if self._closing:
            return
        self._closing = True
        self.stats.closes[code] += 1
        await self._out_send.send(_Close(code, reason))

    # -- output -----------------------------------------------------------------------
    async def emit(self, event: dict[str, Any], hook: Hook = None) -> dict[str, Any] | None:
        """Queue a GA-shaped event (rendered for this connection's dialect).

        Returns the rendered event, or None if the dialect has no such event. Waits
        (back-pressure) when the outbox is full.
        """
        wire = render(event, self.dialect)
        if wire is None:
            return None
        wire["event_id"] = new_id("event_")
        await self._out_send.send((encode(wire), hook))
        return wire

    async def _sender(self) -> None:
        async for out in self._out_recv:
            await self.server.hold_while_frozen()
            if isinstance(out, _Close):
                with trio.move_on_after(CLOSE_GRACE_S):
                    await self.ws.aclose(out.code, out.reason)
                self._stop()
                return
            text, hook = out
            if hook is not None:
                hook(trio.current_time())
            try:
                await self.ws.send_message(text)
            except ConnectionClosed:
                self._stop()
                return
            self.stats.events_sent += 1
            self.stats.bytes_sent += len(text)

    # -- input ------------------------------------------------------------------------
    async def _receiver(self) -> None:
        with self._in_send:
            while True:
                try:
                    message = await self.ws.get_message()
                except ConnectionClosed as exc:
                    reason = exc.reason
                    if reason is not None and reason.code == 1009:
                        self.stats.client_errors["message_too_big"] += 1
                        log.warning(
                            "connection %d: oversized message, closed with 1009", self.index
                        )
                    self._stop()
                    return
                self.stats.events_received += 1
                now = trio.current_time()
                if isinstance(message, bytes):
                    err = ClientError(
                        "invalid_event",
                        "Expected a text WebSocket message; binary frames are not supported.",
                        None,
                    )
                    await self._in_send.send(_Frame(now, None, err))
                    continue
                try:
                    data = orjson.loads(message)
                except orjson.JSONDecodeError as exc:
                    err = ClientError(
                        "invalid_json",
                        f"Invalid event: failed to parse JSON value. {exc.msg} at position {exc.pos}.",
                        None,
                    )
                    await self._in_send.send(_Frame(now, None, err))
                    continue
                if not isinstance(data, dict):
                    err = invalid_type("event", "an object", data)
                    err.param = None
                    await self._in_send.send(_Frame(now, None, err))
                    continue
                await self._in_send.send(_Frame(now, data))

    async def _control(self) -> None:
        async for frame in self._in_recv:
            data = frame.data
            client_event_id = None
            etype = None
            try:
                if frame.error is not None:
                    raise frame.error
                assert data is not None
                eid = data.get("event_id")
                client_event_id = eid if isinstance(eid, str) else None
                etype = data.get("type")
                if etype is None:
                    raise missing_parameter("type")
                if not isinstance(etype, str):
                    raise invalid_type("type", "a string", etype)
                allowed = CLIENT_EVENTS.get(etype)
                if allowed is None:
                    raise invalid_value("type", etype, tuple(CLIENT_EVENTS))
                data = drop_unset_nulls(etype, data)
                for key in data:
                    if key not in allowed and key not in ("type", "event_id"):
                        raise unknown_parameter(key)
                await self._dispatch(etype, data, frame.t)
            except ClientError as err:
                self.stats.client_errors[err.code or "null"] += 1
                self._log_refusal(etype, client_event_id, err)
                await self.emit(err.to_event(client_event_id))

    def _log_refusal(self, etype: object, event_id: str | None, err: ClientError) -> None:
        """Log a refused client event: WARNING for the first :data:`REFUSALS_LOGGED` of
        this connection, DEBUG after that (summed up when the connection ends)."""
        self.refusals += 1
        last = self.refusals == REFUSALS_LOGGED
        log.log(
            logging.WARNING if self.refusals <= REFUSALS_LOGGED else logging.DEBUG,
            "connection %d: refused %s (event_id=%s): %s %s%s",
            self.index,
            etype if isinstance(etype, str) else "frame",
            event_id,
            err.code,
            err.param,
            "; further refusals on this connection are counted and reported when it closes"
            if last
            else "",
        )

    async def _dispatch(self, etype: str, data: dict[str, Any], t_recv: float) -> None:
        if etype == "input_audio_buffer.append":
            if "audio" not in data:
                raise missing_parameter("audio")
            samples = self.input.decode(data["audio"])
            for vad_event in self.input.append(samples):
                if vad_event.kind == "speech_started":
                    await self._speech_started(vad_event.audio_ms)
                else:
                    await self._speech_stopped(vad_event.audio_ms)
        elif etype == "session.update":
            if "session" not in data:
                raise missing_parameter("session")
            await self.emit(self.conv.update_session(data["session"]))
            self.input.configure(self.conv.session["audio"]["input"])
            self._rearm_idle()
            if self.config.greeting is not None and not self._greeted and self._active is None:
                # the agent speaks first once the caller's session is set up
                self._greeted = True
                now, greeting = trio.current_time(), self.config.greeting
                await self._start_response(None, now, "session.updated", None, greeting)
        elif etype == "input_audio_buffer.commit":
            ms = self.input.commit()
            await self._commit_user_audio(ms, self._speech_item or new_id("item_"))
        elif etype == "input_audio_buffer.clear":
            self.input.clear()
            self._speech_item = None
            await self.emit({"type": "input_audio_buffer.cleared"})
        elif etype == "conversation.item.create":
            if "item" not in data:
                raise missing_parameter("item")
            for event in self.conv.create_item(data["item"], data.get("previous_item_id")):
                await self.emit(event)
        elif etype == "conversation.item.retrieve":
            await self.emit(self.conv.retrieve_item(data.get("item_id")))
        elif etype == "conversation.item.delete":
            await self.emit(self.conv.delete_item(data.get("item_id")))
        elif etype == "conversation.item.truncate":
            for key in ("item_id", "content_index", "audio_end_ms"):
                if key not in data:
                    raise missing_parameter(key)
            event = self.conv.truncate_item(
                data["item_id"], data["content_index"], data["audio_end_ms"]
            )
            for run in self._runs.values():  # an item of a response still streaming
                if run.stream.truncate(event["item_id"], event["audio_end_ms"]):
                    break
            await self.emit(event)
        elif etype == "response.create":
            await self._response_create(data.get("response"), t_recv)
        elif etype == "response.cancel":
            rid = data.get("response_id")
            if rid is not None and not isinstance(rid, str):
                raise invalid_type("response_id", "a string", rid)
            run = self._runs.get(rid) if rid else self._active
            if run is None or run.cancel_reason is not None:
                raise ClientError(
                    "response_cancel_not_active",
                    "Cancellation failed: no active response found",
                    None,
                )
            run.cancel("client_cancelled")
        # output_audio_buffer.clear: WebRTC/SIP only; a no-op on a websocket

    # -- VAD turns --------------------------------------------------------------------
    async def _speech_started(self, audio_ms: int) -> None:
        self._speech_item = new_id("item_")
        self._idle_deadline = math.inf
        await self.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_ms,
                "item_id": self._speech_item,
            }
        )
        td = self.input.turn_detection or {}
        if td.get("interrupt_response") and self._active is not None:
            self._active.cancel("turn_detected")

    async def _speech_stopped(self, audio_ms: int) -> None:
        item_id = self._speech_item or new_id("item_")
        anchor = trio.current_time()
        await self.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_ms,
                "item_id": item_id,
            }
        )
        ms = self.input.take()
        await self._commit_user_audio(ms, item_id)
        td = self.input.turn_detection or {}
        if not td.get("create_response"):
            return
        if self._active is None:
            await self._start_response(None, anchor, "speech_stopped", item_id)
        else:
            # The turn ended while a response is still running (interrupt_response false,
            # or the barge-in cancel is still closing): the turn is committed above and
            # answered as soon as that response is done, never dropped.
            self._pending_turn = item_id

    async def _start_pending_turn(self) -> None:
        """Answer a VAD turn that ended while the previous response was running."""
        item_id, self._pending_turn = self._pending_turn, None
        if item_id is None or self._active is not None or self._closing:
            return
        await self._start_response(None, trio.current_time(), "queued_turn", item_id)

    async def _commit_user_audio(
        self, ms: float, item_id: str, previous: str | None = None
    ) -> None:
        self._speech_item = None
        prev = self.conv.last_item_id() if previous is None else previous
        await self.emit(
            {"type": "input_audio_buffer.committed", "previous_item_id": prev, "item_id": item_id}
        )
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.conv.insert(item)
        self.conv.audio_ms[item_id] = int(ms)
        await self.emit({"type": "conversation.item.added", "previous_item_id": prev, "item": item})
        await self.emit({"type": "conversation.item.done", "previous_item_id": prev, "item": item})
        transcript = self._spoken_transcript(ms)
        self._transcripts[item_id] = transcript
        transcription = self.conv.session["audio"]["input"]["transcription"]
        if transcription is not None and self._nursery is not None:
            self._nursery.start_soon(
                self._transcribe, item_id, transcript, ms, transcription["model"]
            )

    def _spoken_transcript(self, ms: float) -> str:
        """What the user said in the turn just committed: the cached caller line heard in
        its audio, else the scripted hint of this turn, else a generated sentence."""
        scripted = self.config.spoken_transcripts
        turn = self._turns
        self._turns += 1
        audio = self.input.turn_audio()
        if audio is not None and self.server.hearing is not None:
            heard = self.server.hearing.hear(audio, self.input.rate)
            if heard is not None:
                return heard
        if scripted:
            return scripted[turn % len(scripted)]
        return make_sentence(self.rng, max(1, round(ms / 400)))

    async def _transcribe(self, item_id: str, transcript: str, ms: float, model: str) -> None:
        await trio.sleep(self.config.latency.transcription_ms.sample(self.rng) / 1000.0)
        if (failed := self.faults.transcription_failure(item_id)) is not None:
            self.stats.faults["transcription_failed"] += 1
            await self.emit(failed)
            return
        for piece in transcript.split(" "):
            if piece:
                await self.emit(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": " " + piece,
                        "obfuscation": "x" * max(1, 12 - len(piece)),
                    }
                )
        if "whisper" in model:
            usage: dict[str, Any] = {"type": "duration", "seconds": max(1, round(ms / 1000))}
        else:
            audio_tokens = max(1, round(ms / 100))
            text_tokens = max(1, len(transcript) // 4)
            usage = {
                "type": "tokens",
                "total_tokens": audio_tokens + text_tokens,
                "input_tokens": audio_tokens,
                "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                "output_tokens": text_tokens,
            }
        idx = self.conv.find(item_id)
        if idx is not None:
            item = self.conv.items[idx]
            self.conv.items[idx] = {
                **item,
                "content": [{"type": "input_audio", "transcript": transcript}],
            }
        await self.emit(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": usage,
            }
        )

    # -- responses --------------------------------------------------------------------
    async def _response_create(self, raw: object, t_recv: float) -> None:
        params = response_params(raw, self.conv.session, beta=self.dialect is Dialect.BETA)
        if params["conversation"] != "none" and self._active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._active.response_id}. "
                "Wait until the response is finished before creating a new one.",
                None,
            )
        await self._start_response(params, t_recv, "response.create", None)

    def _context(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if params["input"] is None:
            return self.conv.items
        items = []
        for i, raw in enumerate(params["input"]):
            if isinstance(raw, dict) and raw.get("type") == "item_reference":
                idx = self.conv.find(str(raw.get("id")))
                if idx is None:
                    raise invalid_value(f"response.input[{i}].id", str(raw.get("id")))
                items.append(self.conv.items[idx])
            else:
                try:
                    items.append(normalize_item(raw, self.dialect)[0])
                except ClientError as err:
                    err.param = f"response.input[{i}]" + (
                        f".{err.param.removeprefix('item.')}"
                        if err.param and err.param.startswith("item.")
                        else ""
                    )
                    raise
        return items

    def _answer(
        self, params: dict[str, Any], context: list[dict[str, Any]], words: int
    ) -> tuple[str, list[ToolCall]]:
        """Decide the answer: (text, function calls).

        After function outputs the answer mentions every output of the latest round
        (the trailing outputs, skipping the calls between them), in conversation order.
        """
        last = None
        for i in range(len(context) - 1, -1, -1):
            item = context[i]
            if item.get("type") == "function_call_output" or item.get("role") == "user":
                last = i
                break
        if last is None:
            return make_sentence(self.rng, words), []
        if context[last].get("type") == "function_call_output":
            outputs: list[str] = []
            for item in reversed(context[: last + 1]):
                if item.get("type") == "function_call_output":
                    outputs.append(" ".join(str(item.get("output", "")).split()[:60]))
                elif item.get("type") != "function_call":
                    break
            return "Here is what I found: " + "; ".join(reversed(outputs)), []
        user = context[last]
        text = item_text(user) or self._transcripts.get(user["id"], "")
        calls = decide_tool_calls(
            text,
            params["tools"],
            params["tool_choice"],
            self.config.tool_rules,
            name_matching=self.config.tool_name_matching,
        )
        return make_sentence(self.rng, words), calls

    async def _start_response(
        self,
        params: dict[str, Any] | None,
        anchor: float,
        anchor_kind: str,
        input_item: str | None,
        say: str | None = None,
    ) -> None:
        """Plan and start a response; ``say``: its text, decided already (a greeting)."""
        if params is None:
            params = response_params(None, self.conv.session, beta=self.dialect is Dialect.BETA)
        context = self._context(params)
        latency = self.config.latency
        timing = plan_timing(latency, self.rng)
        if say is None:
            text, calls = self._answer(params, context, timing.words)
        else:
            text, calls = say, []
        call = calls[0] if calls else None
        in_conv = params["conversation"] != "none"
        response_id = new_id("resp_")
        codec = FORMAT_TO_BETA[params["format"]["type"]]
        audio_bank = self.server.audio_bank
        speaks = params["modality"] == "audio" and not calls
        lead = audio_bank.silence(codec, timing.leading_silence_ms) if speaks else []
        max_tokens = params["max_output_tokens"]
        spec = ResponseSpec(
            response_id=response_id,
            conversation_id=self.conv.conversation_id if in_conv else None,
            item_id=new_id("item_"),
            modality=params["modality"],
            text=text,
            tool_call=call,
            call_id=new_call_id(),
            audio_chunks=audio_bank.chunks(codec),
            chunk_offset=self.rng.choice(audio_bank.onsets(codec)),
            chunk_ms=latency.audio_chunk_ms,
            codec=codec,
            timing=timing,
            response_object={
                "object": "realtime.response",
                "id": response_id,
                "status": "in_progress",
                "status_details": None,
                "output": [],
                "conversation_id": self.conv.conversation_id if in_conv else None,
                "output_modalities": [params["modality"]],
                "max_output_tokens": max_tokens,
                "audio": {"output": {"format": params["format"], "voice": params["voice"]}},
                "usage": None,
                "metadata": params["metadata"],
                "_temperature": params["temperature"],
            },
            input_tokens=self.conv.input_tokens(),
            max_words=max_tokens if isinstance(max_tokens, int) else None,
            more_calls=tuple(PlannedCall(c, new_id("item_"), new_call_id()) for c in calls[1:]),
            lead_chunks=lead,
        )
        stream = ResponseStream(spec, ms_per_word=latency.speech_ms_per_word)
        faults = self.faults.for_response(stream.n_deltas())
        record: dict[str, Any] = {
            "connection": self.index,
            "session_id": self.session_id,
            "conversation_id": spec.conversation_id,
            "response_id": response_id,
            "item_ids": stream.item_ids,
            "input_item_id": input_item,
            "anchor": anchor_kind,
            "anchor_time": anchor,
            "kind": "answer" if say is None else "greeting",
            "created": None,
            "first_delta": None,
            "done": None,
            "status": None,
            "reason": None,
            "modality": params["modality"],
            "tool_call": {"name": call.name, "arguments": call.arguments} if call else None,
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in calls],
            "text": stream.text if call is None else "",
            "audio_ms": 0,
            "leading_silence_ms": sum(ms for _, ms in lead),
            "stall_ms": 0.0,
            "fault": None,
        }
        run = _Run(response_id, in_conv, stream, anchor, faults, record)
        self._runs[response_id] = run
        if in_conv:
            self._active = run
        self._idle_deadline = math.inf
        self.stats.responses_started += 1
        assert self._nursery is not None
        self._nursery.start_soon(self._run_response, run)

    async def _run_response(self, run: _Run) -> None:
        """Play the response; then answer a VAD turn that ended while it ran."""
        try:
            await self._play(run)
        finally:
            self._runs.pop(run.response_id, None)
            if self._active is run:
                self._active = None
        if self._pending_turn is not None and run.in_conversation:
            await self._start_pending_turn()

    async def _play(self, run: _Run) -> None:
        faults, record = run.faults, run.record
        shift = 0.0
        for step in run.stream.steps():
            if step.delta_index is not None:
                if faults.stall_at_delta == step.delta_index and not record["stall_ms"]:
                    shift += faults.stall_s
                    record["stall_ms"] = faults.stall_s * 1000.0
                    self.stats.faults["stall"] += 1
                if faults.close_at_delta == step.delta_index:
                    record["fault"] = "close"
                    self.stats.faults["close_probability"] += 1
                    await self.close(FAULT_CLOSE_CODE, "fault: connection dropped mid-response")
                    return
                if faults.error_at_delta == step.delta_index:
                    record["fault"] = "error"
                    self.stats.faults["error_probability"] += 1
                    error = {
                        "type": "server_error",
                        "code": "server_error",
                        "message": SERVER_ERROR_MESSAGE,
                    }
                    await self.emit(error_event(**error))
                    await self._finish(run, "failed", {"type": "failed", "error": error})
                    return
            deadline = run.anchor + step.at + shift
            if run.cancel_reason is None and deadline > trio.current_time():
                with trio.move_on_at(deadline):
                    await run.wake.wait()
            # once the closing events have begun the response ends as planned
            if run.cancel_reason is not None and not run.stream.finished:
                await self._finish(
                    run, "cancelled", {"type": "cancelled", "reason": run.cancel_reason}
                )
                return
            await self._emit_step(run, step, deadline)

    async def _finish(self, run: _Run, status: str, details: dict[str, Any]) -> None:
        now = trio.current_time()
        run.record["reason"] = details.get("reason")
        for step in run.stream.finish(now - run.anchor, status, details):
            await self._emit_step(run, step, now)

    async def _emit_step(self, run: _Run, step: Step, intended: float) -> None:
        event = step.event
        etype = event["type"]
        if step.effect == "add_part":
            if run.in_conversation:
                self.conv.open_part(event["item_id"], event["part"])
        elif step.effect is not None:
            if not run.in_conversation:
                return  # out-of-band responses never touch the conversation
            item = event["item"]
            if step.effect == "add_item":
                run.prev_item = self.conv.insert(item)
            else:
                self.conv.replace(item)
                if step.audio_ms:
                    self.conv.has_assistant_audio = True
            event["previous_item_id"] = run.prev_item
        if (
            etype == "response.output_audio.delta"
            and run.in_conversation
            and run.stream.truncated_ms is None
        ):
            # a truncated item keeps the length it was cut to
            self.conv.audio_ms[event["item_id"]] = step.audio_ms
        hook: Hook = None
        entry: dict[str, Any] | None = None
        if step.mark is not None:
            record = run.record
            entry = record[step.mark] = {"intended": intended, "actual": None}

            def hook(t: float, entry: dict[str, Any] = entry) -> None:
                entry["actual"] = t

            if step.mark == "done":
                record["status"] = event["response"]["status"]
                record["audio_ms"] = step.audio_ms

                def hook(t: float, entry: dict[str, Any] = entry) -> None:
                    entry["actual"] = t
                    self.server.groundtruth.write(record)

        wire = await self.emit(event, hook)
        if step.mark == "first_delta":
            assert entry is not None and wire is not None  # every delta has a wire form
            entry["type"] = wire["type"]
        if etype == "response.created" and self.dialect is Dialect.BETA:
            await self._rate_limits(event["response"])
        if etype == "response.done":
            self.stats.responses_done[event["response"]["status"]] += 1
            if self.dialect is Dialect.GA:
                await self._rate_limits(event["response"])
            if run.in_conversation:
                self._arm_idle(step.audio_ms)
            if self.faults.response_finished():
                self.stats.faults["close_after_responses"] += 1
                await self.close(
                    FAULT_CLOSE_CODE, f"fault: closed after {self.faults.responses_done} responses"
                )

    async def _rate_limits(self, response: dict[str, Any]) -> None:
        used = (response.get("usage") or {}).get("total_tokens", 0)
        limits = [
            {
                "name": "tokens",
                "limit": RATE_LIMIT_TOKENS,
                "remaining": RATE_LIMIT_TOKENS - used,
                "reset_seconds": round(used * 60 / RATE_LIMIT_TOKENS, 3),
            }
        ]
        if self.dialect is Dialect.BETA:
            limits.insert(
                0,
                {
                    "name": "requests",
                    "limit": RATE_LIMIT_REQUESTS,
                    "remaining": RATE_LIMIT_REQUESTS - 1,
                    "reset_seconds": 0.003,
                },
            )
        await self.emit({"type": "rate_limits.updated", "rate_limits": limits})

    async def _pinger(self, interval: float) -> None:
        """Send a websocket PING every ``interval`` seconds (the service does ~20.3 s)."""
        while True:
            await trio.sleep(interval)
            await self.server.hold_while_frozen()
            try:
                await self.ws.ping()  # returns when the client's PONG arrives
            except ConnectionClosed:
                return
            self.stats.pongs_received += 1

    # -- timers -----------------------------------------------------------------------
    def _arm_idle(self, audio_ms: int) -> None:
        td = self.input.turn_detection
        if td is None or td.get("type") != "server_vad" or td.get("idle_timeout_ms") is None:
            return
        self._idle_deadline = (
            trio.current_time() + audio_ms / 1000.0 + td["idle_timeout_ms"] / 1000.0
        )
        self._poke_timers()

    def _rearm_idle(self) -> None:
        td = self.input.turn_detection
        if td is None or td.get("idle_timeout_ms") is None:
            self._idle_deadline = math.inf
        self._poke_timers()

    def _poke_timers(self) -> None:
        self._timer_changed.set()
        self._timer_changed = trio.Event()

    async def _timers(self) -> None:
        faults = self.config.faults
        expiry = self.started_at + faults.session_max_s
        close_after = (
            self.started_at + faults.close_after_s if faults.close_after_s is not None else math.inf
        )
        while True:
            changed = self._timer_changed
            deadline = min(expiry, close_after, self._idle_deadline)
            with trio.move_on_at(deadline):
                await changed.wait()
                continue
            now = trio.current_time()
            if now >= expiry:
                minutes = faults.session_max_s / 60
                message = f"Your session hit the maximum duration of {minutes:g} minutes."
                await self.emit(error_event("invalid_request_error", "session_expired", message))
                await self.close(1001, message)
                return
            if now >= close_after:
                self.stats.faults["close_after_s"] += 1
                await self.close(
                    FAULT_CLOSE_CODE, f"fault: closed after {faults.close_after_s:g} s"
                )
                return
            if now >= self._idle_deadline:
                self._idle_deadline = math.inf
                await self._idle_timeout()

    async def _idle_timeout(self) -> None:
        if self._active is not None:
            return
        item_id = new_id("item_")
        end = self.input.audio_ms
        start = max(0, int(end - self.input.buffered_ms))
        await self.emit(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": start,
                "audio_end_ms": end,
                "item_id": item_id,
            }
        )
        system = {
            "id": new_id("item_"),
            "type": "message",
            "status": "completed",
            "role": "system",
            "content": [
                {
                    "type": "input_text",
                    "text": "No user speech was detected for a while. Please review the recorded audio.",
                }
            ],
        }
        prev = self.conv.insert(system)
        await self.emit(
            {"type": "conversation.item.added", "previous_item_id": prev, "item": system}
        )
        await self.emit(
            {"type": "conversation.item.done", "previous_item_id": prev, "item": system}
        )
        anchor = trio.current_time()
        ms = self.input.take()
        await self._commit_user_audio(ms, item_id, previous=system["id"])
        self._transcripts[item_id] = ""
        await self._start_response(None, anchor, "idle_timeout", item_id)
