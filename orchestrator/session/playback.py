"""Simulated playback of the assistant's audio (pure; no I/O, no clock reads).

A real caller hears assistant audio at 1x speed, starting when the first chunk arrives
(plus an optional jitter-buffer delay). The server generates audio faster than real
time, so the *played* position lags the *received* amount; barge-in must truncate at
the played position, never beyond what was received (PROTOCOL_NOTES §5).

The model: one playback timeline per session. Each received chunk is scheduled to start
at ``max(arrival + start_delay, end of what is already scheduled)`` and lasts its audio
duration. Contiguous chunks of the same item are merged into one segment, so the
segment list only grows on underruns (the network was slower than playback) or on an
item change; ``played_ms(item, t)`` sums the elapsed part of that item's segments.
"""

from __future__ import annotations

import attrs

__all__ = ["PlaybackClock", "Segment"]


@attrs.define(slots=True)
class Segment:
    """A stretch of continuous playback of one item: ``start`` (clock seconds) plays
    ``item_id`` from ``item_offset_ms`` for ``dur_ms``."""

    item_id: str
    start: float
    item_offset_ms: float
    dur_ms: float

    @property
    def end(self) -> float:
        return self.start + self.dur_ms / 1000.0


@attrs.define(eq=False)
class PlaybackClock:
    """The simulated speaker. Feed it ``on_audio(item_id, ms, t)`` for every received
    assistant audio chunk; ask ``played_ms(item_id, t)`` / ``playing(t)``; ``stop(t)``
    when the user interrupts (the rest is discarded, as a client clears its buffer).

    ``start_delay`` (seconds) models a jitter buffer before the first chunk of a burst
    plays; 0 plays on arrival.
    """

    start_delay: float = 0.0
    segments: list[Segment] = attrs.field(factory=list)
    _received_ms: dict[str, float] = attrs.field(factory=dict)
    _end: float = float("-inf")
    _muted: set[str] = attrs.field(factory=set)

    def on_audio(self, item_id: str, ms: float, t: float) -> float:
        """``ms`` of audio of ``item_id`` arrived at time ``t``. Returns how long (ms) the
        speaker is silent right before this chunk plays: 0.0 when it follows audio still
        scheduled (or when the item is muted: it never plays), ``inf`` when nothing has
        played on this clock yet; otherwise the playback ran dry (an underrun, or the
        pause before a new answer) and the chunk plays after the jitter-buffer delay."""
        offset = self._received_ms.get(item_id, 0.0)
        self._received_ms[item_id] = offset + ms
        if item_id in self._muted:
            return 0.0
        segs = self.segments
        end = self._end
        if segs:
            last = segs[-1]
            if last.item_id == item_id and end >= t:
                last.dur_ms += ms
                self._end = last.end
                return 0.0
        start = t + self.start_delay if end < t else end
        seg = Segment(item_id=item_id, start=start, item_offset_ms=offset, dur_ms=ms)
        segs.append(seg)
        self._end = seg.end
        return (start - end) * 1000.0

    def received_ms(self, item_id: str) -> float:
        """Milliseconds of ``item_id`` audio received so far."""
        return self._received_ms.get(item_id, 0.0)

    def played_ms(self, item_id: str, t: float) -> float:
        """Milliseconds of ``item_id`` played by time ``t`` (never more than received)."""
        played = 0.0
        for seg in self.segments:
            if seg.item_id != item_id or seg.start >= t:
                continue
            played = seg.item_offset_ms + min(seg.dur_ms, (t - seg.start) * 1000.0)
        return played

    def current_item(self, t: float) -> str | None:
        """The item audible at time ``t`` (or the last one that played before ``t``)."""
        current = None
        for seg in self.segments:
            if seg.start <= t:
                current = seg.item_id
        return current

    def playing(self, t: float) -> bool:
        """True while scheduled audio remains to be played at time ``t``."""
        return bool(self.segments) and self._end > t

    @property
    def ends_at(self) -> float | None:
        """Clock time at which everything received so far has played, or None."""
        return self._end if self.segments else None

    def time_at(self, item_id: str, offset_ms: float) -> float | None:
        """Clock time at which ``item_id`` reaches ``offset_ms`` of playback (the sample
        at that offset plays), if that audio has been received and is played; None
        otherwise. Searches from the newest segment: O(1) for the item being received."""
        for seg in reversed(self.segments):
            if seg.item_id != item_id:
                continue
            if seg.item_offset_ms <= offset_ms:
                if offset_ms <= seg.item_offset_ms + seg.dur_ms:
                    return seg.start + (offset_ms - seg.item_offset_ms) / 1000.0
                return None  # past what was played
        return None

    def stop(self, t: float) -> None:
        """Stop playback at ``t``: audio scheduled after ``t`` is discarded, and later
        audio of the items received so far is counted but never played."""
        kept: list[Segment] = []
        for seg in self.segments:
            if seg.start >= t:
                continue
            if seg.end > t:
                seg.dur_ms = (t - seg.start) * 1000.0
            kept.append(seg)
        self.segments = kept
        self._end = min(self._end, t)
        self._muted.update(self._received_ms)

    def reset(self) -> None:
        """Forget everything (new connection)."""
        self.segments.clear()
        self._received_ms.clear()
        self._muted.clear()
        self._end = float("-inf")
