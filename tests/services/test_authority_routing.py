"""A case is registered to the committee with authority over it (issue 19, point 8): the rule set's tier sends a
case above the tier-1 branch's authority to head office's committee, which then votes and signs; the case
records why, in the registration's audit event too."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from tests.authority_support import (
    HEAD_OFFICE_TIER,
    add_head_office_committee,
    publish_tiers,
    respondent_ids,
    to_review,
)
from tests.factories import open_case
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied
from workflow.models import AuditEvent, Case, Respondent
from workflow.services import cases


@pytest.fixture
def tiered(bank):
    add_head_office_committee(bank)
    publish_tiers(bank, HEAD_OFFICE_TIER)
    return bank


def test_a_case_above_the_branch_authority_is_registered_to_head_office_and_says_why(tiered):
    bank = tiered
    case_id = open_case(bank)  # two loans of 1,000,000 yuan each: 2,000,000 > 1,500,000
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.branch_id == bank.branches["HO"] and case.origin_branch_id == bank.branches["OU"]
        assert case.number.startswith("MZ") and "-HO-" in case.number
        why = case.authority
        assert (why["rule"], why["committee_level"], why["branch_level"]) == ("HO15", 0, 3)
        assert why["total_amount"] == "2000000.00" and why["committee_branch"] == "HO" and why["origin_branch"] == "OU"
        assert why["text"]["zh"].startswith("贷款总额超过150万元") and why["basis"] == "bank_policy"
        event = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.event == "open_case")).one()
        assert event.payload["authority"] == why  # recorded in the same unit of work
        assert {r.case_branch_id for r in s.exec(select(Respondent).where(Respondent.case_id == case_id))} == {
            bank.branches["HO"]}


def test_a_case_within_the_branch_authority_stays_with_the_tier1_committee(tiered):
    bank = tiered
    case_id = open_case(bank, loan_ids=bank.loans[:1])  # 1,000,000 yuan
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.branch_id == bank.branches["T1"]
        assert (case.authority["rule"], case.authority["committee_branch"]) == ("default", "T1")


def test_head_office_committee_votes_and_signs_and_the_tier1_committee_may_not(tiered):
    bank = tiered
    case_id = open_case(bank)
    to_review(bank, case_id, assigner="ho_chair")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        first = respondent_ids(s, case_id)[0]
        with pytest.raises(PermissionDenied) as refused:
            cases.record_vote(s, case, bank.user(s, "member1"), first, "exempt")
        assert refused.value.details["reason"] == "out_of_scope"  # a head-office case is head office's
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for member in ("ho_member1", "ho_member2", "ho_chair"):
            for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
                cases.record_vote(s, case, bank.user(s, member), r.id, r.recommended_outcome)
        with pytest.raises(PermissionDenied):
            cases.determine(s, case, bank.user(s, "chair"))
    with unit_of_work(bank.engine) as s:
        cases.determine(s, s.get(Case, case_id), bank.user(s, "ho_chair"))
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "determined"


def test_the_tolerance_is_still_the_tier1_branch_of_the_loans(tiered):
    bank = tiered
    case_id = open_case(bank)
    to_review(bank, case_id, assigner="ho_chair")
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).tolerance["branch"] == "T1"
