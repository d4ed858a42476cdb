"""The calendar page: a month with weekdays and each day's source; a year's schedule previewed, then applied."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from tests.factories import TODAY
from tests.web.support import login, post, set_passwords
from workflow.models import CalendarOverride, CalendarYear

NEXT = TODAY.year + 1


def test_a_head_office_admin_previews_and_enters_next_years_schedule(bank, app_for):
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get(f"/admin/calendar?month={NEXT}-02").get_data(as_text=True)
    assert 'id="month-view"' in page and "<th>一</th>" in page and "<th>日</th>" in page
    assert f'data-day="{NEXT}-02-01"' in page and 'data-source=' in page
    form = {"year": str(NEXT), "holidays": f"{NEXT}-02-10~{NEXT}-02-16 春节\n{NEXT}-10-01~{NEXT}-10-07 国庆节",
            "workdays": ""}
    # a weekend day of the next year as the working weekend day
    sat = next(date(NEXT, 2, d) for d in range(1, 8) if date(NEXT, 2, d).weekday() == 5)
    form["workdays"] = f"{sat.isoformat()} 春节调休"
    preview = post(admin, "/admin/calendar/schedule", {**form, "step": "preview"}).get_data(as_text=True)
    assert 'id="schedule-preview"' in preview and 'id="apply-schedule"' in preview and "没有申诉期限因此变动" in preview
    with Session(bank.engine) as s:
        assert s.get(CalendarYear, NEXT) is None  # the preview wrote nothing
    done = post(admin, "/admin/calendar/schedule", {**form, "step": "apply"})
    assert done.status_code == 302
    with Session(bank.engine) as s:
        assert s.get(CalendarYear, NEXT) is not None and s.get(CalendarOverride, sat).working
    page = admin.get(f"/admin/calendar?month={NEXT}-02").get_data(as_text=True)
    assert f'data-day="{sat.isoformat()}" data-working="1" data-source="override"' in page

    bad = post(admin, "/admin/calendar/schedule", {"year": str(NEXT), "holidays": f"{NEXT}-13-01 坏日期",
                                                   "workdays": "", "step": "preview"})
    assert bad.status_code == 400 and "节假日第 1 行" in bad.get_data(as_text=True)

    chair = app.test_client()
    login(chair, "chair")
    assert post(chair, "/admin/calendar/schedule", {**form, "step": "apply"}).status_code == 403


def test_one_dates_override_is_previewed_with_the_deadlines_it_moves_then_saved(bank, app_for):
    from sqlmodel import select

    from tests.factories import drive, serve_letters
    from workflow.models import LetterService
    from workflow.services import deadlines

    case_id = drive(bank, "in_publicity")
    serve_letters(bank, case_id, TODAY)  # the page counts from today: a holiday in the running windows
    with Session(bank.engine) as s:
        cal, holiday = deadlines.calendar(s), date.fromordinal(TODAY.toordinal() + 1)
        while not cal.is_working_day(holiday):
            holiday = date.fromordinal(holiday.toordinal() + 1)
        before = {x.id: x.appeal_deadline for x in s.exec(select(LetterService))}
    set_passwords(bank.engine)
    admin = app_for(bank.engine).test_client()
    login(admin, "admin")
    form = {"day": holiday.isoformat(), "working": "0", "note": "临时休假"}
    page = post(admin, "/admin/calendar", form).get_data(as_text=True)
    assert 'id="override-preview"' in page and 'id="apply-override"' in page
    assert page.count("<strong>", page.index('id="override-moved"')) >= 3  # the three respondents' windows
    with Session(bank.engine) as s:
        assert s.get(CalendarOverride, holiday) is None  # the preview wrote nothing
    assert post(admin, "/admin/calendar", {**form, "note": ""}).status_code == 400  # a note is required first
    assert post(admin, "/admin/calendar", {**form, "step": "apply"}).status_code == 302
    with Session(bank.engine) as s:
        assert s.get(CalendarOverride, holiday).working is False
        after = {x.id: x.appeal_deadline for x in s.exec(select(LetterService))}
    assert len(before) == 3 and all(after[k] > before[k] for k in before)
