"""An embedded OpenAI-Realtime-compatible server: the default target and the test double.

It speaks the GA and beta dialects well enough for the official ``openai`` client, and
adds what the real service cannot: a seeded latency model with ground truth,
deterministic tool calls, and injected faults. Built from ``protocol`` (ids, dialects),
``audio`` (VAD, synthetic speech, G.711) and ``transport`` (secrets) only.

Start it in a trio program::

    from orchestrator.mockserver import ServerConfig, serve_realtime

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_realtime, ServerConfig(port=0))
        # connect to ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime
        ...
        nursery.cancel_scope.cancel()

or keep the server object for its counters (``server.stats``) and ground truth::

    server = MockServer(ServerConfig(port=0, seed=7))
    port = await nursery.start(server.serve)

Over any trio stream (one connection, same handshake path/header/auth rules), e.g. on
``MockClock`` with a memory stream pair::

    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(serve_stream, server_stream, config)     # or server.serve_stream
    ws = await trio_websocket.wrap_client_stream(
        nursery, client_stream, "127.0.0.1", "/v1/realtime?model=gpt-realtime")

Timing: every server event is sent at a deterministic deadline from its anchor
(``speech_stopped`` emission for VAD turns, receipt of ``response.create`` otherwise);
sending adds no delay. With ``LatencyModel(first_delta_ms=Distribution.parse("fixed:300"))``
the first audio delta leaves exactly 300 ms after the anchor on a fake clock.

Scheduled freeze (``FaultConfig(freeze_at_s=5, freeze_ms=2000)``, or several
``FreezeWindow`` in ``freezes``): from 5 s after the server started serving
(``MockServer.started_at``, its trio clock) for 2 s, the whole server sends nothing on
any connection -- as a GC pause or a saturated host would look from outside. Handshakes
are still accepted, client frames are still read (VAD and response plans go on), and
every frame due inside the window leaves exactly at its end, in order; frames due
after it are unaffected. Ground truth keeps the planned time as ``intended`` and the
held send time as ``actual``.

Fidelity choices (where PROTOCOL_NOTES is silent, what this server does):

- Parallel function calls: when several tool rules (and/or offered tool names) match the
  user's text, one response carries one ``function_call`` output item per call
  (``output_index`` 0..n-1, own item id and call id), each streamed in the single-call
  order, then one ``response.done`` listing all of them; the next response after the
  ``function_call_output`` items mentions every output (see ``tools``, ``responder``).
- ``conversation.item.truncate`` of an assistant audio item whose response is still
  streaming is accepted once its ``output_audio`` part exists, up to the audio already
  sent for it. The item keeps that much audio and no transcript; the response is not
  cancelled (that is ``response.cancel``'s job), its remaining deltas still flow, and
  every later snapshot of the item (``content_part.done``, ``conversation.item.done``,
  ``output_item.done``, ``response.done``) shows the empty transcript.
- A server-VAD turn that ends while a response is active (``interrupt_response`` false,
  or its barge-in cancel still closing) is committed as usual; with ``create_response``
  its response starts the moment the active one ends (ground truth anchor
  ``queued_turn``) instead of being dropped. Only the latest such turn gets a response
  (the earlier ones are in the conversation it answers).
- Hearing (``ServerConfig.hearing_dir``): the transcript of a committed audio turn that
  holds a line of the caller voice cache is that line's text (acoustic fingerprint,
  see ``hearing``); otherwise the ``spoken_transcripts`` hint of the turn, otherwise a
  generated sentence. Conversation item, transcription events and tool rules all use it.
- Leading silence (``LatencyModel.leading_silence_ms``): an audio answer's first deltas
  carry that much digital silence (counted in its audio), and its speech is loud from
  its first samples, so the first audible sample plays exactly first delta + silence.
- MCP tools (:mod:`.mcp`): simulated, never contacting ``server_url``. An MCP server in
  the session lists the configured tools (``ServerConfig.mcp_tools``) once per
  connection; the tool rules choose its calls as for functions; a call runs in the
  response (``response.mcp_call.*``, seeded duration and deterministic output) and the
  answer follows in the same response. With ``require_approval`` the response asks
  (``mcp_approval_request``) and ends; the next ``response.create`` after the client's
  ``mcp_approval_response`` runs the approved call (none when denied). Beta has no MCP
  events: there the items alone show the listing and the calls.
- Greeting (``ServerConfig.greeting``): after the first ``session.update`` is answered,
  the server runs a normal response speaking that text (not tied to a user item), with
  the latency model, anchored at ``session.updated``.

Modules: ``config`` (ServerConfig, ToolRule), ``latency`` (Distribution, LatencyModel),
``faults`` (FaultConfig, FreezeWindow), ``defaults`` (session defaults),
``session_update`` with ``session_checks`` and ``session_tools`` (pure validation of
session and response fields), ``state`` (conversation state), ``vad`` (input buffer +
turn detection), ``hearing`` with ``fingerprint`` (which cached caller line a turn
holds), ``tools`` (tool-call rules), ``mcp`` (simulated MCP tools), ``spec``,
``responder`` with ``stream_parts`` and ``response_events`` (pure response plans),
``audio_bank`` (synthetic answer audio), ``groundtruth`` (typed records, JSONL sink),
``wire`` (frame decoding, dialect rendering). The per-connection actor:
``connection`` (its tasks: receiver, control, sender, timers), ``dispatch`` (the client
event table), ``turns`` (VAD turns, transcription, idle timeout), ``planning`` (answer
planning, pure), ``runs`` (response runs with faults and ground truth) with
``inflight`` (the run record), ``transcription`` (transcription sessions),
``mcp_listing`` (MCP tool listing); the handlers see the connection through ``port``
(typing protocols), so ``connection`` imports them and not the reverse; ``server``
(listener) with ``handshake`` (routing, auth).
"""

from .config import ConfigError, ServerConfig, ToolRule
from .faults import FaultConfig, FreezeWindow
from .groundtruth import GroundTruthSink, read_groundtruth
from .latency import Distribution, DistributionError, LatencyModel
from .server import MockServer, route_request, serve_realtime, serve_stream
from .stats import ServerStats

__all__ = [
    "ConfigError",
    "Distribution",
    "DistributionError",
    "FaultConfig",
    "FreezeWindow",
    "GroundTruthSink",
    "LatencyModel",
    "MockServer",
    "ServerConfig",
    "ServerStats",
    "ToolRule",
    "read_groundtruth",
    "route_request",
    "serve_realtime",
    "serve_stream",
]
