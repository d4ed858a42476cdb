"""The lifecycle declaration: every (state, event) pair, guards, and the generated diagram."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from workflow.domain import states
from workflow.domain.errors import GuardFailed, TransitionNotAllowed

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 2)

# A context in which every guard of the happy path holds.
R = states.RespondentSnapshot(id=1, user_id=10, stages=("1:pre_loan",), stages_with_facts=frozenset({"1:pre_loan"}),
                              recommended="liable", decided="liable", final="liable")
OPEN = states.GuardContext(today=TODAY, respondents=(R,), eligible_voters=3, votes_cast_by=frozenset({1, 2, 3}),
                           publicity_ends=date(2026, 10, 1), appeal_window_ends=date(2026, 10, 9),
                           respondents_settled=True)
WITH_APPEAL = states.GuardContext(
    today=TODAY, respondents=(R,), eligible_voters=3, votes_cast_by=frozenset({1, 2, 3}),
    publicity_ends=date(2026, 10, 1), appeal_window_ends=date(2026, 10, 9), respondents_settled=True,
    appeals=(states.AppealSnapshot(id=1, respondent_id=1, appealed_outcome="liable", decided=True,
                                   new_outcome="reduced"),))
KWARGS = {"investigator_id": 99, "reason": "理由", "chair_signed": True}


class Holder:
    def __init__(self, state):
        self.state = state


def expected_dest(state: str, trigger: str, ctx) -> str | None:
    for t in states.TRANSITIONS:
        if t["trigger"] == trigger and state in states.sources_of(t):
            if t.get("unless") and ctx.appeals:
                continue
            return t["dest"]
    return None


PAIRS = [(s, t) for s in states.STATE_CODES for t in states.TRIGGERS]


@pytest.mark.parametrize(("state", "trigger"), PAIRS)
def test_every_state_event_pair_moves_or_raises_and_changes_nothing(state, trigger):
    ctx = WITH_APPEAL if state in ("appeal_window", "appeal_review") else OPEN
    holder = Holder(state)
    dest = expected_dest(state, trigger, ctx)
    if dest is None:
        with pytest.raises(TransitionNotAllowed):
            states.fire(holder, trigger, ctx, **KWARGS)
        assert holder.state == state
    else:
        assert states.fire(holder, trigger, ctx, **KWARGS) == (state, dest)
        assert holder.state == dest


@pytest.mark.parametrize(("state", "trigger", "ctx", "kwargs", "message"), [
    ("registered", "assign_investigator", OPEN, {"investigator_id": 10}, "may not be a respondent"),
    ("under_review", "return_for_investigation", OPEN, {"reason": "  "}, "reason"),
    ("under_review", "determine", OPEN, {"chair_signed": False}, "chair"),
    ("under_review", "determine", states.GuardContext(today=TODAY, respondents=(R,), eligible_voters=3,
                                                      votes_cast_by=frozenset({1})), {"chair_signed": True}, "quorum"),
    ("in_publicity", "end_publicity", states.GuardContext(today=date(2026, 9, 30), publicity_ends=date(2026, 10, 1)),
     {}, "publicity period"),
    ("final", "refer_for_accountability", states.GuardContext(
        today=TODAY, respondents=(states.RespondentSnapshot(id=1, user_id=1, stages=(), final="exempt"),)), {},
     "liable or reduced"),
    ("investigating", "withdraw", states.GuardContext(today=TODAY, legal_hold=True), {"reason": "x"}, "legal hold"),
])
def test_a_failing_guard_is_a_clear_error_and_the_state_stays(state, trigger, ctx, kwargs, message):
    holder = Holder(state)
    with pytest.raises(GuardFailed, match=message):
        states.fire(holder, trigger, ctx, **kwargs)
    assert holder.state == state


def test_an_appeal_that_worsens_the_outcome_blocks_concluding():
    worse = states.GuardContext(today=TODAY, appeals=(states.AppealSnapshot(
        id=1, respondent_id=1, appealed_outcome="reduced", decided=True, new_outcome="liable"),))
    with pytest.raises(GuardFailed, match="never worsen"):
        states.fire(Holder("appeal_review"), "conclude_appeals", worse)


def test_the_appeal_window_closes_to_final_without_appeals_and_to_review_with_them():
    assert states.fire(Holder("appeal_window"), "close_appeal_window", OPEN)[1] == "final"
    assert states.fire(Holder("appeal_window"), "close_appeal_window", WITH_APPEAL)[1] == "appeal_review"


def test_the_appeal_window_stays_open_while_a_respondent_may_still_appeal():
    from dataclasses import replace

    from workflow.domain.errors import GuardFailed

    with pytest.raises(GuardFailed, match="may still appeal"):
        states.fire(Holder("appeal_window"), "close_appeal_window", replace(OPEN, respondents_settled=False))


def test_accountability_referral_only_follows_a_final_determination():
    for state in states.STATE_CODES:
        if state != "final":
            with pytest.raises(TransitionNotAllowed):
                states.fire(Holder(state), "refer_for_accountability", OPEN)


def test_the_architecture_diagram_is_the_one_generated_from_the_declaration():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert blocks, "docs/architecture.md has no mermaid block"
    assert blocks[0] == states.mermaid_diagram(), "regenerate the diagram: python -m workflow.diagram"


def test_no_code_outside_the_machine_assigns_a_case_state():
    offenders = []
    for path in (ROOT / "workflow").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\.state\s*=[^=]", line) and path.name != "states.py":
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
