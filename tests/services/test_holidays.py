"""A year's working-day schedule entered at once (holiday ranges and working weekend days): previewed with
the appeal deadlines it moves, then applied — the deadline moves, a new certificate of service states it,
the respondent is told, and the year no longer falls back to weekends-only."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from tests.factories import TODAY, drive, serve_letters
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, ValidationFailed
from workflow.models import AuditEvent, CalendarYear, LetterService, Notification
from workflow.services import deadlines, holidays

NEXT = TODAY.year + 1


def _first_working_day_of_next_year(s) -> date:
    cal = deadlines.calendar(s)
    d = date(NEXT, 1, 1)
    while not cal.is_working_day(d):
        d += timedelta(days=1)
    return d


def test_entering_next_years_schedule_moves_a_pending_appeal_deadline_shown_in_the_preview_first(bank):
    case_id = drive(bank, "in_publicity")
    day = date(TODAY.year, 12, 31)  # served on the last day of the year: the windows run into the next one
    serve_letters(bank, case_id, day)
    with Session(bank.engine) as s:
        holiday = _first_working_day_of_next_year(s)
        before = {x.id: x.appeal_deadline for x in s.exec(select(LetterService))}
    schedule = holidays.parse(NEXT, f"{holiday.isoformat()}~{(holiday + timedelta(days=1)).isoformat()} 元旦\n"
                                    f"{NEXT}-02-10~{NEXT}-02-16 春节", "")
    with Session(bank.engine) as s:
        plan = holidays.preview(s, bank.user(s, "admin"), schedule, today=day)
        with pytest.raises(PermissionDenied):
            holidays.preview(s, bank.user(s, "chair"), schedule, today=day)
    assert len(plan["moved"]) == len(before) == 3  # every respondent's window, shown before anything changes
    assert all(m.after > m.before for m in plan["moved"])
    with Session(bank.engine) as s:
        assert {x.id: x.appeal_deadline for x in s.exec(select(LetterService))} == before  # the preview changed nothing

    with unit_of_work(bank.engine) as s:
        done = holidays.apply(s, bank.user(s, "admin"), schedule, today=day)
    assert done["moved_count"] == 3
    with Session(bank.engine) as s:
        after = {x.id: x.appeal_deadline for x in s.exec(select(LetterService))}
        assert all(after[k] > before[k] for k in before)
        assert [m.after for m in plan["moved"]] == [after[k] for k in sorted(after)]
        told = s.exec(select(Notification).where(Notification.kind == "deadline_moved")).all()
        assert len(told) == 3
        assert s.get(CalendarYear, NEXT) is not None
        assert deadlines.calendar(s).uncovered_years([NEXT]) == []  # entered whole: no weekends-only warning
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "calendar_schedule")).one()
        assert event.payload["year"] == NEXT and event.payload["deadlines_moved"] == 3


def test_a_bad_schedule_names_each_bad_line_and_changes_nothing():
    with pytest.raises(ValidationFailed) as bad:
        holidays.parse(2027, "2027-01-01~2027-01-03 元旦\n2027-13-01 坏日期\n2026-10-01~2026-10-07 国庆\n"
                             "2027-05-01~2027-05-30 劳动节\n2027-10-01", "2027-02-15 春节调休\n2027-01-02 元旦调休")
    problems = [holidays.problem_text(p) for p in bad.value.details["problems"]]
    assert any("line 2" in p for p in problems) and any("must lie in 2027" in p for p in problems)
    assert any("at most 15 days" in p for p in problems) and any("line 5" in p and "which holiday" in p for p in problems)
    assert any("2027-02-15 is not a Saturday or Sunday" in p for p in problems)
    assert any("2027-01-02 is both a holiday and a working day" in p for p in problems)
    ok = holidays.parse(2027, "2027-02-10～2027-02-16 春节", "2027-02-07 春节调休")
    assert ok.overrides()[date(2027, 2, 7)] == (True, "春节调休") and date(2027, 2, 13) not in ok.overrides()


def test_one_dates_override_previews_and_moves_the_pending_appeal_deadlines_and_its_removal_moves_them_back(bank):
    case_id = drive(bank, "in_publicity")
    day = date(TODAY.year, 12, 31)
    serve_letters(bank, case_id, day)
    with Session(bank.engine) as s:
        holiday = _first_working_day_of_next_year(s)
        before = {x.id: x.appeal_deadline for x in s.exec(select(LetterService))}
        moved = holidays.preview_override(s, bank.user(s, "admin"), holiday, False, today=day)
        with pytest.raises(PermissionDenied):
            holidays.preview_override(s, bank.user(s, "chair"), holiday, False, today=day)
    assert len(moved) == 3 and all(m.after > m.before for m in moved)  # each shown before anything changes
    with Session(bank.engine) as s:
        assert {x.id: x.appeal_deadline for x in s.exec(select(LetterService))} == before  # nothing changed yet

    with unit_of_work(bank.engine) as s:
        assert holidays.set_override(s, bank.user(s, "admin"), holiday, False, "临时休假", today=day) == 3
    with Session(bank.engine) as s:
        after = {x.id: x.appeal_deadline for x in s.exec(select(LetterService))}
        assert [after[k] for k in sorted(after)] == [m.after for m in moved]
        assert len(s.exec(select(Notification).where(Notification.kind == "deadline_moved")).all()) == 3
        assert len(s.exec(select(AuditEvent).where(AuditEvent.event == "appeal_deadline_moved")).all()) == 3

    with unit_of_work(bank.engine) as s:  # the holiday withdrawn: every deadline returns to where it was
        assert holidays.remove_override(s, bank.user(s, "admin"), holiday, today=day) == 3
    with Session(bank.engine) as s:
        assert {x.id: x.appeal_deadline for x in s.exec(select(LetterService))} == before
