"""Deadlines through the services: the timer (`deadlines tick`), overdue notices, escalation, deadline labels.

Dates are explicit (autumn 2026 and the turn of 2027). chinesecalendar has the 2026 holidays (National Day
2026-10-01..07, make-up Saturday 10-10) and no data for 2027; see tests/unit/test_calendar.py for the
hand counts. Each case gets its own enterprise and loan (a loan can be in one open case only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import threading
from datetime import UTC, date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.factories import Bank, drive, make_bank, serve_letters
from workflow.db import unit_of_work
from workflow.models import (
    AuditEvent,
    Case,
    Enterprise,
    LetterService,
    Loan,
    LoanStage,
    Notification,
    NotificationDelivery,
)
from workflow.services import accounts, audit, cases, deadlines, jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def letters_without_weasyprint(monkeypatch):
    """Letters are still prepared, checked and stored, but not typeset: their PDFs are not under test here."""
    from workflow import pdf

    monkeypatch.setattr(pdf, "_write_pdf", lambda html, *args: b"%PDF-1.7 stub " + hashlib.sha256(html.encode()).digest())
    monkeypatch.setattr(pdf, "_sign_pdf", lambda data, signer: data)


def with_own_loan(bank: Bank, tag: int, branch: str = "OU") -> Bank:
    """The bank with a new enterprise and one non-performing loan handled by the officer alone."""
    with unit_of_work(bank.engine) as s:
        ent = Enterprise(name=f"测试企业{tag}", uscc=f"9111000000{tag:07d}X", kind="small")
        s.add(ent)
        s.flush()
        loan = Loan(loan_no=f"LT-{tag:05d}", enterprise_id=ent.id, branch_id=bank.branches[branch],
                    product_class="inclusive_sme", credit_total=Decimal("500000"), amount=Decimal("500000"),
                    balance=Decimal("400000.00"), start_date=date(2024, 9, 1), maturity_date=date(2025, 9, 1),
                    classification="substandard")
        s.add(loan)
        s.flush()
        s.add(LoanStage(loan_id=loan.id, stage="pre_loan", user_id=bank.users["officer"],
                        performed_on=date(2024, 8, 20)))
    return dataclasses.replace(bank, loans=[loan.id], enterprise_id=ent.id)


def set_dates(engine, case_id: int, **values) -> None:
    """Put explicit dates on a case (fixture set-up: the services stamp the real clock)."""
    with unit_of_work(engine) as s:
        case = s.get(Case, case_id)
        for name, value in values.items():
            setattr(case, name, value)
        s.add(case)


def in_publicity_until(bank: Bank, tag: int, ends: date) -> int:
    """A case whose publicity (5 working days) ends on `ends`: driven on the day it started, at that time."""
    from datetime import datetime, time

    from workflow.domain.calendar import WorkingCalendar
    from workflow.models import replaying_at

    started = WorkingCalendar().add_working_days(ends, -5)
    with replaying_at(datetime.combine(started, time(9, 0), UTC)):
        case_id = drive(with_own_loan(bank, tag), "in_publicity", today=started)
    set_dates(bank.engine, case_id, publicity_ends=ends, due_date=ends)
    serve_letters(bank, case_id, ends)  # the appeal window runs from the service of the letters
    return case_id


def in_appeal_window_until(bank: Bank, tag: int, ends: date, *, appeal: bool) -> int:
    """A case of one respondent in its appeal window, which ends on `ends`; with `appeal`, the respondent
    appeals, and the case leaves the window at once (every respondent has appealed)."""
    case_id = drive(with_own_loan(bank, tag), "appeal_window")
    if appeal:
        with unit_of_work(bank.engine) as s:
            case = s.get(Case, case_id)
            cases.file_appeal(s, case, bank.user(s, "officer"), "我已尽职，证据见附件", today=case.publicity_ends)
        return case_id
    set_dates(bank.engine, case_id, appeal_window_ends=ends, due_date=ends)
    with unit_of_work(bank.engine) as s:  # each respondent's window (from their letter's service) ends then too
        for service in s.exec(select(LetterService).where(LetterService.case_id == case_id)):
            service.appeal_deadline = ends
            s.add(service)
    return case_id


def events_of(engine, case_id: int, event: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.event == event)))


def load(engine, case_id: int) -> Case:
    with Session(engine) as s:
        return s.get(Case, case_id)


def notifications(engine) -> list[Notification]:
    """The notifications of the deadlines (not those of the case's events: named, assigned, served…)."""
    with Session(engine) as s:
        return list(s.exec(select(Notification).where(Notification.kind.in_(("overdue", "one_year_limit")))
                           .order_by(Notification.id)))


# --- automatic moves and the calendar ------------------------------------------------------------------

def test_the_timer_opens_an_appeal_window_that_runs_past_national_day_to_12_october(bank):
    case_id = in_publicity_until(bank, 1, date(2026, 9, 29))

    summary = jobs.tick(bank.engine, today=date(2026, 9, 30))

    case = load(bank.engine, case_id)
    assert case.state == "appeal_window"
    # From 09-29: Wed 09-30 (1); holiday 10-01..07; Thu 10-08 (2), Fri 10-09 (3), make-up Sat 10-10 (4), Mon 10-12 (5).
    assert case.appeal_window_ends == date(2026, 10, 12)
    assert case.due_date == date(2026, 10, 12)
    assert summary.moved == {"end_publicity": 1, "close_appeal_window": 0}
    [event] = events_of(bank.engine, case_id, "end_publicity")
    assert (event.actor, event.actor_id, event.to_state) == ("system", None, "appeal_window")


def test_the_timer_leaves_a_case_whose_publicity_ends_today_alone(bank):
    case_id = in_publicity_until(bank, 2, date(2026, 9, 29))

    summary = jobs.tick(bank.engine, today=date(2026, 9, 29))

    assert load(bank.engine, case_id).state == "in_publicity"
    assert summary.moved == {"end_publicity": 0, "close_appeal_window": 0}


@pytest.mark.parametrize(("overrides", "window_ends"), [
    # Override Fri 2027-01-01 and Mon 01-04 as holidays: 12-30 (1), 12-31 (2), 01-05 (3), 01-06 (4), 01-07 (5).
    ({date(2027, 1, 1): False, date(2027, 1, 4): False}, date(2027, 1, 7)),
    # No override: weekdays only — 12-30 (1), 12-31 (2), Fri 01-01 (3), Mon 01-04 (4), Tue 01-05 (5).
    ({}, date(2027, 1, 5)),
], ids=["with-overrides", "weekends-only"])
def test_an_appeal_window_into_2027_uses_the_overrides_or_weekends_only_and_warns(bank, overrides, window_ends):
    with unit_of_work(bank.engine) as s:
        for day, working in overrides.items():
            accounts.set_calendar_override(s, bank.user(s, "admin"), day, working, "元旦假期（待国务院通知）")
    case_id = in_publicity_until(bank, 3, date(2026, 12, 29))

    jobs.tick(bank.engine, today=date(2026, 12, 30))

    case = load(bank.engine, case_id)
    assert (case.state, case.appeal_window_ends) == ("appeal_window", window_ends)
    with Session(bank.engine) as s:
        [warning] = deadlines.calendar_warnings(s, [2026, 2027])
        info = deadlines.deadline_info(s, s.get(Case, case_id), today=date(2026, 12, 30))
    assert (warning["code"], warning["year"], warning["overrides"]) == ("calendar_year_not_covered", 2027,
                                                                       len(overrides))
    assert "2027年" in warning["message_zh"]
    # The count from 12-30 to the window's end still meets 2027 days nobody defined (the weekend 01-02/03).
    assert [w["year"] for w in info["warnings"]] == [2027]
    assert info["working_days_left"] == 4


def test_a_closed_appeal_window_without_appeals_makes_the_case_final_and_with_one_goes_to_review(bank):
    quiet = in_appeal_window_until(bank, 4, date(2026, 9, 29), appeal=False)
    appealed = in_appeal_window_until(bank, 5, date(2026, 9, 29), appeal=True)

    summary = jobs.tick(bank.engine, today=date(2026, 9, 30))

    assert load(bank.engine, quiet).state == "final"
    assert load(bank.engine, appealed).state == "appeal_review"  # left the window when its respondent appealed
    assert summary.moved == {"end_publicity": 0, "close_appeal_window": 1}


# --- running twice ---------------------------------------------------------------------------------------

def _four_cases(bank: Bank) -> dict[str, int]:
    """A publicity that ended, two appeal windows that ended (one appealed), an investigation overdue."""
    ids = {
        "publicity": in_publicity_until(bank, 11, date(2026, 9, 29)),
        "quiet": in_appeal_window_until(bank, 12, date(2026, 9, 29), appeal=False),
        "appealed": in_appeal_window_until(bank, 13, date(2026, 9, 29), appeal=True),
        "late": drive(with_own_loan(bank, 14), "investigating", today=date(2026, 8, 3)),
    }
    assert load(bank.engine, ids["late"]).due_date < date(2026, 9, 30)
    return ids


def _assert_each_case_moved_once(bank: Bank, ids: dict[str, int]) -> None:
    states_now = {name: load(bank.engine, case_id).state for name, case_id in ids.items()}
    assert states_now == {"publicity": "appeal_window", "quiet": "final", "appealed": "appeal_review",
                          "late": "investigating"}
    assert len(events_of(bank.engine, ids["publicity"], "end_publicity")) == 1
    assert len(events_of(bank.engine, ids["quiet"], "close_appeal_window")) == 1
    assert len(events_of(bank.engine, ids["appealed"], "close_appeal_window")) == 1
    assert len(events_of(bank.engine, ids["late"], "deadline_missed")) == 1
    late = notifications(bank.engine)
    assert [(n.user_id, n.case_id, n.kind) for n in late] == [(bank.users["investigator"], ids["late"], "overdue")]
    with Session(bank.engine) as s:
        audit.verify(s)


def test_two_timers_running_at_once_move_each_case_exactly_once(bank):
    ids = _four_cases(bank)
    barrier = threading.Barrier(2)
    summaries, failures = [], []

    def run():
        barrier.wait()
        try:
            summaries.append(jobs.tick(bank.engine, today=date(2026, 9, 30)))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert failures == []
    assert [s.errors for s in summaries] == [[], []]
    assert sum(s.moved["end_publicity"] for s in summaries) == 1
    assert sum(s.moved["close_appeal_window"] for s in summaries) == 1  # the appealed case left at the appeal
    assert sum(s.notified for s in summaries) == 1
    _assert_each_case_moved_once(bank, ids)


def test_two_timer_processes_on_one_sqlite_file_move_each_case_exactly_once(sqlite_engine, sqlite_url):
    bank = make_bank(sqlite_engine)
    ids = _four_cases(bank)
    env = {**os.environ, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test-secret", "MIANZE_SMTP_HOST": ""}
    command = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "deadlines", "tick",
               "--today", "2026-09-30"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in runs]

    assert [p.returncode for p in runs] == [0, 0], outputs
    assert all('"moved"' in out for out, _ in outputs)
    _assert_each_case_moved_once(bank, ids)


def test_running_the_timer_again_changes_nothing_and_adds_no_notification(bank):
    ids = _four_cases(bank)
    first = jobs.tick(bank.engine, today=date(2026, 9, 30))
    with Session(bank.engine) as s:
        events_before = audit.verify(s)

    again = jobs.tick(bank.engine, today=date(2026, 9, 30))

    assert (first.notified, first.overdue) == (1, 1)
    assert again.moved == {"end_publicity": 0, "close_appeal_window": 0}
    assert (again.notified, again.overdue, again.errors) == (0, 1, [])
    with Session(bank.engine) as s:
        assert audit.verify(s) == events_before
    _assert_each_case_moved_once(bank, ids)


# --- overdue notices, mail and escalation ------------------------------------------------------------------

def test_overdue_work_is_notified_in_app_once_with_its_mail_queued_in_the_outbox(bank):
    case_id = drive(with_own_loan(bank, 21), "investigating", today=date(2026, 8, 3))

    first = jobs.tick(bank.engine, today=date(2026, 9, 30))
    again = jobs.tick(bank.engine, today=date(2026, 9, 30))

    [note] = notifications(bank.engine)
    number = load(bank.engine, case_id).number
    assert (note.user_id, note.kind) == (bank.users["investigator"], "overdue")
    assert number in note.message and "已逾期" in note.message
    assert (first.notified, again.notified) == (1, 0)
    with Session(bank.engine) as s:  # delivered after the commit by the outbox (tests/services/test_outbox.py)
        queued = s.exec(select(NotificationDelivery).where(NotificationDelivery.notification_id == note.id)).all()
    assert [(d.channel, d.status) for d in queued] == [("mail", "pending")]


def test_an_overdue_review_notifies_the_committee_of_the_deciding_branch(bank):
    case_id = drive(with_own_loan(bank, 23), "under_review", today=date(2026, 8, 3))

    jobs.tick(bank.engine, today=date(2026, 9, 30))

    assert sorted(n.user_id for n in notifications(bank.engine)) == sorted(
        bank.users[u] for u in ("member1", "member2", "chair"))
    assert {n.case_id for n in notifications(bank.engine)} == {case_id}


def test_overdue_cases_appear_on_the_list_of_the_branch_above_only(bank):
    case_id = drive(with_own_loan(bank, 24), "investigating", today=date(2026, 8, 3))
    today = date(2026, 9, 30)

    with Session(bank.engine) as s:
        head_office = deadlines.overdue_for_supervisor(s, bank.user(s, "auditor"), today)
        own_branch = deadlines.overdue_for_supervisor(s, bank.user(s, "chair"), today)
        other_branch = deadlines.overdue_for_supervisor(s, bank.user(s, "other_member"), today)
        due = s.get(Case, case_id).due_date

    assert [(row["case_id"], row["branch"], row["due"]) for row in head_office] == [(case_id, "T1", due)]
    assert head_office[0]["working_days_overdue"] > 0
    assert own_branch == [] and other_branch == []


# --- the deadline shown on a case ------------------------------------------------------------------------

def test_a_step_deadline_is_labelled_a_bank_policy_default(bank):
    case_id = drive(with_own_loan(bank, 31), "investigating", today=date(2026, 9, 22))

    with Session(bank.engine) as s:
        info = deadlines.deadline_info(s, s.get(Case, case_id), today=date(2026, 9, 22))

    assert (info["limit"], info["basis"], info["days"], info["unit"]) == ("investigation", "bank_policy", 20,
                                                                          "working_days")
    assert info["basis_label"]["zh"].startswith("银行内部政策")
    assert info["working_days_left"] == 20
    assert info["overdue"] is False and info["warnings"] == []


def test_the_one_year_limit_is_the_deadline_when_it_comes_first_and_is_labelled_regulatory(bank):
    with_loan = with_own_loan(bank, 32)
    case_id = drive(with_loan, "registered", today=date(2026, 9, 22))
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        case.opened_at = case.opened_at.replace(year=2025, month=10, day=1)
        s.add(case)
    with unit_of_work(bank.engine) as s:
        cases.assign_investigator(s, s.get(Case, case_id), bank.user(s, "chair"), bank.users["investigator"],
                                  today=date(2026, 9, 22))

    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        info = deadlines.deadline_info(s, case, today=date(2026, 9, 22))

    assert case.due_date == date(2026, 10, 1)  # opened 2025-10-01 + 365 days, before 20 working days run out
    assert (info["limit"], info["basis"]) == ("total_case", "regulatory")
    assert "金规〔2024〕11号" in info["source"]


def test_a_case_without_a_running_deadline_has_no_deadline_info(bank):
    case_id = in_appeal_window_until(bank, 33, date(2026, 9, 29), appeal=False)
    jobs.tick(bank.engine, today=date(2026, 9, 30))

    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.state == "final"
        assert deadlines.deadline_info(s, case, today=date(2026, 9, 30)) is None
