"""Who a case under review waits for: each member until they voted, the chair until it is determined, never
someone recused; and the outcome filter of a branch-scoped inbox."""

from __future__ import annotations

from sqlmodel import select

from tests.factories import drive
from tests.web.support import login, set_passwords
from workflow.db import unit_of_work
from workflow.models import Case, LoanStage, Respondent
from workflow.services import cases


def _client(bank, app_for, username):
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def _waiting(client) -> str:
    return client.get("/inbox").get_data(as_text=True)


def _vote(bank, case_id, member):
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
            cases.record_vote(s, case, bank.user(s, member), r.id, r.recommended_outcome)


def test_a_case_under_review_waits_for_each_member_until_they_vote_and_for_the_chair_until_it_is_decided(
        bank, app_for):
    case_id = drive(bank, "under_review")
    set_passwords(bank.engine)
    link = f"/cases/{case_id}"
    member1, member2, chair = (_client(bank, app_for, u) for u in ("member1", "member2", "chair"))
    assert all(link in _waiting(c) for c in (member1, member2, chair))
    _vote(bank, case_id, "member1")
    _vote(bank, case_id, "chair")
    assert link not in _waiting(member1)  # voted
    assert link in _waiting(member2)      # not yet
    assert link in _waiting(chair)        # voted, but the determination is still theirs
    other = _client(bank, app_for, "other_member")  # another branch's committee
    assert link not in _waiting(other)


def test_a_member_who_handled_one_of_the_loans_is_never_waited_for(bank, app_for):
    case_id = drive(bank, "under_review")
    with unit_of_work(bank.engine) as s:  # member2 checked the disbursement of the case's first loan
        stage = s.exec(select(LoanStage).where(LoanStage.loan_id == bank.loans[0])).first()
        s.add(LoanStage(loan_id=stage.loan_id, stage="disbursement", user_id=bank.users["member2"],
                        performed_on=stage.performed_on))
    set_passwords(bank.engine)
    assert f"/cases/{case_id}" not in _waiting(_client(bank, app_for, "member2"))
    assert f"/cases/{case_id}" in _waiting(_client(bank, app_for, "member1"))


def test_the_outcome_filter_of_a_branch_scoped_user_counts_the_cases_of_their_branch(bank, app_for):
    case_id = drive(bank, "determined")
    set_passwords(bank.engine)
    with unit_of_work(bank.engine) as s:
        outcome = s.exec(select(Respondent.decided_outcome).where(Respondent.case_id == case_id)).first()
    link = f"/cases/{case_id}"
    member = _client(bank, app_for, "member1")  # tier-1 branch: the case's deciding branch
    assert link in member.get(f"/inbox?tab=all&outcome={outcome}").get_data(as_text=True)
    other = {"exempt": "liable", "liable": "exempt", "reduced": "liable"}[outcome]
    assert link not in member.get(f"/inbox?tab=all&outcome={other}").get_data(as_text=True)
    outsider = _client(bank, app_for, "other_member")  # another tier-1 branch: not in scope
    html = outsider.get(f"/inbox?tab=all&outcome={outcome}").get_data(as_text=True)
    assert link not in html and 'id="result-count">' in html
