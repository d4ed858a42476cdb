"""Working-day deadlines from the rule set and the calendar (package data plus administrator overrides)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, select

from ..domain.calendar import WorkingCalendar
from ..models import CalendarOverride, Case
from . import rulesets

# Which time limit (rule-set key) runs in which state, counted from the moment the state was entered.
STATE_LIMITS = {
    "registered": "investigation",
    "investigating": "investigation",
    "under_review": "determination",
    "determined": "determination",
    "in_publicity": "publicity",
    "appeal_window": "appeal_window",
    "appeal_review": "appeal_decision",
}


def calendar(session: Session) -> WorkingCalendar:
    """The working-day calendar with the administrators' overrides."""
    overrides = {o.day: o.working for o in session.exec(select(CalendarOverride))}
    return WorkingCalendar(overrides)


def add_working_days(session: Session, start: date, days: int) -> date:
    """The date `days` working days after `start`."""
    return calendar(session).add_working_days(start, days)


def due_for(session: Session, case: Case, today: date | None = None) -> date | None:
    """The deadline of the case's current step, counted from today (the step starts now)."""
    today = today or date.today()
    key = STATE_LIMITS.get(case.state)
    if key is None:
        return None
    rs = rulesets.procedure_rules(session, case)
    due = add_working_days(session, today, rulesets.time_limit(rs, key))
    return min(due, regulatory_limit(case, rs))


def regulatory_limit(case: Case, rs) -> date:
    """The whole case must finish within the regulatory limit (one year, 金规〔2024〕11号)."""
    return case.opened_at.date() + timedelta(days=rulesets.time_limit(rs, "total_case"))
