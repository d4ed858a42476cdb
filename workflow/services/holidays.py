"""A year's working-day schedule entered at once, as the State Council publishes it: holiday ranges and the
weekend days worked in exchange (调休上班), previewed first with the appeal deadlines it would move.

Applying a schedule replaces every override of that year, records the year as entered whole (so it no
longer falls back to weekends-only, even beyond the calendar package's data), restates the open appeal
windows it moves (a new certificate of service each, the respondent told: letters.restate_deadlines) and
audits it, all in the caller's unit of work. One date's override (`set_override`, `remove_override`) is
previewed and restates the deadlines it moves the same way (`preview_override`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlmodel import Session, select

from ..domain.calendar import WorkingCalendar
from ..domain.errors import ValidationFailed
from ..domain.states import SERVICE_STATES
from ..models import CalendarOverride, CalendarYear, Case, Letter, LetterService, Respondent, User
from . import accounts, audit, deadlines, letters

_LINE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})(?:\s*(?:~|～|至|-{1,2}|—)\s*(\d{4}-\d{2}-\d{2}))?\s*(.*?)\s*$")
MAX_RANGE_DAYS = 15


@dataclass
class Schedule:
    year: int
    holidays: list[tuple[date, date, str]] = field(default_factory=list)  # (first, last, note)
    workdays: list[tuple[date, str]] = field(default_factory=list)  # weekend days worked

    def overrides(self) -> dict[date, tuple[bool, str]]:
        """The overrides the schedule stands for: the weekdays of its holidays (weekends are days off
        anyway) and its working weekend days."""
        out: dict[date, tuple[bool, str]] = {}
        for first, last, note in self.holidays:
            d = first
            while d <= last:
                if d.weekday() < 5:
                    out[d] = (False, note)
                d += timedelta(days=1)
        for d, note in self.workdays:
            out[d] = (True, note)
        return out


# The problems a schedule can have: code -> English text (the web translates each code).
PROBLEMS = {
    "date": "write a date (YYYY-MM-DD) or a range (YYYY-MM-DD~YYYY-MM-DD), then a note",
    "note": "say which holiday it is",
    "year": "the dates must lie in {year}",
    "range": f"a holiday range runs forward and lasts at most {MAX_RANGE_DAYS} days",
    "one_date": "a working weekend day is one date",
    "weekday": "{date} is not a Saturday or Sunday",
    "clash": "{date} is both a holiday and a working day",
    "empty": "enter the year's holidays",
}


def problem_text(p: dict) -> str:
    where = f"{'holidays' if p.get('field') == 'holidays' else 'working weekend days'} line {p['line']}: " \
        if p.get("line") else ""
    return where + PROBLEMS[p["code"]].format(**p)


def parse(year: int, holidays_text: str, workdays_text: str) -> Schedule:
    """The schedule from two texts, one entry per line: holidays "2027-02-06~2027-02-12 春节" (or one date),
    working weekend days "2027-02-14 春节调休". Raises ValidationFailed with every problem (`problems`: dicts
    with `code`, `field`, `line` and the values their text names)."""
    if not 1990 <= year <= 2100:
        raise ValidationFailed("enter the year of the schedule", field="year")
    schedule, problems = Schedule(year), []
    for field_name, text in (("holidays", holidays_text or ""), ("workdays", workdays_text or "")):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            m = _LINE.match(line)
            try:
                first = date.fromisoformat(m.group(1)) if m else None
                last = date.fromisoformat(m.group(2)) if m and m.group(2) else first
            except ValueError:
                first = last = None
            at = {"field": field_name, "line": n, "year": year}
            if first is None:
                problems.append({**at, "code": "date"})
                continue
            note = (m.group(3) or "").strip()[:200]
            if not note:
                problems.append({**at, "code": "note"})
            elif first.year != year or last.year != year:
                problems.append({**at, "code": "year"})
            elif field_name == "holidays":
                if last < first or (last - first).days + 1 > MAX_RANGE_DAYS:
                    problems.append({**at, "code": "range"})
                else:
                    schedule.holidays.append((first, last, note))
            elif last != first:
                problems.append({**at, "code": "one_date"})
            elif first.weekday() < 5:
                problems.append({**at, "code": "weekday", "date": first.isoformat()})
            else:
                schedule.workdays.append((first, note))
    clash = sorted(d for d, _ in schedule.workdays if any(a <= d <= b for a, b, _ in schedule.holidays))
    problems += [{"code": "clash", "field": "workdays", "date": d.isoformat()} for d in clash]
    if not problems and not schedule.holidays:
        problems.append({"code": "empty", "field": "holidays"})
    if problems:
        raise ValidationFailed("; ".join(problem_text(p) for p in problems), field="holidays", problems=problems)
    return schedule


@dataclass
class Moved:
    case_number: str
    doc_number: str
    respondent: str
    served_on: date
    before: date
    after: date


def _calendar_with(session: Session, schedule: Schedule) -> WorkingCalendar:
    current = {d: w for d, w in session.exec(select(CalendarOverride.day, CalendarOverride.working)).all()
               if d.year != schedule.year}
    current.update({d: w for d, (w, _) in schedule.overrides().items()})
    years = set(session.exec(select(CalendarYear.year)).all()) | {schedule.year}
    return WorkingCalendar(current, confirmed_years=years)


def preview(session: Session, actor: User, schedule: Schedule, today: date | None = None) -> dict:
    """What applying the schedule would do, changing nothing: the overrides it writes (and those of the year
    it replaces) and every open appeal deadline it moves."""
    accounts.require_head_office_admin(session, actor)
    moved = _moved(session, _calendar_with(session, schedule), today or date.today())
    replaced = session.exec(select(CalendarOverride).where(
        CalendarOverride.day >= date(schedule.year, 1, 1), CalendarOverride.day <= date(schedule.year, 12, 31))
        .order_by(CalendarOverride.day)).all()
    return {"overrides": sorted(schedule.overrides().items()), "replaced": replaced, "moved": moved}


def _moved(session: Session, cal: WorkingCalendar, today: date) -> list[Moved]:
    """The open appeal deadlines that `cal` would move, each with its case, letter and respondent."""
    moved, who = [], []
    for case in session.exec(select(Case).where(Case.state.in_(SERVICE_STATES)).order_by(Case.id)).all():
        for rid, w in letters.appeal_windows(session, case).items():
            if w.service_id is None or w.final or not w.open(today):
                continue
            service = session.get(LetterService, w.service_id)
            after = cal.add_working_days(service.served_on, service.window_days)
            if after != service.appeal_deadline:
                letter = session.get(Letter, service.letter_id)
                r = session.get(Respondent, rid)
                who.append(r.user_id if r else None)
                moved.append(Moved(case.number, letter.doc_number, "—", service.served_on, service.appeal_deadline,
                                   after))
    ids = {u for u in who if u is not None}
    names = dict(session.exec(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    for m, user_id in zip(moved, who, strict=True):
        m.respondent = names.get(user_id, "—")
    return moved


def _restate_all(session: Session, actor: User, today: date) -> int:
    moved = 0
    for case in session.exec(select(Case).where(Case.state.in_(SERVICE_STATES)).order_by(Case.id)).all():
        moved += len(letters.restate_deadlines(session, case, actor, today=today))
    return moved


def preview_override(session: Session, actor: User, day: date, working: bool | None,
                     today: date | None = None) -> list[Moved]:
    """The open appeal deadlines that one date's override would move (`working` None: removing the date's
    override), changing nothing."""
    accounts.require_head_office_admin(session, actor)
    current = dict(session.exec(select(CalendarOverride.day, CalendarOverride.working)).all())
    if working is None:
        current.pop(day, None)
    else:
        current[day] = working
    return _moved(session, deadlines.calendar(session, current), today or date.today())


def set_override(session: Session, actor: User, day: date, working: bool, note: str,
                 today: date | None = None) -> int:
    """Mark one date as a working day or a holiday and restate the open appeal deadlines it moves (a new
    certificate of service each, the respondent told), in the caller's unit of work. Returns how many moved."""
    accounts.set_calendar_override(session, actor, day, working, note)
    return _restate_all(session, actor, today or date.today())


def remove_override(session: Session, actor: User, day: date, today: date | None = None) -> int:
    """Drop one date's override and restate the open appeal deadlines that moves. Returns how many moved."""
    accounts.remove_calendar_override(session, actor, day)
    return _restate_all(session, actor, today or date.today())


def apply(session: Session, actor: User, schedule: Schedule, today: date | None = None) -> dict:
    """Replace the year's overrides with the schedule, record the year as entered whole and restate the
    appeal deadlines it moves; returns what `preview` said, as done."""
    accounts.require_head_office_admin(session, actor)
    today = today or date.today()
    plan = preview(session, actor, schedule, today)
    accounts.replace_year_overrides(session, actor, schedule.year, schedule.overrides())
    entry = session.get(CalendarYear, schedule.year) or CalendarYear(year=schedule.year)
    entry.note = f"节假日{len(schedule.holidays)}段，调休上班{len(schedule.workdays)}天"
    entry.entered_by_id = actor.id
    session.add(entry)
    session.flush()
    moved = _restate_all(session, actor, today)
    audit.record(session, event="calendar_schedule", actor=actor, payload={
        "year": schedule.year,
        "holidays": [[a.isoformat(), b.isoformat(), note] for a, b, note in schedule.holidays],
        "workdays": [[d.isoformat(), note] for d, note in schedule.workdays],
        "overrides": len(plan["overrides"]), "replaced": len(plan["replaced"]), "deadlines_moved": moved})
    return {**plan, "moved_count": moved}


def month(session: Session, first: date) -> list[list[dict | None]]:
    """The weeks (Monday first) of the month of `first`: each day with whether it is worked and why
    ("override" with its note, "package" for the national calendar's data, "weekday rule" beyond it)."""
    from ..domain.calendar import _package_covers

    cal = deadlines.calendar(session)
    notes = {o.day: o for o in session.exec(select(CalendarOverride).where(
        CalendarOverride.day >= first.replace(day=1), CalendarOverride.day < _next_month(first))).all()}
    confirmed = set(session.exec(select(CalendarYear.year)).all())
    d, weeks, week = first.replace(day=1), [], [None] * first.replace(day=1).weekday()
    while d < _next_month(first):
        o = notes.get(d)
        source = "override" if o else ("package" if _package_covers(d.year) else
                                       ("entered" if d.year in confirmed else "weekday_rule"))
        week.append({"day": d, "working": cal.is_working_day(d), "weekend": d.weekday() >= 5, "source": source,
                     "note": o.note if o else ""})
        if len(week) == 7:
            weeks.append(week)
            week = []
        d += timedelta(days=1)
    if week:
        weeks.append(week + [None] * (7 - len(week)))
    return weeks


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)
