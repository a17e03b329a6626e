"""Answer deadlines for access requests, in working days of the provider's jurisdiction.

A conditional request must be answered within a number of working days (national practice 10;
local rules 5, 10 or 15: research B1), counted on the jurisdiction's calendar: Monday to
Friday, minus public holidays, plus the weekend days that are made working days (调休).
Configured in `<home>/directory/config.toml`, read by the hub operator's directory service::

    [deadlines]
    working_days = 10            # default answer period
    reminder_days = 2            # remind the provider when this many working days are left
    utc_offset_hours = 8         # the calendar's day boundary (China Standard Time)
    [deadlines.units]            # per jurisdiction (the provider's unit)
    akto = 5
    [calendar]
    holidays = ["2026-10-01", "2026-10-02"]
    workdays = ["2026-09-27"]    # 调休: a Sunday that is a working day

Mistakes are errors naming the file and the key path (hub/tomlconfig.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated

from hub import tomlconfig
from hub.errors import ConfigError
from hub.home import Home
from hub.tomlconfig import Between

DEFAULT_WORKING_DAYS = 10
DEFAULT_REMINDER_DAYS = 2
MAX_DAYS = 366
"""A deadline further than a year of working days away is a typo, and counting it is slow."""


_Days = Annotated[int, Between(1, MAX_DAYS)]


@dataclass(frozen=True, kw_only=True)
class DeadlineSettings:
    """`[deadlines]`: the answer period, per unit where it differs."""

    working_days: _Days = DEFAULT_WORKING_DAYS
    reminder_days: Annotated[int, Between(0, MAX_DAYS)] = DEFAULT_REMINDER_DAYS
    # Real time zones lie between UTC-12 and UTC+14 (timezone() refuses 24 h and more).
    utc_offset_hours: Annotated[int, Between(-12, 14)] = 8
    units: dict[str, _Days] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CalendarSettings:
    """`[calendar]`: holidays and make-up working days (ISO dates)."""

    holidays: tuple[str, ...] = ()
    workdays: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DirectoryConfig:
    """The directory's configuration file."""

    deadlines: DeadlineSettings = field(default_factory=DeadlineSettings)
    calendar: CalendarSettings = field(default_factory=CalendarSettings)


class WorkCalendar:
    """Which days are working days, and deadlines counted in them."""

    def __init__(
        self,
        *,
        holidays: set[date] | None = None,
        workdays: set[date] | None = None,
        utc_offset_hours: int = 8,
    ) -> None:
        self.holidays = holidays or set()
        self.workdays = workdays or set()
        self.zone = timezone(timedelta(hours=utc_offset_hours))

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday unless a holiday; a listed make-up day is always a working day."""
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def local_date(self, moment: datetime) -> date:
        """The calendar day a moment falls on in this jurisdiction."""
        return moment.astimezone(self.zone).date()

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end (local midnight) of the `days`-th working day after the day of `start`."""
        day = self.local_date(start)
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return end.astimezone(UTC)

    def working_days_left(self, now: datetime, deadline: datetime) -> int:
        """Working days after today up to and including the deadline's last day (0 if past)."""
        if now >= deadline:
            return 0
        day = self.local_date(now)
        last = self.local_date(deadline - timedelta(microseconds=1))
        left = 0
        while day < last:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left += 1
        return left


@dataclass(frozen=True)
class DeadlinePolicy:
    """The answer period of each jurisdiction on its calendar."""

    calendar: WorkCalendar
    working_days: int = DEFAULT_WORKING_DAYS
    reminder_days: int = DEFAULT_REMINDER_DAYS
    units: dict[str, int] = field(default_factory=dict)

    def days_for(self, unit: str) -> int:
        """The answer period of a unit's providers."""
        return self.units.get(unit, self.working_days)

    def deadline(self, unit: str, received: datetime) -> datetime:
        """When a request that reached the hub at `received` must be answered."""
        return self.calendar.add_working_days(received, self.days_for(unit))

    def due_for_reminder(self, now: datetime, deadline: datetime) -> bool:
        """Whether a pending request should be reminded now (and is not yet overdue)."""
        return now < deadline and (
            self.calendar.working_days_left(now, deadline) <= self.reminder_days
        )


def config_path(home: Home) -> Path:
    """Where the directory's configuration file lives in a home."""
    return home.root / "directory" / "config.toml"


def load_policy(home: Home | None) -> DeadlinePolicy:
    """The deadline policy of a home (defaults when it has no configuration file)."""
    path = config_path(home) if home is not None else None
    if path is None or not path.exists():
        return parse_policy("", "config.toml")
    return _policy(tomlconfig.read(DirectoryConfig, path, "the directory configuration"), str(path))


def parse_policy(text: str, where: str) -> DeadlinePolicy:
    """The deadline policy in the text of a directory config file (`where` names it)."""
    return _policy(tomlconfig.parse(DirectoryConfig, text, where), where)


def _policy(config: DirectoryConfig, where: str) -> DeadlinePolicy:
    days: dict[str, set[date]] = {}
    for name in ("holidays", "workdays"):
        days[name] = set()
        for text_day in getattr(config.calendar, name):
            try:
                days[name].add(date.fromisoformat(text_day))
            except ValueError:
                raise ConfigError(
                    f"{where}: calendar.{name}: {text_day[:40]!r} is not a date "
                    "(dates are written 2026-10-01)"
                ) from None
    holidays, workdays = days["holidays"], days["workdays"]
    calendar = WorkCalendar(
        holidays=holidays, workdays=workdays, utc_offset_hours=config.deadlines.utc_offset_hours
    )
    return DeadlinePolicy(
        calendar,
        working_days=config.deadlines.working_days,
        reminder_days=config.deadlines.reminder_days,
        units=dict(config.deadlines.units),
    )
