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
        {"statement", "acknowledge", "appeal", "investigate"}
    assert {r.code for r in waiting.reasons_for(frozenset({"auditor"}), involved=False)} == set()


@pytest.mark.parametrize("reason", waiting.WAITING_REASONS, ids=lambda r: r.code)
def test_in_each_of_its_states_a_case_awaits_a_named_step_that_the_state_allows(reason):
    for state in reason.states:
        steps = [st for st in reason.steps if st.state == state]
        assert steps and steps[-1].when is None, (reason.code, state)  # some step always applies
    for st in reason.steps:
        assert st.state in reason.states and st.state in ACTIONS[st.action][0], (reason.code, st)
        assert st.action in waiting.AWAITED and (st.when is None or st.when in waiting.WHEN)
        assert st.deadline in (None, waiting.DUE, waiting.OWN_APPEAL, waiting.OWN_STATEMENT)


def test_every_awaited_label_and_reason_is_translated():
    from workflow.web.messages import KNOWN

    texts = set(waiting.AWAITED.values()) | {st.why for r in waiting.WAITING_REASONS for st in r.steps if st.why}
    assert sorted(t for t in texts if t not in KNOWN) == []


def test_a_chair_is_awaited_to_vote_until_they_voted_then_to_determine():
    decide = waiting.REASONS_BY_CODE["decide"]
    assert decide.awaited("under_review").action == "vote"
    assert decide.awaited("under_review", {"voted"}).action == "determine"
    assert decide.awaited("determined").action == "issue_letters"
    assert decide.awaited("determined", {"letters_issued"}).action == "start_publicity"


def test_an_administrator_is_told_why_a_final_case_waits_for_them():
    administer = waiting.REASONS_BY_CODE["administer"]
    refer, close = administer.awaited("final", {"some_outcome_not_exempt"}), administer.awaited("final")
    assert (refer.action, close.action) == ("refer", "close")
    assert "reduced or liable" in refer.why and "exempt" in close.why
    assert administer.awaited("referred").action == "close" and administer.awaited("under_review") is None
