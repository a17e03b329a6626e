"""Native values read in adapter mappings (times, dates, integers), refused in words.

A mapping's ValueError becomes the dead letter's reason or a webhook caller's 422, read by a
department developer; Python's own (`Invalid isoformat string: 'x'`, `invalid literal for
int() with base 10`) tells them neither which field nor what it should be. These say both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def moment(value: Any, name: str) -> datetime:
    """An ISO 8601 time with a time zone (or a datetime), in UTC."""
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(
                f"{name} {value!r} is not a time; write it as 2026-12-20T10:30:00+08:00"
            ) from None
    if found.tzinfo is None:
        raise ValueError(f"{name} {value!r} needs a time zone, for example +08:00")
    return found.astimezone(UTC)


def day(value: Any, name: str) -> date:
    """An ISO 8601 calendar date (or a date)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date; write it as 2027-01-01") from None


def integer(value: Any, name: str) -> int:
    """A whole number, given as a number or as digits in a string."""
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a whole number") from None


def number(value: Any, name: str) -> float:
    """A number, given as a number or as a numeric string."""
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
