"""Who the next step of a case waits for, by state: the rule behind every user's "waiting for me" list.

Each reason says in which states a case waits, for whom (the case's respondents, its investigator, or
holders of some roles), where those role holders must be (anywhere in their branch subtree, or in the
case's deciding branch itself), whether recused members are left out, and a further condition by name
(`unless`), which the inbox (`workflow/web/inbox.py`) turns into a database condition.

`steps` say what is awaited from the person in each state: the action (`policy.ACTIONS`) they take next, the
first step of the case's state whose condition (`when`, by name: `WHEN`) holds; its label for the inbox
(`AWAITED`, an English catalogue msgid the UI translates), why it waits when the action alone does not say
(`why`), and which deadline applies (`deadline`: the case's current step, the respondent's own appeal
window or statement deadline, or none). A test checks that every step's action is open in its state.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from . import states

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
    "nothing_to_acknowledge": "the respondent's current determination letter is served, or none is issued yet",
}

WHEN = {
    "voted": "the member has a valid vote on the case",
    "letters_issued": "the case's determination letters are issued",
    "some_outcome_not_exempt": "some respondent's final outcome is reduced or liable",
}

DUE = "due"  # the case's current step's deadline (`Case.due_date`)
OWN_APPEAL = "own_appeal"  # the respondent's own appeal deadline (from the service of their letter)
OWN_STATEMENT = "own_statement"  # the respondent's own statement deadline (set at registration)


def N_(message: str) -> str:
    """Mark a message for the translation catalogue (extracted by pybabel; translated by the UI)."""
    return message


# What each awaited action is called in the inbox and the navigation (the person's next step).
AWAITED = {
    "statement": N_("File your statement"),
    "facts": N_("Investigate and submit"),
    "assign": N_("Assign the investigator"),
    "vote": N_("Vote"),
    "determine": N_("Make the determination"),
    "issue_letters": N_("Issue the determination letters"),
    "start_publicity": N_("Start publicity"),
    "acknowledge": N_("Acknowledge the determination letter"),
    "appeal": N_("Appeal or waive your appeal"),
    "appeal_vote": N_("Review the appeals"),
    "refer": N_("Refer for accountability"),
    "close": N_("Close the case"),
    "end_publicity": N_("End publicity"),
    "close_appeal_window": N_("Close the appeal window"),
}


@dataclass(frozen=True)
class Step:
    """In `state` (and when the named condition holds), the case awaits `action` from the person."""

    state: str
    action: str
    when: str | None = None
    why: str | None = None
    deadline: str | None = DUE


@dataclass(frozen=True)
class WaitingReason:
    code: str
    states: tuple[str, ...]
    who: str
    steps: tuple[Step, ...]
    roles: tuple[str, ...] = ()
    where: str = SCOPE
    recused_excluded: bool = False
    unless: str | None = None

    @property
    def actions(self) -> tuple[str, ...]:
        """The steps the person takes next, in the order of `steps`."""
        return tuple(dict.fromkeys(step.action for step in self.steps))

    def awaited(self, state: str, holds: Collection[str] = ()) -> Step | None:
        """The step awaited in `state` given the conditions (`WHEN`) that hold, or None if the reason has no
        step in that state."""
        return next((st for st in self.steps if st.state == state and (st.when is None or st.when in holds)),
                    None)


_FINAL_REFER = N_("The determination is final and some outcome is reduced or liable: refer it for accountability.")
_FINAL_CLOSE = N_("The determination is final and every respondent is exempt: close the case.")
_REFERRED = N_("The case is referred for accountability: close it.")
_RAN_OUT = N_("Its period has run out: only an administrator moves the case on.")


def _after_determination(*, chair: bool) -> tuple[Step, ...]:
    return ((Step("under_review", "determine", when="voted"), Step("under_review", "vote")) if chair else ()) + (
        Step("determined", "start_publicity", when="letters_issued"),
        Step("determined", "issue_letters"),
        Step("final", "refer", when="some_outcome_not_exempt", why=_FINAL_REFER, deadline=None),
        Step("final", "close", why=_FINAL_CLOSE, deadline=None),
        Step("referred", "close", why=_REFERRED, deadline=None))


WAITING_REASONS: tuple[WaitingReason, ...] = (
    WaitingReason("statement", ("registered", "investigating"), RESPONDENT,
                  (Step("registered", "statement", deadline=OWN_STATEMENT),
                   Step("investigating", "statement", deadline=OWN_STATEMENT)), unless="statement_filed"),
    WaitingReason("acknowledge", states.SERVICE_STATES, RESPONDENT,
                  tuple(Step(st, "acknowledge", deadline=None) for st in states.SERVICE_STATES),
                  unless="nothing_to_acknowledge"),
    WaitingReason("appeal", ("appeal_window",), RESPONDENT, (Step("appeal_window", "appeal", deadline=OWN_APPEAL),),
                  unless="appealed_or_window_over"),
    WaitingReason("investigate", ("investigating",), INVESTIGATOR, (Step("investigating", "facts"),)),
    WaitingReason("assign", ("registered",), ROLE, (Step("registered", "assign"),),
                  roles=("investigator", "committee_chair", "admin")),
    WaitingReason("vote", ("under_review",), ROLE, (Step("under_review", "vote"),),
                  roles=("committee_member",), where=DECIDING_BRANCH, recused_excluded=True, unless="voted"),
    WaitingReason("decide", ("under_review", "determined", "final", "referred"), ROLE, _after_determination(chair=True),
                  roles=("committee_chair",), where=DECIDING_BRANCH, recused_excluded=True),
    WaitingReason("review_appeals", ("appeal_review",), ROLE, (Step("appeal_review", "appeal_vote"),),
                  roles=("appeal_reviewer", "appeal_chair")),
    WaitingReason("administer", ("determined", "final", "referred"), ROLE, _after_determination(chair=False),
                  roles=("admin",)),
    WaitingReason("overdue_window", ("in_publicity", "appeal_window"), ROLE,
                  (Step("in_publicity", "end_publicity", why=_RAN_OUT), Step("appeal_window", "close_appeal_window",
                                                                             why=_RAN_OUT)),
                  roles=("admin",), unless="not_overdue"),
)

REASONS_BY_CODE = {r.code: r for r in WAITING_REASONS}


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
