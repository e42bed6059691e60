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
"audio_ms": int, "leading_silence_ms": int, "stall_ms": float, "fault": str|null}``

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
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import attrs
import orjson


@attrs.define(eq=False)
class GroundTruthSink:
    """Appends records to a JSONL file (and keeps the last few in memory).

    Writes are synchronous single-line appends (microseconds), deliberately not
    thread-offloaded so they never add scheduling points that would perturb timing on
    a fake clock. ``close()`` flushes and closes the file.
    """

    path: Path | None
    keep: int = 10_000
    records: list[dict[str, Any]] = attrs.field(factory=list)
    _file: io.BufferedWriter | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        if len(self.records) < self.keep:
            self.records.append(record)
        if self._file is not None:
            self._file.write(orjson.dumps(record) + b"\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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
