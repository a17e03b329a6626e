"""What a person types on a command line or in a console form: times, deadlines, event types.

Shared by the CLI and the web console, so both accept and refuse the same input with the same
sentence.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone

from hub.envelope import parse_time
from hub.errors import InputError


def parse_day_or_time(value: str | None, option: str) -> datetime | None:
    """`--since`/`--until` of the audit log: a date (midnight UTC) or an RFC 3339 time."""
    if value is None:
        return None
    text = value + "T00:00:00Z" if len(value) == 10 else value
    try:
        return parse_time(text)
    except ValueError:
        raise InputError(
            f"{option} {value!r} is not a date (2026-11-26) or RFC 3339 time"
        ) from None


def resolve_type(given: str, known: Iterable[str]) -> str:
    """The full event type `--type` means: itself, or the one type with that short name.

    Tables show the short name (`Notice`), so that is what people type. A name that is neither
    a type the log holds or the registry knows, nor the short name of exactly one, is refused
    naming the close ones, instead of silently matching nothing.
    """
    names = set(known)
    if given in names:
        return given
    if "." not in given:
        matches = sorted(n for n in names if n.rsplit(".", 1)[-1] == given)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InputError(
                f"--type {given} is ambiguous: it is the short name of {', '.join(matches)}; "
                "give the full name"
            )
    shorts = {n.rsplit(".", 1)[-1]: n for n in names}
    close = difflib.get_close_matches(given, sorted(names), n=3, cutoff=0.6)
    close += [shorts[s] for s in difflib.get_close_matches(given, sorted(shorts), n=3)]
    listed = ", ".join(dict.fromkeys(close)) or ", ".join(sorted(names)[:5]) or "none yet"
    raise InputError(f"no event type is named {given}; close ones: {listed}")


_CST = timezone(timedelta(hours=8))


def parse_until(text: str | None) -> datetime | None:
    """`--until`: an RFC 3339 time, or a date meaning "through the end of that day" (UTC+8)."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            return parse_time(text)
        except ValueError as exc:
            raise InputError(
                f"--until: {exc}; give a date (2027-06-30) or an RFC 3339 time"
            ) from None
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=_CST).astimezone(UTC)


_RELATIVE = re.compile(r"^\+?(\d+)([smhd])$")

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_deadline(text: str | None) -> datetime | None:
    """`--deadline`: an RFC 3339 time with a zone, or a duration from now such as 3d or 36h."""
    if text is None:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        return datetime.now(UTC) + timedelta(**{unit: amount})
    try:
        return parse_time(text)
    except ValueError as exc:
        raise InputError(
            f"--deadline {text!r}: give an RFC 3339 time with a zone "
            "(2026-12-31T18:00:00+08:00) or a duration such as 3d, 36h, 90m"
        ) from exc
