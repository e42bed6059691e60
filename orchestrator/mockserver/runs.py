"""Response runs: one task per response, playing its plan on the clock.

:func:`start_response` plans a response (:mod:`.planning`, :mod:`.latency`), draws
its faults and opens its :class:`~.groundtruth.GroundTruthRecord`, then starts
:func:`run_response` in the connection's nursery. The run sleeps until the absolute
deadline of each :class:`~.responder.Step` (anchor + offset + any injected stall),
applies the step's effect on the conversation and queues the event; a cancel (client
``response.cancel`` or a barge-in) wakes it early and ends the response with the
closing events of a partial one. Mid-response faults (stall, close, error) fire at
their drawn delta. The ground-truth marks are stamped by the sender when the frame
is handed to the websocket; the record is written when ``response.done`` leaves.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from orchestrator.protocol import Dialect

from .errors import ClientError, error_event
from .faults import FAULT_CLOSE_CODE
from .groundtruth import GroundTruthRecord, Mark
from .inflight import Run
from .latency import plan_timing
from .mcp import McpDecision, mcp_record, plan_mcp_calls
from .planning import decide_answer, plan_response, response_context
from .port import ConnectionPort, Hook
from .responder import ResponseStream, Step
from .session_update import response_params

TRANSCRIPTION_REFUSAL = (
    "Responses are not supported in a transcription session (session.type is "
    "'transcription'); update the session to type 'realtime' to create responses."
)
SERVER_ERROR_MESSAGE = (
    "The server had an error while processing your request. Sorry about that! (injected fault)"
)


async def response_create(actor: ConnectionPort, raw: object, t_recv: float) -> None:
    """Answer ``response.create`` (``raw``: its ``response`` field) received at ``t_recv``.

    A transcription session has no responses: refused with an ``invalid_request_error``
    naming the session type (the real service's wording was not captured)."""
    if actor.conv.transcription:
        raise ClientError(None, TRANSCRIPTION_REFUSAL, "type")
    params = response_params(raw, actor.conv.session, beta=actor.dialect is Dialect.BETA)
    if params["conversation"] != "none" and actor.active is not None:
        raise ClientError(
            "conversation_already_has_active_response",
            f"Conversation already has an active response in progress: {actor.active.response_id}. "
            "Wait until the response is finished before creating a new one.",
            None,
        )
    await start_response(actor, params, t_recv, "response.create", None)


async def start_response(
    actor: ConnectionPort,
    params: dict[str, Any] | None,
    anchor: float,
    anchor_kind: str,
    input_item: str | None,
    say: str | None = None,
) -> None:
    """Plan and start a response; ``say``: its text, decided already (a greeting)."""
    if params is None:
        params = response_params(None, actor.conv.session, beta=actor.dialect is Dialect.BETA)
    context = response_context(actor.conv, params, actor.dialect)
    config = actor.config
    latency = config.latency
    timing = plan_timing(latency, actor.rng)
    mcp: list[McpDecision] = []
    if say is None:
        text, calls, mcp = decide_answer(
            params,
            context,
            timing.words,
            actor.rng,
            transcripts=actor.transcripts,
            tool_rules=config.tool_rules,
            name_matching=config.tool_name_matching,
            mcp_tools=config.mcp_tools,
        )
    else:
        text, calls = say, []
    mcp_calls = plan_mcp_calls(
        mcp,
        seed=config.seed,
        duration_s=lambda: latency.mcp_call_ms.sample(actor.rng) / 1000.0,
        fails=actor.faults.mcp_call_fails,
    )
    spec = plan_response(
        params,
        text=text,
        calls=calls,
        mcp_calls=mcp_calls,
        timing=timing,
        conv=actor.conv,
        audio_bank=actor.server.audio_bank,
        latency=latency,
        rng=actor.rng,
    )
    stream = ResponseStream(spec, ms_per_word=latency.speech_ms_per_word, rng=actor.obfuscation_rng)
    faults = actor.faults.for_response(stream.n_deltas())
    record = GroundTruthRecord(
        connection=actor.index,
        session_id=actor.session_id,
        conversation_id=spec.conversation_id,
        response_id=spec.response_id,
        item_ids=stream.item_ids,
        input_item_id=input_item,
        anchor=anchor_kind,
        anchor_time=anchor,
        kind="answer" if say is None else "greeting",
        modality=params["modality"],
        tool_calls=[{"name": c.name, "arguments": c.arguments} for c in calls],
        text=stream.text if spec.speaks else "",
        mcp_calls=[mcp_record(c) for c in mcp_calls],
        leading_silence_ms=sum(ms for _, ms in spec.lead_chunks),
    )
    in_conv = spec.conversation_id is not None
    run = Run(spec.response_id, in_conv, stream, anchor, faults, record)
    run.refusal = actor.server.rate_limiter.admit(
        actor.conv.session.get("model") or config.default_model, trio.current_time()
    )
    actor.runs[spec.response_id] = run
    if in_conv:
        actor.active = run
    actor.idle_deadline = math.inf
    actor.stats.responses_started += 1
    assert actor.nursery is not None
    actor.nursery.start_soon(run_response, actor, run)


async def run_response(actor: ConnectionPort, run: Run) -> None:
    """Play the response; then answer a VAD turn that ended while it ran."""
    try:
        await _play(actor, run)
    finally:
        actor.runs.pop(run.response_id, None)
        if actor.active is run:
            actor.active = None
    if actor.pending_turn is not None and run.in_conversation:
        await _answer_pending_turn(actor)


async def _answer_pending_turn(actor: ConnectionPort) -> None:
    """Answer a VAD turn that ended while the previous response was running (see
    :func:`.turns.speech_stopped`)."""
    item_id, actor.pending_turn = actor.pending_turn, None
    if item_id is None or actor.active is not None or actor.closing:
        return
    await start_response(actor, None, trio.current_time(), "queued_turn", item_id)


async def _play(actor: ConnectionPort, run: Run) -> None:
    faults, record, stats = run.faults, run.record, actor.stats
    if run.refusal is not None:
        await _refuse(actor, run, run.refusal)
        return
    shift = 0.0
    for step in run.stream.steps():
        if step.delta_index is not None:
            if faults.stall_at_delta == step.delta_index and not record.stall_ms:
                shift += faults.stall_s
                record.stall_ms = faults.stall_s * 1000.0
                stats.faults["stall"] += 1
            if faults.close_at_delta == step.delta_index:
                record.fault = "close"
                stats.faults["close_probability"] += 1
                await actor.close(FAULT_CLOSE_CODE, "fault: connection dropped mid-response")
                return
            if faults.error_at_delta == step.delta_index:
                record.fault = "error"
                stats.faults["error_probability"] += 1
                error = {
                    "type": "server_error",
                    "code": "server_error",
                    "message": SERVER_ERROR_MESSAGE,
                }
                await actor.emit(error_event(**error))
                await _finish(actor, run, "failed", {"type": "failed", "error": error})
                return
        deadline = run.anchor + step.at + shift
        if run.cancel_reason is None and deadline > trio.current_time():
            with trio.move_on_at(deadline):
                await run.wake.wait()
        # once the closing events have begun the response ends as planned
        if run.cancel_reason is not None and not run.stream.finished:
            await _finish(
                actor, run, "cancelled", {"type": "cancelled", "reason": run.cancel_reason}
            )
            return
        await _emit_step(actor, run, step, deadline)


async def _refuse(actor: ConnectionPort, run: Run, error: dict[str, Any]) -> None:
    """A rate-limited response: ``response.created``, then ``response.done`` failed."""
    run.record.fault = "rate_limited"
    actor.stats.faults["rate_limited"] += 1
    created = next(iter(run.stream.steps()))
    deadline = run.anchor + created.at
    if deadline > trio.current_time():
        await trio.sleep_until(deadline)
    await _emit_step(actor, run, created, deadline)
    await _finish(actor, run, "failed", {"type": "failed", "error": error})


async def _finish(actor: ConnectionPort, run: Run, status: str, details: dict[str, Any]) -> None:
    now = trio.current_time()
    run.record.reason = details.get("reason")
    for step in run.stream.finish(now - run.anchor, status, details):
        await _emit_step(actor, run, step, now)


async def _emit_step(actor: ConnectionPort, run: Run, step: Step, intended: float) -> None:
    conv = actor.conv
    event = step.event
    etype = event["type"]
    if step.effect == "add_part":
        if run.in_conversation:
            conv.open_part(event["item_id"], event["part"])
    elif step.effect is not None:
        if not run.in_conversation:
            return  # out-of-band responses never touch the conversation
        item = event["item"]
        if step.effect == "add_item":
            run.prev_item = conv.insert(item)
        else:
            conv.replace(item)
            if step.audio_ms:
                conv.has_assistant_audio = True
        event["previous_item_id"] = run.prev_item
    if (
        etype == "response.output_audio.delta"
        and run.in_conversation
        and run.stream.truncated_ms is None
    ):
        # a truncated item keeps the length it was cut to
        conv.audio_ms[event["item_id"]] = step.audio_ms
    hook: Hook = None
    entry: Mark | None = None
    if step.mark is not None:
        record = run.record
        entry = record.mark(step.mark, intended)

        def hook(t: float, entry: Mark = entry) -> None:
            entry.actual = t

        if step.mark == "done":
            record.status = event["response"]["status"]
            record.audio_ms = step.audio_ms

            def hook(t: float, entry: Mark = entry) -> None:
                entry.actual = t
                actor.server.groundtruth.write(record)

    wire = await actor.emit(event, hook)
    if step.mark == "first_delta":
        assert entry is not None and wire is not None  # every delta has a wire form
        entry.type = wire["type"]
    if etype == "response.created" and actor.dialect is Dialect.BETA:
        await _rate_limits(actor)
    if etype == "response.done":
        actor.stats.responses_done[event["response"]["status"]] += 1
        if run.refusal is None:
            used = (event["response"].get("usage") or {}).get("total_tokens", 0)
            actor.server.rate_limiter.charge(used, trio.current_time())
        if actor.dialect is Dialect.GA:
            await _rate_limits(actor)
        if run.in_conversation:
            actor.arm_idle(step.audio_ms)
        if actor.faults.response_finished():
            actor.stats.faults["close_after_responses"] += 1
            await actor.close(
                FAULT_CLOSE_CODE, f"fault: closed after {actor.faults.responses_done} responses"
            )


async def _rate_limits(actor: ConnectionPort) -> None:
    limits = actor.server.rate_limiter.entries(
        trio.current_time(), beta=actor.dialect is Dialect.BETA
    )
    await actor.emit({"type": "rate_limits.updated", "rate_limits": limits})
