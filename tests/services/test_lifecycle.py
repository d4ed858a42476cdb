"""The lifecycle through the service layer, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from tests.factories import TODAY, drive, open_case
from workflow.db import unit_of_work
from workflow.domain import states
from workflow.domain.errors import (
    ConflictError,
    DomainError,
    GuardFailed,
    PermissionDenied,
    TransitionNotAllowed,
)
from workflow.models import Appeal, AuditHead, Case, Letter, Respondent
from workflow.services import audit, cases


def _fire_via_service(s: Session, bank, case: Case, trigger: str):
    """Call the service verb of `trigger` as a plausible actor."""
    u = lambda name: bank.user(s, name)  # noqa: E731
    later = TODAY + timedelta(days=60)
    calls = {
        "assign_investigator": lambda: cases.assign_investigator(s, case, u("chair"), bank.users["investigator"]),
        "submit_investigation": lambda: cases.submit_investigation(s, case, u("investigator")),
        "return_for_investigation": lambda: cases.return_for_investigation(s, case, u("chair"), "需补充调查"),
        "determine": lambda: cases.determine(s, case, u("chair")),
        "start_publicity": lambda: cases.start_publicity(s, case, u("chair")),
        "reopen": lambda: cases.reopen(s, case, u("chair"), "有实质性异议"),
        "end_publicity": lambda: cases.end_publicity(s, case, None, today=later),
        "close_appeal_window": lambda: cases.close_appeal_window(s, case, None, today=later),
        "conclude_appeals": lambda: cases.conclude_appeals(s, case, u("appeal")),
        "refer_for_accountability": lambda: cases.refer_for_accountability(s, case, u("chair")),
        "close": lambda: cases.close(s, case, u("chair")),
        "withdraw": lambda: cases.withdraw(s, case, u("admin"), "贷款已收回"),
    }
    return calls[trigger]()


def _snapshot(engine, case_id):
    with Session(engine) as s:
        c = s.get(Case, case_id)
        head = s.get(AuditHead, 1)
        return c.state, c.version, head.seq, head.hash


@pytest.mark.parametrize("state", [s for s in states.STATE_CODES if s != "withdrawn"])
def test_events_not_allowed_in_a_state_raise_and_change_nothing(bank, state):
    case_id = drive(bank, state)
    before = _snapshot(bank.engine, case_id)
    assert before[0] == state
    for trigger in states.TRIGGERS:
        if trigger in states.allowed_triggers(state):
            continue
        # Before an investigator is assigned, nobody may submit the investigation: the policy refuses first.
        refused = PermissionDenied if (trigger, state) == ("submit_investigation", "registered") \
            else TransitionNotAllowed
        with pytest.raises(refused):
            with unit_of_work(bank.engine) as s:
                _fire_via_service(s, bank, s.get(Case, case_id), trigger)
        assert _snapshot(bank.engine, case_id) == before, trigger
    with Session(bank.engine) as s:
        assert audit.verify(s) == before[2]


def test_the_whole_lifecycle_with_an_appeal_ends_closed_with_letters_and_a_valid_chain(bank):
    case_id = drive(bank, "closed")
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.state == "closed"
        events = [e.event for e in cases.audit_events(s, case_id)]
        for expected in ("open_case", "assign_investigator", "record_facts", "submit_investigation",
                         "recommendation", "record_vote", "determine", "issue_letter", "start_publicity",
                         "end_publicity", "file_appeal", "close_appeal_window", "decide_appeal",
                         "conclude_appeals", "close"):
            assert expected in events
        kinds = {lt.kind for lt in s.exec(select(Letter).where(Letter.case_id == case_id))}
        assert kinds == {"investigation_report", "minutes", "determination", "publicity_notice", "service_record",
                         "appeal_record", "appeal_decision"}
        assert all(r.final_outcome == "exempt" for r in s.exec(select(Respondent)))
        assert audit.verify(s) > 20


def test_a_failing_guard_changes_nothing(bank):
    case_id = drive(bank, "investigating")
    before = _snapshot(bank.engine, case_id)
    with pytest.raises(GuardFailed, match="every respondent needs recorded facts"):
        with unit_of_work(bank.engine) as s:
            cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"))
    assert _snapshot(bank.engine, case_id) == before


def test_withdrawal_needs_a_reason_and_is_refused_under_legal_hold(bank):
    case_id = open_case(bank)
    with pytest.raises(GuardFailed, match="reason"):
        with unit_of_work(bank.engine) as s:
            cases.withdraw(s, s.get(Case, case_id), bank.user(s, "admin"), "")
    with unit_of_work(bank.engine) as s:
        cases.set_legal_hold(s, s.get(Case, case_id), bank.user(s, "auditor"), True, "诉讼保全")
    with pytest.raises(GuardFailed, match="legal hold"):
        with unit_of_work(bank.engine) as s:
            cases.withdraw(s, s.get(Case, case_id), bank.user(s, "admin"), "贷款已收回")


def test_a_stale_version_is_a_conflict_and_nothing_is_written(bank):
    case_id = open_case(bank)
    with Session(bank.engine) as s:
        seen = s.get(Case, case_id).version
    with unit_of_work(bank.engine) as s:
        cases.set_legal_hold(s, s.get(Case, case_id), bank.user(s, "auditor"), True, "保全")
    before = _snapshot(bank.engine, case_id)
    with pytest.raises(ConflictError):
        with unit_of_work(bank.engine) as s:
            cases.withdraw(s, s.get(Case, case_id), bank.user(s, "admin"), "收回", expected_version=seen)
    assert _snapshot(bank.engine, case_id) == before


def test_segregation_a_respondent_cannot_investigate_their_own_case(bank):
    case_id = drive(bank, "registered")
    with unit_of_work(bank.engine) as s:
        officer = bank.user(s, "officer")
        officer.roles = "credit_officer investigator"
        s.add(officer)
    with pytest.raises(GuardFailed, match="may not be a respondent"):
        with unit_of_work(bank.engine) as s:
            cases.assign_investigator(s, s.get(Case, case_id), bank.user(s, "chair"), bank.users["officer"])


def test_the_investigator_and_loan_handlers_may_not_vote(bank):
    case_id = drive(bank, "under_review")
    with Session(bank.engine) as s:
        r = s.exec(select(Respondent).where(Respondent.case_id == case_id)).first()
    with unit_of_work(bank.engine) as s:
        investigator = bank.user(s, "investigator")
        investigator.roles = "investigator committee_member"
        s.add(investigator)
    with pytest.raises(PermissionDenied, match="investigator"):
        with unit_of_work(bank.engine) as s:
            cases.record_vote(s, s.get(Case, case_id), bank.user(s, "investigator"), r.id, "exempt")
    with unit_of_work(bank.engine) as s:
        approver = bank.user(s, "approver")
        approver.roles = "credit_officer committee_member"
        s.add(approver)
    with pytest.raises(PermissionDenied, match="respondent"):
        with unit_of_work(bank.engine) as s:
            cases.record_vote(s, s.get(Case, case_id), bank.user(s, "approver"), r.id, "exempt")


def test_an_appeal_may_never_worsen_the_outcome(bank):
    case_id = drive(bank, "appeal_review")
    with Session(bank.engine) as s:
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).first()
    with pytest.raises(DomainError, match="never worsen"):
        with unit_of_work(bank.engine) as s:
            cases.record_appeal_vote(s, s.get(Case, case_id), bank.user(s, "appeal"), appeal.id, "altered",
                                     "liable", "加重")


def test_only_the_respondent_appeals_and_only_within_the_window(bank):
    case_id = drive(bank, "appeal_window")
    with Session(bank.engine) as s:
        ends = s.get(Case, case_id).appeal_window_ends
    with pytest.raises(PermissionDenied):
        with unit_of_work(bank.engine) as s:
            cases.file_appeal(s, s.get(Case, case_id), bank.user(s, "chair"), "不服", today=ends)
    with pytest.raises(GuardFailed, match="appeal window ended"):
        with unit_of_work(bank.engine) as s:
            cases.file_appeal(s, s.get(Case, case_id), bank.user(s, "officer"), "不服",
                              today=ends + timedelta(days=1))


def test_a_late_end_of_publicity_never_shortens_a_window_that_runs_from_service(bank):
    from tests.factories import serve_letters
    from workflow.services import deadlines

    case_id = drive(bank, "in_publicity")
    with Session(bank.engine) as s:
        publicity_ends = s.get(Case, case_id).publicity_ends
    late = publicity_ends + timedelta(days=20)
    with unit_of_work(bank.engine) as s:
        cases.end_publicity(s, s.get(Case, case_id), None, today=late)
        assert s.get(Case, case_id).appeal_window_ends is None  # no letter served: no window has started
    serve_letters(bank, case_id, late)
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).appeal_window_ends == deadlines.add_working_days(s, late, 5)


def test_the_case_window_ends_with_the_last_respondents_window(bank):
    from workflow.services import deadlines, letters

    case_id = drive(bank, "in_publicity")
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        on_time = case.publicity_ends + timedelta(days=1)
        first, *others = [w.letter_id for w in letters.appeal_windows(s, case).values()]
    with unit_of_work(bank.engine) as s:  # one letter served during publicity, the others when it ends
        letters.record_service(s, s.get(Case, case_id), bank.user(s, "chair"), first, "in_person", TODAY)
        cases.end_publicity(s, s.get(Case, case_id), None, today=on_time)
        for letter_id in others:
            letters.record_service(s, s.get(Case, case_id), bank.user(s, "chair"), letter_id, "post", on_time,
                                   today=on_time)
        assert s.get(Case, case_id).appeal_window_ends == deadlines.add_working_days(s, on_time, 5)
