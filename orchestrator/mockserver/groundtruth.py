"""Ground truth: what the server intended and actually did, one JSON line per response.

Each record (all times in seconds on the server's ``trio.current_time()``):

``{"connection": 3, "session_id": "sess_…", "conversation_id": "conv_…"|null,
"response_id": "resp_…", "item_ids": ["item_…"], "input_item_id": "item_…"|null,
"anchor": "speech_stopped"|"response.create"|"idle_timeout"|"queued_turn"|"session.updated",
"anchor_time": t, "kind": "answer"|"greeting", "created": {"intended": t, "actual": t},
"first_delta": {"intended": t, "actual": t, "type": "response.output_audio.delta"}|null,
"done": {"intended": t, "actual": t},
"status": "completed"|"cancelled"|"failed"|"incomplete", "reason": str|null,
"modality": "audio"|"text", "tool_call": {"name", "arguments"}|null,
"tool_calls": [{"name", "arguments"}, …], "text": str,
"audio_ms": int, "leading_silence_ms": int, "stall_ms": float, "fault": str|null,
"mcp_calls": [{"name", "server_label", "arguments", "item_id", "status",
"approval_request_id", "duration_ms", "output"}, …]}``

``mcp_calls`` (only in records of responses that have them): the simulated MCP calls
of the response (see :mod:`.mcp`), in output order, before its message; ``status``
``approval_requested`` (an ``mcp_approval_request`` item, no call), ``completed`` or
``failed`` (injected).

"intended" is anchor + the latency model's draw; "actual" is the moment the frame
was handed to the websocket. A client measuring from the same anchor should see the
actual - anchor difference (plus transport delay). A scheduled server-wide freeze
(``FaultConfig.freeze_windows``) shows as ``actual`` > ``intended``: a frame planned
inside the freeze leaves when it ends.

``item_ids`` lists the response's output items in ``output_index`` order. A response
making parallel function calls has one item per call; ``tool_calls`` lists every call
in that order (``[]`` for a message) and ``tool_call`` stays the first one (``null``
for a message), so single-call readers keep working. ``queued_turn``: a server-VAD
turn that ended while another response was active is answered when that response
ends; ``anchor_time`` is that moment, ``input_item_id`` the turn's item.

``kind`` ``greeting``: the assistant spoke first (``ServerConfig.greeting``), anchored at
the ``session.updated`` answering the connection's first ``session.update``; its
``input_item_id`` is null. ``leading_silence_ms``: the digital silence the audio
answer started with (included in ``audio_ms``; 0 for text and function calls), so the
first audible sample leaves at ``first_delta.actual`` and plays ``leading_silence_ms``
later.

A transcription session (:mod:`.transcription`) writes one record per committed turn
instead (:class:`TranscriptionRecord`): ``{"kind": "transcription", "connection",
"session_id", "item_id", "anchor": "committed", "anchor_time": t,
"transcription_ms": drawn, "completed": {"intended": t, "actual": t},
"status": "completed"|"failed", "text": str}``, ``completed`` being the
``…transcription.completed`` (or ``.failed``) event, due ``transcription_ms`` after the
turn was committed.

``send_late_ms``: the server's own send lateness, the larger ``actual - intended`` of
``created`` and ``first_delta`` in ms (never below 0), where a mark planned inside a
scheduled freeze is due when the freeze ends (that hold is the fault, not lateness).
``done`` is left out: it follows the whole answer, whose frames leave one after the
other (all at once with ``realtime_factor`` 0) and as fast as the client reads them. Above a few
ms it means the server could not keep its plan (an overloaded process or event loop):
latencies measured against it then include the server's own stalls.
:func:`send_lateness` summarizes it over records.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import orjson


@attrs.define
class Mark:
    """When a marked frame was due (``intended``) and handed to the websocket
    (``actual``, ``None`` until then); ``type``: the wire type of the first delta."""

    intended: float
    actual: float | None = None
    type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"intended": self.intended, "actual": self.actual}
        if self.type is not None:
            out["type"] = self.type
        return out


@attrs.define
class GroundTruthRecord:
    """One response's ground truth while it runs (fields as in the module docstring).

    :meth:`to_dict` gives the JSON object :class:`GroundTruthSink` writes, keys in the
    documented order (readers see the same lines as when records were dicts).
    """

    connection: int
    session_id: str
    conversation_id: str | None
    response_id: str
    item_ids: list[str]
    input_item_id: str | None
    anchor: str
    anchor_time: float
    kind: str
    modality: str
    tool_calls: list[dict[str, Any]]
    text: str
    leading_silence_ms: int
    created: Mark | None = None
    first_delta: Mark | None = None
    done: Mark | None = None
    status: str | None = None
    reason: str | None = None
    audio_ms: int = 0
    stall_ms: float = 0.0
    fault: str | None = None
    mcp_calls: list[dict[str, Any]] = attrs.field(factory=list)

    def mark(self, name: str, intended: float) -> Mark:
        """Start the mark ``name`` (``created`` / ``first_delta`` / ``done``)."""
        entry = Mark(intended)
        setattr(self, name, entry)
        return entry

    def to_dict(self) -> dict[str, Any]:
        def mark(m: Mark | None) -> dict[str, Any] | None:
            return None if m is None else m.to_dict()

        out = {
            "connection": self.connection,
            "session_id": self.session_id,
            "conversation_id": self.conversation_id,
            "response_id": self.response_id,
            "item_ids": self.item_ids,
            "input_item_id": self.input_item_id,
            "anchor": self.anchor,
            "anchor_time": self.anchor_time,
            "kind": self.kind,
            "created": mark(self.created),
            "first_delta": mark(self.first_delta),
            "done": mark(self.done),
            "status": self.status,
            "reason": self.reason,
            "modality": self.modality,
            "tool_call": self.tool_calls[0] if self.tool_calls else None,
            "tool_calls": self.tool_calls,
            "text": self.text,
            "audio_ms": self.audio_ms,
            "leading_silence_ms": self.leading_silence_ms,
            "stall_ms": self.stall_ms,
            "fault": self.fault,
        }
        if self.mcp_calls:
            out["mcp_calls"] = self.mcp_calls
        return out


@attrs.define
class TranscriptionRecord:
    """One committed turn of a transcription session (fields as in the module
    docstring); ``completed`` is stamped when its event leaves."""

    connection: int
    session_id: str
    item_id: str
    anchor_time: float
    transcription_ms: float
    text: str
    completed: Mark | None = None
    status: str = "completed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "transcription",
            "connection": self.connection,
            "session_id": self.session_id,
            "item_id": self.item_id,
            "anchor": "committed",
            "anchor_time": self.anchor_time,
            "transcription_ms": self.transcription_ms,
            "completed": None if self.completed is None else self.completed.to_dict(),
            "status": self.status,
            "text": self.text,
        }


@attrs.define(eq=False)
class GroundTruthSink:
    """Appends records to a JSONL file, and keeps the first ``keep`` in :attr:`records`
    (for tests and programs that embed the server and read them; a server process that
    nobody reads from keeps none: its memory stays flat however long it serves).

    Writes are synchronous single-line appends (microseconds), deliberately not
    thread-offloaded so they never add scheduling points that would perturb timing on
    a fake clock. ``close()`` flushes and closes the file.

    ``held_until(t)``: the end of a scheduled freeze covering trio time ``t`` (``None``:
    none), so that ``send_late_ms`` does not count a freeze's deliberate hold.
    """

    path: Path | None
    keep: int = 10_000
    held_until: Callable[[float], float | None] | None = None
    records: list[dict[str, Any]] = attrs.field(factory=list)
    _file: io.BufferedWriter | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def write(self, record: GroundTruthRecord | TranscriptionRecord | dict[str, Any]) -> None:
        """Append one record (``send_late_ms`` is added to it)."""
        if not isinstance(record, dict):
            record = record.to_dict()
        record["send_late_ms"] = _send_late_ms(record, self.held_until)
        if len(self.records) < self.keep:
            self.records.append(record)
        if self._file is not None:
            self._file.write(orjson.dumps(record) + b"\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


#: The marks whose lateness is the server's own (see ``send_late_ms``); ``completed``:
#: a transcription record's.
MARKS = ("created", "first_delta", "completed")


def _send_late_ms(
    record: dict[str, Any], held_until: Callable[[float], float | None] | None
) -> float:
    late = 0.0
    for mark in MARKS:
        entry = record.get(mark)
        if not entry or entry.get("actual") is None or entry.get("intended") is None:
            continue
        due = entry["intended"]
        if held_until is not None:
            end = held_until(due)
            if end is not None:
                due = max(due, end)
        late = max(late, entry["actual"] - due)
    return round(late * 1000.0, 3)


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (``None`` when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return values[min(rank, len(values)) - 1]


def send_lateness(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The server's own send lateness over ``records`` and the ground truth's time to
    first delta, in ms: ``{"responses", "send_late_p50_ms", "send_late_p99_ms",
    "send_late_max_ms", "ttfb_intended_p99_ms", "ttfb_actual_p99_ms"}`` (``None`` where
    no record has it). ``responses`` counts response records; the lateness covers the
    transcription records too. ``ttfb_*``: ``first_delta`` ``intended``/``actual`` minus
    ``anchor_time`` of answers (the latency model's draw, and what the server did)."""
    late: list[float] = []
    intended: list[float] = []
    actual: list[float] = []
    responses = 0
    for record in records:
        responses += record.get("kind") != "transcription"
        value = record.get("send_late_ms")
        late.append(float(value) if value is not None else _send_late_ms(record, None))
        first = record.get("first_delta")
        anchor = record.get("anchor_time")
        if record.get("kind", "answer") == "answer" and first and anchor is not None:
            if first.get("intended") is not None:
                intended.append((first["intended"] - anchor) * 1000.0)
            if first.get("actual") is not None:
                actual.append((first["actual"] - anchor) * 1000.0)
    late.sort()
    intended.sort()
    actual.sort()
    return {
        "responses": responses,
        "send_late_p50_ms": _percentile(late, 50),
        "send_late_p99_ms": _percentile(late, 99),
        "send_late_max_ms": late[-1] if late else None,
        "ttfb_intended_p99_ms": _percentile(intended, 99),
        "ttfb_actual_p99_ms": _percentile(actual, 99),
    }


def read_groundtruth(path: Path) -> list[dict[str, Any]]:
    """Load a ground-truth JSONL file (records as described in the module docstring;
    records written before ``tool_calls`` existed get it derived from ``tool_call``)."""
    with open(path, "rb") as f:
        records = [orjson.loads(line) for line in f if line.strip()]
    for record in records:
        if "tool_calls" not in record:
            call = record.get("tool_call")
            record["tool_calls"] = [call] if call else []
    return records
