"""A response in flight: the record that its run task (:mod:`.runs`) plays and that the
control task reaches into to cancel it (``response.cancel``, a barge-in) or to truncate
its audio (``conversation.item.truncate``). It lives on the connection
(:attr:`.port.ConnectionPort.active`, :attr:`.port.ConnectionPort.runs`)."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from .faults import ResponseFaults
from .groundtruth import GroundTruthRecord
from .responder import ResponseStream


@attrs.define(eq=False)
class Run:
    """A response in flight: its plan, anchor, drawn faults and ground-truth record."""

    response_id: str
    in_conversation: bool
    stream: ResponseStream
    anchor: float
    faults: ResponseFaults
    record: GroundTruthRecord
    #: ``previous_item_id`` of the output item the response added last
    prev_item: str | None = None
    cancel_reason: str | None = None
    #: the ``rate_limit_exceeded`` error refusing this response (see :mod:`.rate_limits`)
    refusal: dict[str, Any] | None = None
    wake: trio.Event = attrs.field(factory=trio.Event)

    def cancel(self, reason: str) -> None:
        """Ask the run to end as cancelled (the first reason wins); wakes its task."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self.wake.set()
