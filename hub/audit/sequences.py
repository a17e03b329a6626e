"""Per-origin sequence tracking: which stream sequences the log has seen, and which it skipped.

Every message has a sequence in the hub stream; a message sourced from a county stream also has
its sequence there (``Nats-Stream-Source``). Each origin's sequences must arrive without holes.
A jump opens a gap; a message that arrives late (a redelivery after a restart delivers older
messages after newer ones) closes its part of the gap. Gaps still open are missing events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequences ``first..last`` (inclusive) of ``stream`` that have not been seen."""

    stream: str
    first: int
    last: int
    detected_at: datetime
    after_leaf: int | None = None


@dataclass
class SequenceTracker:
    """Highest sequence per origin stream plus the open gaps; copy before a speculative batch."""

    last: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, list[Gap]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    new_gaps: list[Gap] = field(default_factory=list)

    def copy(self) -> SequenceTracker:
        """An independent copy with no pending changes."""
        return SequenceTracker(dict(self.last), {k: list(v) for k, v in self.gaps.items()})

    def observe(self, stream: str, seq: int, leaf: int | None = None) -> bool:
        """Record that ``seq`` of ``stream`` arrived; return False if it was already seen.

        ``leaf`` is the index the log had reached, stored with a new gap to locate it.
        """
        last = self.last.get(stream, 0)
        if seq > last:
            if seq > last + 1:
                gap = Gap(stream, last + 1, seq - 1, datetime.now(UTC), leaf)
                self.gaps.setdefault(stream, []).append(gap)
                self.new_gaps.append(gap)
            self.last[stream] = seq
            self.changed.add(stream)
            return True
        for i, gap in enumerate(self.gaps.get(stream, [])):
            if gap.first <= seq <= gap.last:
                parts = [
                    Gap(stream, a, b, gap.detected_at, gap.after_leaf)
                    for a, b in ((gap.first, seq - 1), (seq + 1, gap.last))
                    if a <= b
                ]
                self.gaps[stream][i : i + 1] = parts
                self.changed.add(stream)
                return True
        return False

    def open_gaps(self, streams: set[str] | None = None) -> list[Gap]:
        """Open gaps, optionally only those of some streams."""
        return [g for s, gaps in self.gaps.items() if streams is None or s in streams for g in gaps]
