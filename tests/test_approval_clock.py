"""The reviewers' clocks, case types and the holiday calendar, with injected times (no waiting)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.approval.casetypes import load_config
from hub.approval.clock import Pause
from hub.approval.workflow import check_credit_code
from hub.errors import ConfigError, InputError
from hub.home import Home

CST = timezone(timedelta(hours=8))
CONFIG = load_config(None)
CLOCK = CONFIG.clock


def cst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CST)  # type: ignore[misc]


def test_five_working_days_from_the_eve_of_national_day_end_on_13_october() -> None:
    # 1-7 October are off; 8, 9 count, Saturday 10 October is a make-up working day, then 12, 13.
    deadline = CLOCK.deadline(cst(2026, 9, 30, 10), 5)
    assert deadline == cst(2026, 10, 14)


def test_the_day_of_assignment_does_not_count_and_weekends_are_skipped() -> None:
    assert CLOCK.deadline(cst(2026, 12, 4, 17), 1) == cst(2026, 12, 8)  # Friday → Monday
    assert CLOCK.deadline(cst(2026, 12, 4, 0, 1), 1) == cst(2026, 12, 8)  # any time that day


def test_an_open_material_request_stops_the_clock_and_supplied_days_are_not_counted() -> None:
    assigned = cst(2026, 11, 2, 9)  # Monday; five working days end with Monday 9 November
    assert CLOCK.deadline(assigned, 5) == cst(2026, 11, 10)
    asked = cst(2026, 11, 4, 15)  # Wednesday: Tuesday and Wednesday are used
    open_request = [Pause(asked)]
    assert CLOCK.deadline(assigned, 5, open_request) is None
    weeks_later = CLOCK.state(assigned, 5, open_request, cst(2026, 11, 30))
    assert (weeks_later.paused, weeks_later.overdue, weeks_later.working_days_left) == (
        True,
        False,
        3,
    )
    # Supplied on Monday 9 November: Thursday 5, Friday 6 and Monday 9 are not counted.
    supplied = [Pause(asked, cst(2026, 11, 9, 11))]
    assert CLOCK.deadline(assigned, 5, supplied) == cst(2026, 11, 13)
    state = CLOCK.state(assigned, 5, supplied, cst(2026, 11, 10, 12))
    assert (state.paused, state.paused_days, state.working_days_left) == (False, 3, 2)


def test_material_supplied_the_same_day_costs_the_reviewer_nothing() -> None:
    assigned = cst(2026, 11, 2, 9)
    same_day = [Pause(cst(2026, 11, 4, 9), cst(2026, 11, 4, 17))]
    assert CLOCK.deadline(assigned, 5, same_day) == CLOCK.deadline(assigned, 5)


def test_days_left_the_warning_and_the_overdue_moment() -> None:
    assigned = cst(2026, 11, 2, 9)
    friday = CLOCK.state(assigned, 5, [], cst(2026, 11, 6, 12))
    assert friday.working_days_left == 1 and CLOCK.warning_due(friday, 2)
    assert not CLOCK.warning_due(CLOCK.state(assigned, 5, [], cst(2026, 11, 3, 12)), 2)
    last_minute = CLOCK.state(assigned, 5, [], cst(2026, 11, 9, 23, 59))
    assert (last_minute.working_days_left, last_minute.overdue) == (0, False)
    assert CLOCK.state(assigned, 5, [], cst(2026, 11, 10)).overdue
    # While paused no warning is due, however few days are left.
    paused = CLOCK.state(assigned, 5, [Pause(cst(2026, 11, 6, 9))], cst(2026, 11, 20))
    assert paused.working_days_left == 1 and not CLOCK.warning_due(paused, 2)


def test_a_request_made_after_the_deadline_does_not_stop_a_clock_that_has_run_out() -> None:
    assigned = cst(2026, 11, 2, 9)
    late_request = [Pause(cst(2026, 11, 11, 9))]
    assert CLOCK.deadline(assigned, 5, late_request) == cst(2026, 11, 10)
    assert CLOCK.state(assigned, 5, late_request, cst(2026, 11, 12)).overdue


def test_the_shipped_2026_calendar_follows_the_state_council_notice() -> None:
    calendar = CONFIG.calendar
    off = [date(2026, 1, 1), date(2026, 2, 16), date(2026, 2, 23), date(2026, 4, 6)]
    off += [date(2026, 5, 4), date(2026, 5, 5), date(2026, 6, 19), date(2026, 9, 25)]
    off += [date(2026, 10, 1), date(2026, 10, 7)]
    made_up = [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9)]
    made_up += [date(2026, 9, 20), date(2026, 10, 10)]
    assert not any(calendar.is_working_day(d) for d in off)
    assert all(calendar.is_working_day(d) for d in made_up)
    assert calendar.is_working_day(date(2026, 2, 24)) and calendar.is_working_day(date(2026, 10, 8))
    assert calendar.covers(date(2026, 12, 31)) and not calendar.covers(date(2027, 1, 4))


def test_case_type_files_are_checked_with_key_paths_and_a_home_may_add_its_own(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    folder = home.root / "approval"
    folder.mkdir(parents=True)
    (folder / "holidays-2027.toml").write_text(
        'year = 2027\nsource = "test"\n[[holidays]]\nname = "元旦"\ndays = ["2027-01-01"]\n'
    )
    (folder / "road-permit.toml").write_text(
        'title = "道路挖掘许可"\nlead = "pref.transport"\nsupervisor = "pref.office"\n'
        '[[reviewers]]\ndepartment = "pref.police"\nlabel = "交通组织审查"\nworking_days = 3\n'
    )
    config = load_config(home)
    assert set(config.types) == {"construction-permit", "food-business", "road-permit"}
    assert sorted(config.calendar.years) == [2026, 2027]
    assert not config.calendar.is_working_day(date(2027, 1, 1))

    (folder / "road-permit.toml").write_text(
        'title = "道路挖掘许可"\nlead = "pref.transport"\nsupervisor = "pref.office"\n'
        '[[reviewers]]\ndepartment = "pref.police"\nlabel = "x"\nworking_day = 3\n'
    )
    with pytest.raises(
        ConfigError,
        match=re.escape(
            'reviewers[0].working_day: unknown key "working_day" (did you mean "working_days"?)'
        ),
    ):
        load_config(home)
    (folder / "road-permit.toml").write_text(
        'title = "t"\nlead = "pref.police"\nsupervisor = "pref.office"\n'
        '[[reviewers]]\ndepartment = "pref.police"\nlabel = "x"\nworking_days = 3\n'
    )
    with pytest.raises(
        ConfigError, match="the lead pref.police cannot also be one of its reviewers"
    ):
        load_config(home)


def test_a_credit_code_must_carry_its_check_character_and_a_personal_id_is_refused() -> None:
    for real in ("914403001922038216", "9144030071526726XG", "91110108551385082q"):
        assert check_credit_code(real) == real.upper()
    with pytest.raises(InputError, match="not a valid 统一社会信用代码"):
        check_credit_code("914403001922038217")
    with pytest.raises(InputError, match="identity number must not go on the bus"):
        check_credit_code("65300119900101123X")
