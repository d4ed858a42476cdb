"""Delegated authority as data (issue 19, point 8): which committee decides a case, by the level of the branch
its loans are booked at and its total loan amount; the first tier that applies wins, else the default."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workflow.domain import rules
from workflow.domain.errors import ValidationFailed

TIERS = [
    {"code": "HO10", "branch_levels": [1, 2, 3], "over_amount": "10000000", "committee_level": 0,
     "zh": "一千万元以上由总行认定", "en": "Over 10 million yuan: head office"},
    {"code": "SB1", "branch_levels": [2, 3], "up_to_amount": "1000000", "committee_level": 2,
     "zh": "支行辖内一百万元及以下由支行认定", "en": "Up to 1 million yuan of a sub-branch: the sub-branch"},
]


def _rule_set(**authority) -> rules.RuleSet:
    data = rules.load_default_rule_set().model_dump(mode="json")
    data["authority"] = {**data["authority"], **authority}
    return rules.parse_rule_set(data)


def test_by_default_the_tier1_branch_committee_decides_every_case_of_its_branches():
    rs = rules.load_default_rule_set()
    for level in (1, 2, 3):
        decided = rules.committee_with_authority(rs, branch_level=level, total_amount=Decimal("99000000"))
        assert (decided.committee_level, decided.rule, decided.basis) == (1, "default", "bank_policy")
    # loans booked at head office itself are decided there
    assert rules.committee_with_authority(rs, branch_level=0, total_amount=Decimal(1)).committee_level == 0


def test_a_version_without_an_authority_section_means_the_default():
    data = rules.load_default_rule_set().model_dump(mode="json")
    del data["authority"]
    rs = rules.parse_rule_set(data)
    assert rs.authority is None and rs.authority_rules == rules.DEFAULT_AUTHORITY
    assert rules.committee_with_authority(rs, branch_level=3, total_amount=Decimal(5)).rule == "default"


@pytest.mark.parametrize(("level", "amount", "committee", "rule"), [
    (3, "10000000.01", 0, "HO10"),  # above head office's threshold
    (3, "10000000", 1, "default"),  # the threshold itself is not above it
    (3, "1000000", 2, "SB1"),  # small case of an outlet: delegated down to its sub-branch
    (2, "999999.99", 2, "SB1"),
    (1, "500000", 1, "default"),  # the sub-branch tier does not apply to a tier-1 branch's own loans
])
def test_the_first_tier_that_applies_names_the_committee(level, amount, committee, rule):
    decided = rules.committee_with_authority(_rule_set(tiers=TIERS), branch_level=level, total_amount=Decimal(amount))
    assert (decided.committee_level, decided.rule) == (committee, rule)
    assert decided.total_amount == Decimal(amount) and decided.branch_level == level
    assert set(decided.to_dict()["text"]) == {"zh", "en"}


@pytest.mark.parametrize(("tier", "complaint"), [
    ({**TIERS[1], "committee_level": 2, "branch_levels": [1, 2]}, "at the case's branch or above"),
    ({**TIERS[0], "up_to_amount": "5000000"}, "up_to_amount must be above over_amount"),
    ({**TIERS[0], "committee_level": 3}, "committee_level"),
    ({**TIERS[0], "zh": ""}, "zh"),
])
def test_a_tier_that_makes_no_sense_is_refused(tier, complaint):
    with pytest.raises(ValidationFailed) as refused:
        _rule_set(tiers=[tier])
    assert complaint in refused.value.message


def test_two_tiers_with_one_code_are_refused():
    with pytest.raises(ValidationFailed, match="used twice"):
        _rule_set(tiers=[TIERS[0], TIERS[0]])
