"""Who the next step of a case waits for, by state: the rule behind every user's "waiting for me" list.

Each reason says in which states a case waits, for whom (the case's respondents, its investigator, or
holders of some roles), where those role holders must be (anywhere in their branch subtree, or in the
case's deciding branch itself), whether recused members are left out, and a further condition by name
(`unless`), which the inbox (`workflow/web/inbox.py`) turns into a database condition. `actions` names the
steps (`workflow/web/access.ACTIONS`) the person takes next; a test checks that each state of a reason
allows one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

RESPONDENT = "respondent"
INVESTIGATOR = "investigator"
ROLE = "role"

SCOPE = "scope"  # the case lies in the role holder's branch subtree
DECIDING_BRANCH = "deciding_branch"  # the role holder's own branch is the case's deciding branch

UNLESS = {
    "statement_filed": "the respondent has filed or declined their statement, or its deadline has passed",
    "appealed_or_window_over": "the respondent has appealed, or the appeal window has ended",
    "voted": "the member has a valid vote on the case",
    "not_overdue": "the publicity or appeal window has not yet run past its deadline",
}


@dataclass(frozen=True)
class WaitingReason:
    code: str
    states: tuple[str, ...]
    who: str
    actions: tuple[str, ...]
    roles: tuple[str, ...] = ()
    where: str = SCOPE
    recused_excluded: bool = False
    unless: str | None = None


WAITING_REASONS: tuple[WaitingReason, ...] = (
    WaitingReason("statement", ("registered", "investigating"), RESPONDENT, ("statement",), unless="statement_filed"),
    WaitingReason("appeal", ("appeal_window",), RESPONDENT, ("appeal",), unless="appealed_or_window_over"),
    WaitingReason("investigate", ("investigating",), INVESTIGATOR, ("facts", "submit")),
    WaitingReason("assign", ("registered",), ROLE, ("assign",), roles=("investigator", "committee_chair", "admin")),
    WaitingReason("vote", ("under_review",), ROLE, ("vote",),
                  roles=("committee_member",), where=DECIDING_BRANCH, recused_excluded=True, unless="voted"),
    WaitingReason("decide", ("under_review", "determined", "final", "referred"), ROLE,
                  ("determine", "issue_letters", "start_publicity", "refer", "close"),
                  roles=("committee_chair",), where=DECIDING_BRANCH, recused_excluded=True),
    WaitingReason("review_appeals", ("appeal_review",), ROLE, ("appeal_vote", "decide_appeal", "conclude"),
                  roles=("appeal_reviewer", "appeal_chair")),
    WaitingReason("administer", ("determined", "final", "referred"), ROLE,
                  ("issue_letters", "start_publicity", "refer", "close"), roles=("admin",)),
    WaitingReason("overdue_window", ("in_publicity", "appeal_window"), ROLE,
                  ("end_publicity", "close_appeal_window"), roles=("admin",), unless="not_overdue"),
)


def reasons_for(roles: frozenset[str], *, involved: bool) -> list[WaitingReason]:
    """The reasons a case can wait for a person with these roles; respondent and investigator reasons only
    for someone who answers in or investigates some case (`involved`).

    A reason is left out when another reason of the person covers all its states with nothing more to
    require (a chair is waited for on every case under review, whether or not they voted).
    """
    mine = [r for r in WAITING_REASONS
            if (involved if r.who in (RESPONDENT, INVESTIGATOR) else bool(roles & set(r.roles)))]
    return [r for r in mine
            if not any(o is not r and o.unless is None and o.who == r.who and o.where == r.where
                       and o.recused_excluded >= r.recused_excluded and set(r.states) <= set(o.states)
                       and r.unless is not None for o in mine)]
