"""Appeal panels (issue 19, point 5): the appeal committee of the level above decides an appeal as a body.

Its members vote (uphold, or alter to a less severe outcome), with the rule set's quorum and majority; an
original decider, a stage handler, a respondent and the investigator recuse; once the votes reach the quorum
and a majority, the panel's chair signs the decision they carry, and the decision records the votes.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from tests.factories import drive, liable_officer
from tests.letters_text import pdf_text, problems
from workflow.db import unit_of_work
from workflow.domain.errors import GuardFailed, PermissionDenied, ValidationFailed
from workflow.models import Appeal, AppealVote, AuditEvent, Case, Letter, User
from workflow.services import cases


def _appeal(s, case_id: int) -> Appeal:
    return s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()


@pytest.fixture
def in_review(bank):
    """A case of the tier-1 branch in appeal review: the officer, found liable, appealed."""
    return drive(bank, "appeal_review", facts_for=liable_officer)


def test_a_panel_that_reaches_its_quorum_decides_and_its_chair_signs_what_the_votes_carry(bank, in_review):
    with unit_of_work(bank.engine) as s:
        case, appeal = s.get(Case, in_review), _appeal(s, in_review)
        cases.record_appeal_vote(s, case, bank.user(s, "appeal"), appeal.id, "altered", "exempt", "证据充分")
        cases.record_appeal_vote(s, case, bank.user(s, "appeal2"), appeal.id, "altered", "exempt", "同意")
        cases.record_appeal_vote(s, case, bank.user(s, "appeal_chair"), appeal.id, "upheld", None, "维持")
        decided = cases.decide_appeal(s, case, bank.user(s, "appeal_chair"), appeal.id, "经复核，改为免责。")
        assert (decided.decision, decided.new_outcome) == ("altered", "exempt")
        assert decided.decided_by_id == bank.users["appeal_chair"]
    with Session(bank.engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.case_id == in_review,
                                                 AuditEvent.event.in_(("appeal_vote", "decide_appeal")))
                        .order_by(AuditEvent.seq)).all()
        assert [e.event for e in events] == ["appeal_vote"] * 3 + ["decide_appeal"]
        assert sorted(v["outcome"] for v in events[-1].payload["votes"]) == ["exempt", "exempt", "liable"]
        letter = s.exec(select(Letter).where(Letter.case_id == in_review, Letter.kind == "appeal_decision")).one()
        text = "".join(pdf_text(letter.pdf).split())
    # The decision names the panel's votes, each member by name, and the chair signs it.
    for name in ("吴十", "陈复", "韩主任"):
        assert name in text
    assert problems(pdf_text(letter.pdf)) == []


def test_a_single_reviewer_cannot_decide_alone(bank, in_review):
    with unit_of_work(bank.engine) as s:
        case, appeal = s.get(Case, in_review), _appeal(s, in_review)
        with pytest.raises(PermissionDenied) as refused:
            cases.decide_appeal(s, case, bank.user(s, "appeal"), appeal.id, "维持")
        assert refused.value.details["reason"] == "not_panel_chair"
        cases.record_appeal_vote(s, case, bank.user(s, "appeal_chair"), appeal.id, "upheld", None)
        with pytest.raises(GuardFailed, match="quorum") as short:
            cases.decide_appeal(s, case, bank.user(s, "appeal_chair"), appeal.id, "维持")
        assert (short.value.details["voted"], short.value.details["needed"]) == (1, 3)
        cases.record_appeal_vote(s, case, bank.user(s, "appeal"), appeal.id, "upheld", None)
        with pytest.raises(GuardFailed, match="quorum"):
            cases.decide_appeal(s, case, bank.user(s, "appeal_chair"), appeal.id, "维持")
        cases.record_appeal_vote(s, case, bank.user(s, "appeal2"), appeal.id, "upheld", None)
        assert cases.decide_appeal(s, case, bank.user(s, "appeal_chair"), appeal.id, "维持").decision == "upheld"


def test_a_member_who_voted_in_the_original_determination_is_recused_with_the_policys_reason(bank, in_review):
    with unit_of_work(bank.engine) as s:  # member1 voted at the tier-1 branch, then moved to head office's panel
        member = s.get(User, bank.users["member1"])
        member.branch_id, member.roles = bank.branches["HO"], "appeal_reviewer"
        s.add(member)
    with unit_of_work(bank.engine) as s:
        case, appeal = s.get(Case, in_review), _appeal(s, in_review)
        with pytest.raises(PermissionDenied) as refused:
            cases.record_appeal_vote(s, case, bank.user(s, "member1"), appeal.id, "upheld", None)
        assert refused.value.details["reason"] == "conflicted"
        assert "the original deciders may not review the appeal" in refused.value.message
        # The recused member does not count: the three others still form the quorum.
        for who in ("appeal", "appeal2", "appeal_chair"):
            cases.record_appeal_vote(s, case, bank.user(s, who), appeal.id, "upheld", None)
        assert cases.appeal_tally(s, case, appeal).eligible == 3
        assert cases.decide_appeal(s, case, bank.user(s, "appeal_chair"), appeal.id, "维持").decision == "upheld"


def test_the_committee_of_another_level_is_not_the_appeal_panel(bank, in_review):
    with unit_of_work(bank.engine) as s:
        reviewer = User(username="t1_appeal", name="本级复核", employee_no="E9001", branch_id=bank.branches["T1"],
                        roles="appeal_reviewer")
        s.add(reviewer)
    with unit_of_work(bank.engine) as s:
        case, appeal = s.get(Case, in_review), _appeal(s, in_review)
        with pytest.raises(PermissionDenied) as refused:
            cases.record_appeal_vote(s, case, s.exec(select(User).where(User.username == "t1_appeal")).one(),
                                     appeal.id, "upheld", None)
        assert refused.value.details["reason"] == "not_appeal_panel"


def test_a_panel_vote_never_worsens_the_outcome_and_a_later_vote_replaces_the_earlier(bank, in_review):
    with unit_of_work(bank.engine) as s:
        case, appeal = s.get(Case, in_review), _appeal(s, in_review)
        assert appeal.appealed_outcome == "liable"
        with pytest.raises(ValidationFailed, match="different outcome"):
            cases.record_appeal_vote(s, case, bank.user(s, "appeal"), appeal.id, "altered", "liable")
        cases.record_appeal_vote(s, case, bank.user(s, "appeal"), appeal.id, "upheld", None)
        cases.record_appeal_vote(s, case, bank.user(s, "appeal"), appeal.id, "upheld", None, "再次确认")
    with Session(bank.engine) as s:
        votes = s.exec(select(AppealVote).where(AppealVote.case_id == in_review)).all()
        assert [v.invalidated_at is None for v in votes] == [False, True]
