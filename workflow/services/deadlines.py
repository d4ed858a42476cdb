"""Working-day deadlines from the rule set and the calendar (package data plus administrator overrides).

Also the timer (`tick`: automatic moves when publicity or the appeal window ends, overdue marking and
notifications), the supervisors' escalation list and the deadline shown on a case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Boolean, Date, Integer, and_, cast, event, false, null, or_, union_all
from sqlmodel import Session, select

from ..db import rows
from ..domain import policy
from ..domain.calendar import CalendarWarning, WorkingCalendar, year_not_covered_warning
from ..domain.errors import NotFound
from ..domain.policy import has_role
from ..domain.states import LIMIT_WARNING_DAYS, OPEN_STATES, STATE_LABELS, TERMINAL_STATES, limit_position
from ..models import (
    AuditEvent,
    Branch,
    CalendarOverride,
    CalendarYear,
    Case,
    Notification,
    RuleSetVersion,
    User,
)
from . import audit, notifications, rulesets

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


# The overrides and the years entered whole, in one statement (a page that shows a deadline reads them once).
_CALENDAR_ROWS = union_all(
    select(CalendarOverride.day, CalendarOverride.working, cast(null(), Integer).label("year")),
    select(cast(null(), Date), cast(null(), Boolean), CalendarYear.year))
_CALENDAR = "mianze.calendar"
_CALENDAR_DATA = "mianze.calendar_data"


def _calendar_data(session: Session) -> tuple[dict[date, bool], tuple[int, ...]]:
    """(overrides, years entered whole), read once per unit of work (again after a calendar change)."""
    data = session.info.get(_CALENDAR_DATA)
    if data is None:
        overrides, years = {}, []
        for day, working, year in rows(session, _CALENDAR_ROWS):
            if year is None:
                overrides[day] = working
            else:
                years.append(year)
        data = session.info[_CALENDAR_DATA] = (overrides, tuple(years))
    return data


def _overrides(session: Session) -> dict[date, bool]:
    return dict(_calendar_data(session)[0])


def calendar(session: Session, overrides: dict[date, bool] | None = None) -> WorkingCalendar:
    """The working-day calendar with the administrators' overrides (read now unless given) and the years
    whose schedule they entered whole (services/holidays.py)."""
    stored, years = _calendar_data(session)
    return WorkingCalendar(stored if overrides is None else overrides, confirmed_years=years)


def add_working_days(session: Session, start: date, days: int) -> date:
    """The date `days` working days after `start` (the calendar is read once per unit of work)."""
    cal = session.info.get(_CALENDAR)
    if cal is None:
        cal = session.info[_CALENDAR] = calendar(session)
    return cal.add_working_days(start, days)


@event.listens_for(Session, "after_flush")
def _forget_changed_calendar(session, _context) -> None:
    """An override written in this unit of work: the calendar is read again when next needed."""
    if (_CALENDAR in session.info or _CALENDAR_DATA in session.info) and any(
            isinstance(o, CalendarOverride | CalendarYear) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info.pop(_CALENDAR, None)
        session.info.pop(_CALENDAR_DATA, None)


def due_for(session: Session, case: Case, today: date | None = None) -> date | None:
    """The deadline of the case's current step, counted from today (the step starts now)."""
    return due_after(session, case, case.state, today)


def due_after(session: Session, case: Case, state: str, today: date | None = None) -> date | None:
    """The deadline of the step that starts today when the case enters `state`."""
    today = today or date.today()
    key = STATE_LIMITS.get(state)
    if key is None:
        return None
    rs = rulesets.procedure_rules(session, case)
    due = add_working_days(session, today, rulesets.time_limit(rs, key))
    return min(due, regulatory_limit(case, rs))


def statement_due(session: Session, case: Case, today: date | None = None) -> date:
    """The last day for the respondents of a case registered today to file or decline their statement."""
    rs = rulesets.procedure_rules(session, case)
    due = add_working_days(session, today or date.today(), rulesets.time_limit(rs, "statement"))
    return min(due, regulatory_limit(case, rs))


def regulatory_limit(case: Case, rs) -> date:
    """The whole case must finish within the regulatory limit (one year, 金规〔2024〕11号)."""
    return case.opened_at.date() + timedelta(days=rulesets.time_limit(rs, "total_case"))


# --- deadline information for the UI ---------------------------------------------------------------------

BASIS_LABELS = {
    "bank_policy": {"zh": "银行内部政策默认期限（无监管出处）", "en": "Bank-policy default (no regulatory source)"},
    "regulatory": {"zh": "监管时限", "en": "Regulatory limit"},
}


def _warning_dict(warning: CalendarWarning, overrides: int) -> dict:
    return {"code": warning.code, "year": warning.year, "message": warning.message,
            "message_zh": warning.message_zh, "overrides": overrides}


def _override_counts(session: Session, overrides: dict[date, bool] | None = None) -> dict[int, int]:
    counts: dict[int, int] = {}
    for day in (_overrides(session) if overrides is None else overrides):
        counts[day.year] = counts.get(day.year, 0) + 1
    return counts


def calendar_warnings(session: Session, years: Iterable[int] | None = None) -> list[dict]:
    """Years (default: this year and the next) that fall back to weekends only, for administrators.

    Each warning says how many overrides an administrator already recorded for that year: the days they
    define are exact, every other day of the year still counts Monday–Friday.
    """
    if years is None:
        this_year = date.today().year
        years = (this_year, this_year + 1)
    counts = _override_counts(session)
    return [_warning_dict(year_not_covered_warning(y), counts.get(y, 0))
            for y in calendar(session).uncovered_years(years)]


def deadline_info(session: Session, case: Case, today: date | None = None) -> dict | None:
    """The case's current deadline for the UI: date, working days left, which limit and its basis.

    `basis` is "bank_policy" for the rule set's working-day defaults and "regulatory" when the one-year
    limit (金规〔2024〕11号) is the nearer one. `warnings` lists the years this count had to treat as
    weekends-only (shown to administrators). None when the case has no running deadline.
    """
    if case.due_date is None:
        return None
    today = today or date.today()
    rs = rulesets.procedure_rules(session, case)
    limit = regulatory_limit(case, rs)
    key = STATE_LIMITS.get(case.state)
    if key is None or case.due_date >= limit:
        key = "total_case"  # the one-year limit comes first (or at the same time): it is the deadline
    due = min(case.due_date, limit)
    tl = rs.time_limits[key]
    overrides = _overrides(session)
    cal = calendar(session, overrides)
    left = cal.remaining(due, today)
    counts = _override_counts(session, overrides)
    return {
        "due": due,
        "limit": key,
        "label": {"zh": tl.zh, "en": tl.en},
        "days": tl.days,
        "unit": tl.unit,
        "basis": tl.basis,
        "basis_label": BASIS_LABELS[tl.basis],
        "source": tl.source,
        "working_days_left": left,
        "calendar_days_left": (due - today).days,
        "overdue": due < today,
        "regulatory_limit": limit,
        "warnings": [_warning_dict(w, counts.get(w.year, 0)) for w in cal.warnings],
    }


# --- the one-year limit ----------------------------------------------------------------------------------

def one_year(session: Session, case: Case, today: date | None = None) -> dict | None:
    """Where an open case stands against its one-year limit (金规〔2024〕11号): the limit's date, the
    calendar days left (negative once past it), its position ("ok", "near", "past") and the rule's source.
    None for a case whose determination is done (final, referred, closed) or withdrawn."""
    if case.state not in OPEN_STATES:
        return None
    today = today or date.today()
    rs = rulesets.procedure_rules(session, case)
    limit = regulatory_limit(case, rs)
    tl = rs.time_limits["total_case"]
    return {"limit": limit, "days_left": (limit - today).days, "position": limit_position(limit, today),
            "label": {"zh": tl.zh, "en": tl.en}, "source": tl.source}


def limit_days(session: Session) -> dict[int, int]:
    """The one-year limit in days of every published rule-set version, by version id."""
    versions = session.exec(select(RuleSetVersion.id).where(RuleSetVersion.status == "published")).all()
    return {v: rulesets.time_limit(rulesets.parsed_by_id(session, v), "total_case") for v in versions}


def near_limit_clause(session: Session, today: date):
    """The SQL condition "the case is still being determined and within LIMIT_WARNING_DAYS of its one-year
    limit, or past it": per rule-set version (each case's limit is its procedure rules'), exact."""
    by_days: dict[int, list[int]] = {}
    for version_id, days in limit_days(session).items():
        by_days.setdefault(days, []).append(version_id)
    per_version = [and_(Case.rule_set_version_id.in_(ids),
                        Case.opened_at < datetime.combine(
                            today - timedelta(days=days - LIMIT_WARNING_DAYS - 1), time.min, UTC))
                   for days, ids in sorted(by_days.items())]
    return and_(Case.state.in_(OPEN_STATES), or_(*per_version) if per_version else false())


def near_limit_cases(session: Session, today: date, scope: Branch | None = None) -> list[dict]:
    """Open cases within LIMIT_WARNING_DAYS of their one-year limit or past it, nearest (most overdue) first.

    `scope` limits them to a branch's subtree (None: the whole bank). Each entry: case, branch, limit,
    days_left, position.
    """
    query = (select(Case, Branch).join(Branch, Branch.id == Case.branch_id)
             .where(near_limit_clause(session, today)))
    if scope is not None:
        query = query.where(Branch.path.startswith(scope.path))
    out = []
    for case, branch in session.exec(query.order_by(Case.opened_at, Case.id)):
        info = one_year(session, case, today)
        out.append({"case": case, "branch": branch, "limit": info["limit"], "days_left": info["days_left"],
                    "position": info["position"]})
    return sorted(out, key=lambda e: (e["limit"], e["case"].id))


def limit_watchers(session: Session, case: Case) -> list[User]:
    """Who hears that a case crossed a line of its one-year limit: the chairs of its branch and head office's
    administrators and chairs (active staff only)."""
    branch_ids = [case.branch_id] + list(session.exec(select(Branch.id).where(Branch.level == 0)))
    users = session.exec(select(User).where(User.branch_id.in_(branch_ids), User.active.is_(True))
                         .order_by(User.id)).all()
    return [u for u in users if (u.branch_id == case.branch_id and has_role(u.role_set, "committee_chair"))
            or (u.branch_id != case.branch_id and has_role(u.role_set, "admin", "committee_chair"))]


def _limit_message(case: Case, limit: date, position: str, locale: str) -> str:
    if locale == "en":
        if position == "past":
            return (f"Case {case.number} is past its one-year limit ({limit.isoformat()}) and is not yet "
                    f"determined with effect.")
        return f"Case {case.number} reaches its one-year limit on {limit.isoformat()}."
    if position == "past":
        return f"案件 {case.number} 已超过一年办理时限（{limit.isoformat()}），认定尚未生效。"
    return f"案件 {case.number} 将于 {limit.isoformat()} 届满一年办理时限。"


def mark_limit(session: Session, case: Case, today: date, actor=None) -> list[Notification]:
    """Record that an open case crossed a line of its one-year limit (near, past; audited once per line)
    and tell its chairs and head office, once per line and person. Returns the notifications created now.
    The caller holds the case row locked (`get_case(for_update=True)`)."""
    info = one_year(session, case, today)
    if info is None or info["position"] == "ok":
        return []
    position, limit = info["position"], info["limit"]
    marker = f"one_year:{case.id}:{position}"
    seen = {e.payload.get("marker") for e in session.exec(
        select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.event == "one_year_limit"))}
    people = limit_watchers(session, case)
    if marker not in seen:
        audit.record(session, event="one_year_limit", actor=actor, case_id=case.id, from_state=case.state,
                     payload={"marker": marker, "position": position, "limit": limit, "today": today,
                              "notified": sorted(u.username for u in people)})
    return notifications.notify(session, [u.id for u in people], case_id=case.id, kind="one_year_limit",
                                key=marker, zh=_limit_message(case, limit, position, "zh"),
                                en=_limit_message(case, limit, position, "en"))


# --- escalation --------------------------------------------------------------------------------------------

def overdue_cases(session: Session, today: date, scope: Branch | None = None, *, strictly_below: bool = False):
    """Open cases whose current deadline passed before `today`, oldest deadline first."""
    query = (select(Case, Branch).join(Branch, Branch.id == Case.branch_id)
             .where(Case.due_date.is_not(None), Case.due_date < today, Case.state.not_in(sorted(TERMINAL_STATES))))
    if scope is not None:
        query = query.where(Branch.path.startswith(scope.path))
        if strictly_below:
            query = query.where(Branch.id != scope.id)
    return list(session.exec(query.order_by(Case.due_date, Case.id)))


def overdue_for_supervisor(session: Session, user: User, today: date | None = None) -> list[dict]:
    """Overdue cases of the branches below the user's branch (the branch above supervises), oldest first."""
    today = today or date.today()
    home = session.get(Branch, user.branch_id)
    if home is None:
        raise NotFound(f"branch {user.branch_id} does not exist")
    cal = calendar(session)
    return [{"case_id": case.id, "number": case.number, "state": case.state, "due": case.due_date,
             "working_days_overdue": -cal.remaining(case.due_date, today),
             "branch_id": branch.id, "branch": branch.code, "branch_name": branch.name,
             "branch_name_en": branch.name_en or branch.name}
            for case, branch in overdue_cases(session, today, home, strictly_below=True)]


def concerned_users(session: Session, case: Case) -> list[User]:
    """Who must act on the case's current step (and so hears that it is overdue)."""
    def with_role(branch_ids, *roles):
        users = session.exec(select(User).where(User.branch_id.in_(branch_ids), User.active.is_(True))
                             .order_by(User.id)).all()
        return [u for u in users if has_role(u.role_set, *roles)]

    if case.state == "investigating" and case.investigator_id is not None:
        people = [session.get(User, case.investigator_id)]
    elif case.state == "under_review":
        people = with_role([case.branch_id], "committee_chair", "committee_member")
    elif case.state == "appeal_review":
        # The appeal committee of the level above the deciding committee: its members vote, its chair signs.
        people = with_role([policy.appeal_body_of(session.get(Branch, case.branch_id).path)], "appeal_reviewer",
                           "appeal_chair")
    else:
        people = with_role([case.branch_id], "committee_chair")
    return [u for u in people if u is not None and u.active]


def _overdue_message(case: Case, locale: str, cal: WorkingCalendar, today: date) -> str:
    label = STATE_LABELS[case.state]
    late = -cal.remaining(case.due_date, today)
    if locale == "en":
        return (f"Case {case.number} ({label['en'].lower()}) is overdue: the deadline was "
                f"{case.due_date.isoformat()} ({late} working day(s) ago).")
    return f"案件 {case.number}（{label['zh']}）已逾期：期限为 {case.due_date.isoformat()}，已超过 {late} 个工作日。"


def overdue_key(case: Case, user_id: int) -> str:
    """The notification key: one per case, step, deadline and person, so reruns never duplicate it."""
    return f"overdue:{case.id}:{case.state}:{case.due_date.isoformat()}:{user_id}"


def mark_overdue(session: Session, case: Case, today: date, actor=None) -> list[Notification]:
    """Record that the case's step is overdue (audited once) and notify the people concerned.

    Idempotent: returns only the notifications created now. The caller should hold the case row locked
    (`get_case(for_update=True)`) so that two runs at once see each other's rows.
    """
    if case.due_date is None or case.due_date >= today or case.state in TERMINAL_STATES:
        return []
    cal = calendar(session)
    people = concerned_users(session, case)
    marker = f"overdue:{case.id}:{case.state}:{case.due_date.isoformat()}"
    seen = {e.payload.get("marker") for e in session.exec(
        select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.event == "deadline_missed"))}
    if marker not in seen:
        audit.record(session, event="deadline_missed", actor=actor, case_id=case.id, from_state=case.state,
                     payload={"marker": marker, "due": case.due_date, "today": today,
                              "notified": sorted(u.username for u in people)})
    return notifications.notify(session, [u.id for u in people], case_id=case.id, kind="overdue", key=marker,
                                zh=_overdue_message(case, "zh", cal, today),
                                en=_overdue_message(case, "en", cal, today))


# --- the timer ---------------------------------------------------------------------------------------------

# State → (automatic trigger, the date column whose passing allows it).
AUTOMATIC_MOVES = {
    "in_publicity": ("end_publicity", "publicity_ends"),
    "appeal_window": ("close_appeal_window", "appeal_window_ends"),
}


@dataclass
class TickSummary:
    """What one run of the timer did."""

    today: date
    moved: dict[str, int] = field(default_factory=lambda: {t: 0 for t, _ in AUTOMATIC_MOVES.values()})
    already_moved: int = 0
    refused: list[str] = field(default_factory=list)
    overdue: int = 0
    one_year: int = 0  # open cases near or past their one-year limit
    notified: int = 0
    errors: list[str] = field(default_factory=list)
    checkpoint: int | None = None  # the seq of the audit chain's latest signed checkpoint

    def to_dict(self) -> dict:
        return {"today": self.today.isoformat(), "moved": dict(self.moved), "already_moved": self.already_moved,
                "refused": list(self.refused), "overdue": self.overdue, "one_year": self.one_year,
                "notified": self.notified, "errors": list(self.errors), "checkpoint": self.checkpoint}
