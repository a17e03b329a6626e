"""Times as RFC 3339 text in UTC with a `Z`, in the two shapes govhub writes outside the wire.

The wire's `ce-time` has its own fixed shape (always six fraction digits) and stays with the
envelope (`hub.envelope.format_time`): signatures cover its exact bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def rfc3339(moment: datetime) -> str: ...
@overload
def rfc3339(moment: None) -> None: ...
def rfc3339(moment: datetime | None) -> str | None:
    """`2026-03-01T08:00:00.250000Z`, or `2026-03-01T08:00:00Z` when there is no fraction
    (Python's isoformat in UTC); None stays None, for optional columns."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rfc3339_seconds(moment: datetime) -> str:
    """`2026-03-01T08:00:00Z`: whole seconds, for texts a person reads or signs."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
