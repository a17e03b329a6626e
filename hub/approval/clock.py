"""The reviewers' clocks: deadlines in working days, paused while a 补正 request is open.

Pure functions of stored facts and an injected `now`, so every rule here is deterministic and
tested without waiting. The rules (docs/approval.md, "Clock rules"):

- A reviewer's time limit of N working days counts from the day *after* its assignment reached
  the hub (the day of assignment is not counted), on the calendar's working days (Monday to
  Friday, minus public holidays, plus the weekend days made working days, 调休), and ends at
  the end (local midnight, China Standard Time) of the N-th counted day.
- While a request for more material (补正) is open the clock stops: the working days after the
  day of the request, up to and including the day the material was supplied, are not counted.
  A request open now stops the clock from the day after it for as long as it stays open, so
  no deadline is known (and none can pass) until the material arrives.
- "Working days left" are the counted days after today up to the deadline's last day. A
  warning (超期预警) is due when at most `warn_days` are left, the deadline not yet passed and
  the clock running; an escalation (超期督办) once `now` reaches the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from hub.directory.deadlines import WorkCalendar

# A time limit longer than this is a configuration mistake; it also bounds every loop here.
MAX_WORKING_DAYS = 366


@dataclass(frozen=True, slots=True)
class Pause:
    """A 补正 request: the clock stops after `start`'s day until `end`'s (None: still open)."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClockState:
    """One reviewer's clock at a moment."""

    deadline: datetime | None  # None while a 补正 request is open
    working_days_left: int
    paused: bool
    overdue: bool
    paused_days: int  # working days not counted because of 补正 so far


class Clock:
    """Deadlines on one calendar (the hub operator's holiday calendar)."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar

    def _stopped(self, pauses: Sequence[Pause]) -> tuple[set[date], date | None]:
        """Local days not counted because of closed pauses, and the day an open pause began."""
        days: set[date] = set()
        open_from: date | None = None
        for pause in pauses:
            first = self.calendar.local_date(pause.start)
            if pause.end is None:
                open_from = first if open_from is None else min(open_from, first)
                continue
            last = self.calendar.local_date(pause.end)
            day = first + timedelta(days=1)
            while day <= last:
                days.add(day)
                day += timedelta(days=1)
        return days, open_from

    def _counted(self, day: date, stopped: set[date], open_from: date | None) -> bool:
        if open_from is not None and day > open_from:
            return False
        return day not in stopped and self.calendar.is_working_day(day)

    def deadline(
        self, assigned: datetime, days: int, pauses: Sequence[Pause] = ()
    ) -> datetime | None:
        """The end of the `days`-th counted working day after the day of assignment.

        None if an open pause stops the clock before the limit is reached.
        """
        days = max(1, min(days, MAX_WORKING_DAYS))
        stopped, open_from = self._stopped(pauses)
        day = self.calendar.local_date(assigned)
        counted = 0
        # Bounded: a stopped stretch is at most a few years of days in any real case.
        for _ in range(days * 7 + len(stopped) + 3660):
            day += timedelta(days=1)
            if open_from is not None and day > open_from:
                return None
            if self._counted(day, stopped, open_from):
                counted += 1
                if counted == days:
                    end = datetime.combine(day + timedelta(days=1), time(0), self.calendar.zone)
                    return end.astimezone(UTC)
        raise ValueError("the pauses cover more than ten years")

    def state(
        self,
        assigned: datetime,
        days: int,
        pauses: Sequence[Pause],
        now: datetime,
    ) -> ClockState:
        """Deadline, working days left, paused and overdue, as of `now`."""
        stopped, open_from = self._stopped(pauses)
        paused_days = sum(1 for d in stopped if self.calendar.is_working_day(d))
        deadline = self.deadline(assigned, days, pauses)
        today = self.calendar.local_date(now)
        if deadline is not None and now >= deadline:
            return ClockState(deadline, 0, False, True, paused_days)
        # Counted days from the day after assignment through today are used up.
        used = 0
        day = self.calendar.local_date(assigned) + timedelta(days=1)
        while day <= today and used < days:
            if self._counted(day, stopped, open_from):
                used += 1
            day += timedelta(days=1)
        left = max(0, days - used)
        return ClockState(deadline, left, open_from is not None, False, paused_days)

    def warning_due(self, state: ClockState, warn_days: int) -> bool:
        """Whether an overdue warning (超期预警) is due for a clock in this state."""
        return not state.paused and not state.overdue and state.working_days_left <= warn_days
