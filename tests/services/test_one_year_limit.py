"""The one-year limit (金规〔2024〕11号) and 督办 through the services: every open case's days left, the
list of cases near (within 30 days) or past the limit, the timer telling the chair and head office once per
line, and a supervisor urging the person whose step it is."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import select

from tests.factories import TODAY, drive, make_bank
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, TransitionNotAllowed, ValidationFailed
from workflow.models import AuditEvent, Case, Notification, User
from workflow.services import cases, deadlines, jobs


@pytest.fixture(autouse=True)
def letters_without_weasyprint(monkeypatch):
    from workflow import pdf

    monkeypatch.setattr(pdf, "_write_pdf", lambda html, *args: b"%PDF-1.7 stub " + hashlib.sha256(html.encode()).digest())
    monkeypatch.setattr(pdf, "_sign_pdf", lambda data, signer: data)


@pytest.fixture
def bank(engine):
    return make_bank(engine, n_loans=3, loans_per_enterprise=1)


def opened_days_ago(bank, case_id: int, days: int, **values) -> None:
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        case.opened_at = datetime.combine(TODAY - timedelta(days=days), time(9, 0), UTC)
        for name, value in values.items():
            setattr(case, name, value)
        s.add(case)


def notes(bank, kind: str) -> list[tuple[str, str]]:
    with unit_of_work(bank.engine) as s:
        return sorted((s.get(User, n.user_id).username, n.message) for n in s.exec(
            select(Notification).where(Notification.kind == kind)))


def test_an_open_case_shows_its_days_left_and_a_final_one_none(bank):
    fresh = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    done = drive(bank, "final", loan_ids=[bank.loans[1]])
    opened_days_ago(bank, done, 500)
    with unit_of_work(bank.engine) as s:
        info = deadlines.one_year(s, s.get(Case, fresh), TODAY)
        assert info["limit"] == TODAY + timedelta(days=365)
        assert (info["days_left"], info["position"]) == (365, "ok")
        assert "金规〔2024〕11号" in info["source"]
        assert deadlines.one_year(s, s.get(Case, done), TODAY) is None
        assert deadlines.near_limit_cases(s, TODAY) == []


def test_cases_near_and_past_the_limit_are_listed_nearest_first(bank):
    past = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    near = drive(bank, "registered", loan_ids=[bank.loans[1]])
    far = drive(bank, "investigating", loan_ids=[bank.loans[2]])
    opened_days_ago(bank, past, 398)  # the W12 case: opened more than a year ago, still investigated
    opened_days_ago(bank, near, 335)  # 30 days left: the first day it is listed
    opened_days_ago(bank, far, 334)  # 31 days left: not yet
    with unit_of_work(bank.engine) as s:
        listed = [(e["case"].id, e["position"], e["days_left"]) for e in deadlines.near_limit_cases(s, TODAY)]
        assert listed == [(past, "past", -33), (near, "near", 30)]
        t2 = s.get(User, bank.users["other_member"]).branch_id
        from workflow.models import Branch

        assert deadlines.near_limit_cases(s, TODAY, s.get(Branch, t2)) == []  # another branch's scope


def test_the_tick_tells_the_chair_and_head_office_once_per_line(bank):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 340)
    summary = jobs.tick(bank.engine, today=TODAY)
    assert summary.one_year == 1
    told = notes(bank, "one_year_limit")
    assert [u for u, _ in told] == ["admin", "chair"]  # the case's chair and head office's administrator
    limit = (TODAY + timedelta(days=25)).isoformat()
    assert all(limit in m and "一年办理时限" in m for _, m in told)

    again = jobs.tick(bank.engine, today=TODAY)  # a rerun tells nobody again
    assert again.one_year == 1 and notes(bank, "one_year_limit") == told

    later = jobs.tick(bank.engine, today=TODAY + timedelta(days=26))  # past the limit: told again, once
    assert later.one_year == 1
    past = [m for _, m in notes(bank, "one_year_limit") if "已超过一年办理时限" in m]
    assert len(past) == 2
    with unit_of_work(bank.engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                 AuditEvent.event == "one_year_limit")
                        .order_by(AuditEvent.seq)).all()
        assert [e.payload["position"] for e in events] == ["near", "past"]
        assert events[0].payload["notified"] == ["admin", "chair"]


def test_an_english_speaker_is_told_in_english(bank):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 400)
    with unit_of_work(bank.engine) as s:
        s.get(User, bank.users["admin"]).locale = "en"
    jobs.tick(bank.engine, today=TODAY)
    told = dict(notes(bank, "one_year_limit"))
    assert told["admin"].startswith("Case ") and "past its one-year limit" in told["admin"]
    assert "已超过一年办理时限" in told["chair"]


def test_the_chair_urges_an_overdue_investigation_and_the_investigator_is_told(bank):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 20, due_date=TODAY - timedelta(days=2))
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        version = case.version
        event = cases.urge(s, case, bank.user(s, "chair"), "  请于三个工作日内完成调查并提交。 ", today=TODAY)
    assert event["payload"]["to"] == ["investigator"]
    assert event["payload"]["message"] == "请于三个工作日内完成调查并提交。"
    told = notes(bank, "urge")
    assert [u for u, _ in told] == ["investigator"]
    assert "督办" in told[0][1] and "请于三个工作日内完成调查并提交。" in told[0][1] and "周九" in told[0][1]
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.version == version and case.state == "investigating"  # the case does not change
        trail = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.event == "urge")).all()
        assert [e.actor for e in trail] == ["chair"]
        # a second urge is a second record and a second notice
        cases.urge(s, case, bank.user(s, "admin"), "请尽快办理。", today=TODAY)
    assert len(notes(bank, "urge")) == 2


def test_a_case_near_its_limit_can_be_urged_though_its_step_is_on_time(bank):
    case_id = drive(bank, "registered", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 350, due_date=TODAY + timedelta(days=5))
    with unit_of_work(bank.engine) as s:
        cases.urge(s, s.get(Case, case_id), bank.user(s, "admin"), "请立即指定调查人员。", today=TODAY)
    assert [u for u, _ in notes(bank, "urge")] == ["chair"]  # the chair assigns the investigator


@pytest.mark.parametrize("who, code", [("member1", "not_supervisor"), ("investigator", "not_supervisor"),
                                       ("auditor", "not_supervisor"), ("appeal", "not_supervisor"),
                                       ("officer", "own_case")])
def test_only_supervisors_urge(bank, who, code):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 20, due_date=TODAY - timedelta(days=2))
    with unit_of_work(bank.engine) as s:
        with pytest.raises(PermissionDenied) as exc:
            cases.urge(s, s.get(Case, case_id), bank.user(s, who), "请尽快办理。", today=TODAY)
    assert exc.value.details["reason"] == code
    assert notes(bank, "urge") == []


def test_a_chair_of_another_branch_cannot_urge(bank):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 20, due_date=TODAY - timedelta(days=2))
    with unit_of_work(bank.engine) as s:
        other = s.get(User, bank.users["other_member"])
        other.roles = "committee_chair"
        s.add(other)
    with unit_of_work(bank.engine) as s:
        with pytest.raises(PermissionDenied) as exc:
            cases.urge(s, s.get(Case, case_id), bank.user(s, "other_member"), "请尽快办理。", today=TODAY)
    assert exc.value.details["reason"] == "out_of_scope"


def test_nothing_to_urge_an_empty_or_long_message_and_a_final_case_are_refused(bank):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    done = drive(bank, "final", loan_ids=[bank.loans[1]])
    with unit_of_work(bank.engine) as s:
        with pytest.raises(ValidationFailed, match="only an overdue step"):  # on time, far from the limit
            cases.urge(s, s.get(Case, case_id), bank.user(s, "chair"), "请尽快办理。", today=TODAY)
    opened_days_ago(bank, case_id, 20, due_date=TODAY - timedelta(days=1))
    with unit_of_work(bank.engine) as s:
        with pytest.raises(ValidationFailed, match="write what you urge"):
            cases.urge(s, s.get(Case, case_id), bank.user(s, "chair"), "   ", today=TODAY)
        with pytest.raises(ValidationFailed, match="at most 400"):
            cases.urge(s, s.get(Case, case_id), bank.user(s, "chair"), "催" * 401, today=TODAY)
        with pytest.raises(TransitionNotAllowed):
            cases.urge(s, s.get(Case, done), bank.user(s, "chair"), "请尽快办理。", today=TODAY)
    assert notes(bank, "urge") == []
    with unit_of_work(bank.engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.event == "urge")).all() == []


def test_the_tick_summary_counts_the_one_year_line(bank):
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 370)
    assert jobs.tick(bank.engine, today=TODAY).to_dict()["one_year"] == 1
