"""The waiting rule as data: consistent with the states, the roles and the actions of the lifecycle."""

from __future__ import annotations

import pytest

from workflow.domain import waiting
from workflow.domain.states import STATE_CODES
from workflow.models import ROLES
from workflow.web.access import ACTIONS


@pytest.mark.parametrize("reason", waiting.WAITING_REASONS, ids=lambda r: r.code)
def test_each_reason_names_real_states_roles_and_conditions(reason):
    assert reason.states and set(reason.states) <= set(STATE_CODES)
    assert set(reason.roles) <= set(ROLES)
    assert (reason.who == waiting.ROLE) == bool(reason.roles)
    assert reason.unless is None or reason.unless in waiting.UNLESS


@pytest.mark.parametrize("reason", waiting.WAITING_REASONS, ids=lambda r: r.code)
def test_in_each_of_its_states_a_case_allows_one_of_the_steps_it_waits_for(reason):
    for state in reason.states:
        assert any(state in ACTIONS[action][0] for action in reason.actions), (reason.code, state)


def test_a_chair_is_waited_for_on_every_case_under_review_so_the_members_vote_reason_is_left_out():
    chair = {r.code for r in waiting.reasons_for(frozenset({"committee_member", "committee_chair"}),
                                                 involved=False)}
    member = {r.code for r in waiting.reasons_for(frozenset({"committee_member"}), involved=False)}
    assert "decide" in chair and "vote" not in chair
    assert member == {"vote"}


def test_respondent_and_investigator_reasons_apply_only_to_people_involved_in_some_case():
    assert {r.code for r in waiting.reasons_for(frozenset({"credit_officer"}), involved=False)} == set()
    assert {r.code for r in waiting.reasons_for(frozenset({"credit_officer"}), involved=True)} == \
        {"statement", "appeal", "investigate"}
    assert {r.code for r in waiting.reasons_for(frozenset({"auditor"}), involved=False)} == set()
