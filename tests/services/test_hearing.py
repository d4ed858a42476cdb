"""The right to be heard: registration invites every respondent to file an exemption statement by a
deadline; the investigation waits for each one until they file, decline or let the deadline pass, and the
record (audit trail, investigation report) says which."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from tests.factories import TODAY, drive, record_all_facts
from tests.letters_text import pdf_text
from workflow.db import unit_of_work
from workflow.domain import hearing
from workflow.domain.errors import GuardFailed, ValidationFailed
from workflow.models import AuditEvent, Case, Notification, Respondent
from workflow.services import cases, deadlines, letters


def _respondent(s, bank, username: str, case_id: int) -> Respondent:
    return s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                           Respondent.user_id == bank.users[username])).one()


def _investigated(bank) -> int:
    case_id = drive(bank, "investigating")
    record_all_facts(bank, case_id)
    return case_id


def test_registration_sets_the_deadline_from_the_rule_set_and_invites_every_respondent(bank):
    case_id = drive(bank, "registered")
    with Session(bank.engine) as s:
        expected = deadlines.add_working_days(s, TODAY, 10)  # the rule set's bank-policy default
        dues = {r.user_id: r.statement_due for r in s.exec(select(Respondent).where(Respondent.case_id == case_id))}
        notes = s.exec(select(Notification).where(Notification.case_id == case_id,
                                                  Notification.kind == "statement_invited")).all()
        opened = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                 AuditEvent.event == "open_case")).one()
    assert set(dues) == {bank.users[u] for u in ("officer", "reviewer", "approver")}
    assert set(dues.values()) == {expected}
    assert sorted(n.user_id for n in notes) == sorted(dues)
    assert all(expected.isoformat() in n.message and "免责陈述" in n.message for n in notes)
    assert opened.payload["statement_due"] == expected.isoformat()


def test_one_files_one_declines_one_lets_the_deadline_pass(bank):
    case_id = _investigated(bank)
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        cases.file_statement(s, case, bank.user(s, "officer"), "本人已按规定完成贷前调查，借款用途核实无误。")
        cases.decline_statement(s, case, bank.user(s, "reviewer"), "对调查事实无异议")
        due = _respondent(s, bank, "approver", case_id).statement_due

    # Before the deadline the investigation waits for the approver, and says so by name and date.
    with pytest.raises(GuardFailed) as refused:
        with unit_of_work(bank.engine) as s:
            cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"), today=due)
    assert f"王五 ({due.isoformat()})" in refused.value.message and "张三" not in refused.value.message
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "investigating"

    # The day after it, the investigation goes on without the approver's statement.
    after = due + timedelta(days=1)
    with unit_of_work(bank.engine) as s:
        cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"), today=after)
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "under_review"
        submitted = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                    AuditEvent.event == "submit_investigation")).one()
        positions = cases.statement_positions(s, s.get(Case, case_id), after)
        report = letters.current(s, "investigation_report", case_id, None)
    assert submitted.payload["statements"] == {"officer": "filed", "reviewer": "declined", "approver": "lapsed"}
    assert sorted(positions.values()) == ["declined", "filed", "lapsed"]
    text = "".join(pdf_text(report.pdf).split())
    assert "被评议人张三的履职情况" in text
    assert "被评议人于" in text and "本人已按规定完成贷前调查，借款用途核实无误。" in text  # filed, in full
    assert "被评议人书面表示不提交免责陈述。" in text  # declined
    assert "被评议人在规定期限内未提交免责陈述。" in text  # let the deadline pass


def test_declining_then_filing_and_what_cannot_be_declined(bank):
    case_id = _investigated(bank)
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        cases.decline_statement(s, case, bank.user(s, "reviewer"))
        cases.file_statement(s, case, bank.user(s, "reviewer"), "经再三考虑，补充陈述如下：审查环节已按规定核实。")
    with Session(bank.engine) as s:
        r = _respondent(s, bank, "reviewer", case_id)
        assert hearing.position(r.statement_at, r.statement_declined_at, r.statement_due, TODAY) == hearing.FILED
        assert r.statement_declined_at is None  # the statement replaced the refusal
    with pytest.raises(ValidationFailed, match="a statement has been filed"):
        with unit_of_work(bank.engine) as s:
            cases.decline_statement(s, s.get(Case, case_id), bank.user(s, "reviewer"))
    with pytest.raises(ValidationFailed, match="at most 500"):
        with unit_of_work(bank.engine) as s:
            cases.decline_statement(s, s.get(Case, case_id), bank.user(s, "approver"), "长" * 501)
    from workflow.domain.errors import PermissionDenied

    with pytest.raises(PermissionDenied):  # only a respondent declines, for themselves
        with unit_of_work(bank.engine) as s:
            cases.decline_statement(s, s.get(Case, case_id), bank.user(s, "investigator"))
    with Session(bank.engine) as s:
        events = [e.event for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id))]
    assert events.count("decline_statement") == 1 and "file_statement" in events


def test_every_respondent_heard_before_the_deadline_lets_the_investigation_go_at_once(bank):
    case_id = _investigated(bank)
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        cases.file_statement(s, case, bank.user(s, "officer"), "本人已尽职。")
        for who in ("reviewer", "approver"):
            cases.decline_statement(s, case, bank.user(s, who))
    with unit_of_work(bank.engine) as s:
        cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"), today=TODAY)
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "under_review"
    with pytest.raises(Exception, match="until the investigation is submitted"):
        with unit_of_work(bank.engine) as s:
            cases.decline_statement(s, s.get(Case, case_id), bank.user(s, "officer"))


def test_a_rule_set_published_before_invitations_reads_the_default_statement_limit():
    import json

    from workflow.domain import rules

    data = json.loads(rules.DEFAULT_RULE_SET_PATH.read_text(encoding="utf-8"))
    del data["time_limits"]["statement"]
    limit = rules.parse_rule_set(data).time_limits["statement"]
    assert (limit.days, limit.unit, limit.basis) == (10, "working_days", "bank_policy")
