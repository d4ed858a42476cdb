"""The working-day calendar: official holidays, make-up days, overrides and the uncovered-year fallback.

The 2026 facts below are what chinesecalendar 1.11 says (State Council notice for 2026):
National Day + Mid-autumn holiday 2026-10-01..07 (Thu–Wed), make-up working days Sunday 2026-09-20 and
Saturday 2026-10-10. It has no data for 2027; 2027-01-01 is a Friday.
"""

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.domain.calendar import YEAR_NOT_COVERED, WorkingCalendar

NEW_YEAR_2027_OVERRIDES = {date(2027, 1, 1): False, date(2027, 1, 4): False}


def test_an_appeal_window_served_before_national_day_2026_ends_on_monday_12_october():
    # Served Tue 09-29. Working days after it: Wed 09-30 (1); 10-01..07 holiday; Thu 10-08 (2),
    # Fri 10-09 (3), make-up Sat 10-10 (4); Sun 10-11 rest; Mon 10-12 (5).
    calendar = WorkingCalendar()

    assert calendar.add_working_days(date(2026, 9, 29), 5) == date(2026, 10, 12)
    assert calendar.warnings == []


def test_the_make_up_saturday_and_sunday_of_2026_are_working_days():
    calendar = WorkingCalendar()

    assert calendar.is_working_day(date(2026, 10, 10))  # Saturday
    assert calendar.is_working_day(date(2026, 9, 20))  # Sunday
    assert not calendar.is_working_day(date(2026, 10, 3))  # an ordinary Saturday inside the holiday
    assert not calendar.is_working_day(date(2026, 10, 5))  # Monday, holiday


def test_a_holiday_weekday_is_not_a_working_day():
    assert not WorkingCalendar().is_working_day(date(2026, 10, 1))


def test_an_override_wins_over_the_package():
    calendar = WorkingCalendar({date(2026, 10, 1): True, date(2026, 10, 10): False})

    assert calendar.is_working_day(date(2026, 10, 1))
    assert not calendar.is_working_day(date(2026, 10, 10))
    # Wed 09-30 (1), Thu 10-01 by override (2), Thu 10-08 (3), Fri 10-09 (4), Mon 10-12 (5).
    assert calendar.add_working_days(date(2026, 9, 29), 5) == date(2026, 10, 12)
    assert calendar.add_working_days(date(2026, 9, 29), 4) == date(2026, 10, 9)


def test_a_window_into_2027_skips_the_holidays_an_override_declares():
    # Tue 2026-12-29: Wed 12-30 (1), Thu 12-31 (2); Fri 01-01 and Mon 01-04 overridden as holidays;
    # Tue 01-05 (3), Wed 01-06 (4), Thu 01-07 (5).
    calendar = WorkingCalendar(NEW_YEAR_2027_OVERRIDES)

    assert calendar.add_working_days(date(2026, 12, 29), 5) == date(2027, 1, 7)


def test_a_window_into_2027_without_overrides_counts_weekdays_and_warns():
    # Wed 12-30 (1), Thu 12-31 (2), Fri 2027-01-01 (3, no data: a weekday), Mon 01-04 (4), Tue 01-05 (5).
    calendar = WorkingCalendar()

    assert calendar.add_working_days(date(2026, 12, 29), 5) == date(2027, 1, 5)
    [warning] = calendar.warnings
    assert (warning.code, warning.year) == (YEAR_NOT_COVERED, 2027)
    assert str(warning).startswith("2027: no official holiday data")
    assert "weekends only" in warning.message
    assert "2027年" in warning.message_zh


def test_a_window_into_2027_that_meets_unoverridden_days_still_warns():
    calendar = WorkingCalendar(NEW_YEAR_2027_OVERRIDES)

    calendar.add_working_days(date(2026, 12, 29), 5)

    assert [w.year for w in calendar.warnings] == [2027]


def test_asking_only_about_overridden_days_of_an_uncovered_year_does_not_warn():
    calendar = WorkingCalendar(NEW_YEAR_2027_OVERRIDES)

    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.working_days_between(date(2026, 12, 31), date(2027, 1, 1)) == 0
    assert calendar.warnings == []


def test_a_weekend_of_an_uncovered_year_is_a_rest_day_and_warns():
    calendar = WorkingCalendar()

    assert not calendar.is_working_day(date(2027, 1, 2))
    assert calendar.is_working_day(date(2027, 1, 1))
    assert [w.year for w in calendar.warnings] == [2027]


def test_years_before_the_package_data_also_fall_back_to_weekdays():
    calendar = WorkingCalendar()

    assert calendar.is_working_day(date(2003, 10, 1))  # a Wednesday; no data for 2003
    assert [w.year for w in calendar.warnings] == [2003]


def test_warnings_come_once_per_year_in_year_order():
    calendar = WorkingCalendar()

    calendar.is_working_day(date(2028, 3, 1))
    calendar.working_days_between(date(2026, 12, 1), date(2027, 2, 1))
    calendar.is_working_day(date(2027, 6, 1))

    assert [w.year for w in calendar.warnings] == [2027, 2028]


def test_a_confirmed_year_falls_back_to_weekdays_without_warning():
    calendar = WorkingCalendar(NEW_YEAR_2027_OVERRIDES, confirmed_years=[2027])

    assert calendar.add_working_days(date(2026, 12, 29), 5) == date(2027, 1, 7)
    assert calendar.warnings == []
    assert calendar.uncovered_years([2026, 2027, 2028]) == [2028]


def test_uncovered_years_lists_the_years_without_official_data_without_recording_warnings():
    calendar = WorkingCalendar()

    assert calendar.uncovered_years([2028, 2026, 2027, 2003, 2004, 2027]) == [2003, 2027, 2028]
    assert calendar.warnings == []


def test_working_days_between_excludes_the_first_day_and_includes_the_last():
    calendar = WorkingCalendar()
    friday, monday = date(2026, 10, 9), date(2026, 10, 12)

    assert calendar.working_days_between(friday, friday) == 0
    assert calendar.working_days_between(friday, monday) == 2  # Saturday 10-10 is a make-up day
    assert calendar.working_days_between(monday, friday) == -2
    assert calendar.working_days_between(date(2026, 9, 30), date(2026, 10, 7)) == 0


def test_working_days_between_spans_several_years():
    # Make-up days cancel the bridging days, so a year has days − weekend days − statutory holidays:
    # 2024: 366 − 104 − 11 = 251; 2025 (two statutory days added): 365 − 104 − 13 = 248.
    calendar = WorkingCalendar()

    assert calendar.working_days_between(date(2023, 12, 31), date(2024, 12, 31)) == 251
    assert calendar.working_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 248
    assert calendar.working_days_between(date(2023, 12, 31), date(2025, 12, 31)) == 251 + 248


def test_adding_zero_working_days_gives_the_start_itself():
    assert WorkingCalendar().add_working_days(date(2026, 10, 3), 0) == date(2026, 10, 3)


def test_a_count_from_a_rest_day_starts_at_the_next_working_day():
    calendar = WorkingCalendar()

    assert calendar.add_working_days(date(2026, 10, 3), 1) == date(2026, 10, 8)


def test_counting_back_gives_the_working_day_before_the_start():
    calendar = WorkingCalendar()

    assert calendar.add_working_days(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert calendar.add_working_days(date(2026, 10, 4), -1) == date(2026, 9, 30)  # from a rest day
    assert calendar.add_working_days(date(2026, 1, 5), -2) == date(2025, 12, 31)  # across years


def test_remaining_is_zero_on_the_deadline_and_negative_when_overdue():
    calendar = WorkingCalendar()
    deadline = date(2026, 10, 12)

    assert calendar.remaining(deadline, date(2026, 9, 29)) == 5
    assert calendar.remaining(deadline, deadline) == 0
    assert calendar.remaining(deadline, date(2026, 10, 14)) == -2


def test_a_datetime_is_treated_as_its_date():
    calendar = WorkingCalendar({date(2026, 10, 10): False})

    assert not calendar.is_working_day(datetime(2026, 10, 10, 9, 30))
    assert calendar.add_working_days(datetime(2026, 9, 29, 17, 0), 5) == date(2026, 10, 13)


# ---- properties ------------------------------------------------------------------------------------

CALENDAR = WorkingCalendar(NEW_YEAR_2027_OVERRIDES)  # shared: answers are pure, the memo only speeds them
days = st.dates(min_value=date(2025, 6, 1), max_value=date(2027, 12, 31))


@settings(max_examples=150, deadline=None)
@given(start=days, n=st.integers(min_value=0, max_value=400))
def test_the_deadline_is_exactly_n_working_days_after_the_start(start, n):
    deadline = CALENDAR.add_working_days(start, n)

    assert CALENDAR.working_days_between(start, deadline) == n
    assert n == 0 or CALENDAR.is_working_day(deadline)


@settings(max_examples=150, deadline=None)
@given(a=days, b=days)
def test_working_days_between_is_consistent_with_add_working_days(a, b):
    count = CALENDAR.working_days_between(a, b)

    assert CALENDAR.working_days_between(b, a) == -count
    if b >= a:  # (b < a with no working day between, e.g. over a holiday, gives 0 too)
        assert CALENDAR.add_working_days(a, count) <= b < CALENDAR.add_working_days(a, count + 1)


@settings(max_examples=100, deadline=None)
@given(start=days, n=st.integers(min_value=1, max_value=60))
def test_counting_back_from_a_working_day_undoes_counting_forward(start, n):
    deadline = CALENDAR.add_working_days(start, n)

    assert CALENDAR.working_days_between(deadline, CALENDAR.add_working_days(deadline, -n)) == -n
    assert CALENDAR.add_working_days(deadline, -n) <= start


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), False),  # New Year
        (date(2026, 1, 4), True),  # make-up Sunday
        (date(2026, 2, 14), True),  # make-up Saturday before the Spring Festival
        (date(2026, 2, 23), False),  # Spring Festival Monday
        (date(2026, 5, 9), True),  # make-up Saturday after Labour Day
        (date(2026, 6, 22), True),  # an ordinary Monday
    ],
)
def test_the_official_2026_days_are_what_the_package_says(day, expected):
    assert WorkingCalendar().is_working_day(day) is expected


def test_calendars_with_different_overrides_never_share_a_year_table():
    national_day = date(2026, 10, 1)  # a holiday in the official calendar
    plain = WorkingCalendar()
    assert not plain.is_working_day(national_day)
    worked = WorkingCalendar({national_day: True})
    assert worked.is_working_day(national_day)
    assert worked.add_working_days(date(2026, 9, 30), 1) == national_day
    again = WorkingCalendar()
    assert not again.is_working_day(national_day)
    assert again.add_working_days(date(2026, 9, 30), 1) == plain.add_working_days(date(2026, 9, 30), 1) != national_day
