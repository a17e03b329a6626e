"""The RFC 3339 texts written outside the wire keep the bytes they had before they shared a home."""

from datetime import UTC, datetime, timedelta, timezone

from hub.envelope import format_time
from hub.timetext import rfc3339, rfc3339_seconds

EAST8 = timezone(timedelta(hours=8))


def test_rfc3339_is_utc_with_a_z_and_a_fraction_only_when_there_is_one() -> None:
    assert rfc3339(datetime(2026, 3, 1, 16, 0, tzinfo=EAST8)) == "2026-03-01T08:00:00Z"
    assert rfc3339(datetime(2026, 3, 1, 8, 0, 0, 250000, UTC)) == "2026-03-01T08:00:00.250000Z"
    assert rfc3339(None) is None


def test_rfc3339_seconds_drops_the_fraction() -> None:
    assert rfc3339_seconds(datetime(2026, 3, 1, 16, 0, 5, 999999, EAST8)) == "2026-03-01T08:00:05Z"


def test_the_wire_time_keeps_six_fraction_digits() -> None:
    assert format_time(datetime(2026, 3, 1, 8, 0, tzinfo=UTC)) == "2026-03-01T08:00:00.000000Z"
