"""Who may do what: every permission, scope and segregation-of-duties rule of Mianze, once.

Pure: each rule is a function of an `Actor` and a `CaseView` (plain snapshots the service layer builds from
what it loaded) and answers None (allowed) or a `Refusal` — a code for machines and an English sentence that
the UI translates (the same sentence is the API's message). Services enforce these rules on every verb
(`require`); the web, the API and the command line only ask them what to offer.

Whether an action is possible in the case's *state* is a separate question: `ACTIONS` says in which states
each action is open (from `states.TRANSITIONS` for the actions that move the case, from
`states.ACTION_STATES` for the others), and the state machine's guards say whether it can happen now.

Scope, decided once for every door (case pages, inbox, API lists and gets, exports):
- internal auditors and everyone at head office see every case, loan, enterprise and member of staff;
- everyone else sees their home branch's subtree (branches whose materialised path starts with theirs),
  plus the cases they answer in as a respondent or investigate;
- administrators are no exception: a branch administrator administers and sees their own subtree, a
  head-office administrator the whole bank.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from . import states
from .errors import PermissionDenied


def N_(message: str) -> str:
    """Mark a message for the translation catalogue (extracted by pybabel; translated by the UI)."""
    return message


# --- the plain views the rules read ---------------------------------------------------------------------

@dataclass(frozen=True)
class Delegation:
    """A stand-in's power, today, to act for the committee member or chair who named them (their principal)."""

    principal_id: int
    roles: frozenset[str]  # the principal's roles
    branch_id: int  # the principal's home branch (their committee's)


@dataclass(frozen=True)
class Actor:
    """The acting user: who they are, their roles and where they sit in the branch tree; `stands_in_for` the
    delegations they hold today (never passed on: only those named for them directly)."""

    id: int
    roles: frozenset[str]
    branch_id: int
    branch_path: str
    branch_level: int
    stands_in_for: tuple[Delegation, ...] = ()

    def has(self, *roles: str) -> bool:
        return has_role(self.roles, *roles)

    @property
    def head_office(self) -> bool:
        return self.branch_level == 0


@dataclass(frozen=True)
class CaseView:
    """Who is involved in a case and where it is: everything a permission depends on."""

    case_id: int
    state: str
    branch_id: int
    branch_path: str
    investigator_id: int | None
    respondent_user_ids: frozenset[int] = frozenset()
    handler_ids: frozenset[int] = frozenset()  # handled a credit stage of one of the case's loans
    decider_ids: frozenset[int] = frozenset()  # voted on the case (valid or not) or signed its determination
    appeal_branch_id: int | None = None  # whose appeal committee reviews the case's appeals (the level above)
    respondent_of_user: tuple[tuple[int, int], ...] = ()  # (user id, respondent id) of each respondent


@dataclass(frozen=True)
class Refusal:
    """Why an action is refused: a stable code and an English message (a catalogue msgid) with its values.

    A value that is itself a message (`detail`) is translated too when the UI shows the refusal.
    """

    code: str
    message: str
    detail: str | None = None
    values: dict = field(default_factory=dict)

    def text(self) -> str:
        """The refusal in English (the API's message)."""
        return self.message % {**self.values, **({"why": self.detail} if self.detail else {})}


def has_role(roles: Collection[str], *wanted: str) -> bool:
    """Whether any of `wanted` is among `roles`."""
    return any(r in roles for r in wanted)


def in_subtree(branch_path: str, scope_path: str) -> bool:
    """Whether a branch (by materialised path) lies in the subtree rooted at `scope_path`."""
    return branch_path.startswith(scope_path)


# --- scope ------------------------------------------------------------------------------------------------

def sees_everything(actor: Actor) -> bool:
    """Internal auditors and head-office staff see the whole bank; everyone else their subtree."""
    return actor.has("auditor") or actor.head_office or actor.branch_path == "/"


def can_view(actor: Actor, case: CaseView) -> bool:
    """Whether the case is within the actor's scope (or they answer in it, or investigate it)."""
    return (sees_everything(actor) or in_subtree(case.branch_path, actor.branch_path)
            or actor.id in case.respondent_user_ids or actor.id == case.investigator_id)


def sees_branch(actor: Actor, branch_path: str) -> bool:
    """Whether loans, enterprises and staff of a branch are within the actor's scope."""
    return sees_everything(actor) or in_subtree(branch_path, actor.branch_path)


# --- segregation of duties ------------------------------------------------------------------------------

RECUSAL = {
    "respondent": N_("a respondent may not vote on their own case"),
    "investigator": N_("the case's investigator may not vote on it"),
    "handler": N_("a member who handled a stage of the case's loans must recuse"),
}
APPEAL_CONFLICT = {
    "respondent": N_("a respondent may not review appeals in their own case"),
    "decider": N_("the original deciders may not review the appeal"),
    "handler": N_("a member who handled a stage of the case's loans may not review its appeals"),
    "investigator": N_("the case's investigator may not review its appeals"),
}


def recusal_reason(user_id: int, *, respondent_ids: Collection[int], investigator_id: int | None,
                   loan_handler_ids: Collection[int]) -> str | None:
    """Why a committee member may not vote on (or decide, or return) a case, or None if they may."""
    if user_id in respondent_ids:
        return RECUSAL["respondent"]
    if investigator_id is not None and user_id == investigator_id:
        return RECUSAL["investigator"]
    if user_id in loan_handler_ids:
        return RECUSAL["handler"]
    return None


def appeal_reviewer_conflict(user_id: int, *, respondent_ids: Collection[int], decider_ids: Collection[int],
                             investigator_id: int | None, loan_handler_ids: Collection[int] = ()) -> str | None:
    """Why a user may not review (vote on, decide, conclude) the case's appeals, or None if they may: a
    respondent, an original decider (voted or signed), a handler of a stage of its loans, its investigator."""
    if user_id in respondent_ids:
        return APPEAL_CONFLICT["respondent"]
    if user_id in decider_ids:
        return APPEAL_CONFLICT["decider"]
    if user_id in loan_handler_ids:
        return APPEAL_CONFLICT["handler"]
    if investigator_id is not None and user_id == investigator_id:
        return APPEAL_CONFLICT["investigator"]
    return None


APPEAL_PANEL_ROLES = ("appeal_reviewer", "appeal_chair")


def appeal_body_of(branch_path: str) -> int:
    """The branch whose appeal committee reviews the appeals of a case decided at the branch with this
    materialised path: the level above (上一级, domain.md §13), so head office for a tier-1 branch committee
    and the tier-1 branch for a sub-branch committee; head office's own decisions go to its appeal committee."""
    ids = [int(part) for part in branch_path.strip("/").split("/") if part]
    return ids[-2] if len(ids) > 1 else ids[-1]


# --- actions on a case ------------------------------------------------------------------------------------

def _transition_states(trigger: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for t in states.TRANSITIONS if t["trigger"] == trigger
                               for s in states.sources_of(t)))


# action -> (the trigger it fires, or None when it does not move the case)
_TRIGGERS: dict[str, str | None] = {
    "assign": "assign_investigator",
    "statement": None,
    "facts": None,
    "evidence": None,
    "submit": "submit_investigation",
    "return": "return_for_investigation",
    "vote": None,
    "determine": "determine",
    "issue_letters": None,
    "start_publicity": "start_publicity",
    "reopen": "reopen",
    "end_publicity": "end_publicity",
    "close_appeal_window": "close_appeal_window",
    "appeal": None,
    "waive_appeal": None,
    "record_service": None,
    "acknowledge": None,
    "preview_documents": None,
    "appeal_vote": None,
    "decide_appeal": None,
    "conclude": "conclude_appeals",
    "refer": "refer_for_accountability",
    "close": "close",
    "withdraw": "withdraw",
    "reevaluate": None,
    "legal_hold": None,
    "urge": None,
    "propose_precedent": None,
    "record_sanctions": None,
}

# action -> (states in which it can be taken, the machine's trigger if it changes the state)
ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    action: (_transition_states(trigger) if trigger else tuple(states.ACTION_STATES[action]), trigger)
    for action, trigger in _TRIGGERS.items()
}

NOT_YOURS = Refusal("not_yours", N_("This step belongs to someone else."))
OUT_OF_SCOPE = Refusal("out_of_scope", N_("This case is outside your branch's scope."))
OWN_CASE = Refusal("own_case", N_("A respondent may not act on their own case."))
ONLY_RESPONDENT = Refusal("only_respondent", N_("Only a respondent of the case may do this, for themselves."))
ONLY_INVOLVED = Refusal("only_involved", N_("Only the investigator and the respondents may add evidence."))
ONLY_INVESTIGATOR = Refusal("only_investigator", N_("Only the case's investigator may do this."))
HANDLER_ASSIGNS = Refusal("handler", N_("A person who handled the case's loans may not assign its investigator."))
NOT_COMMITTEE = Refusal("not_committee", N_("Only the deciding branch's committee may do this."))
NOT_HEAD_OFFICE_ADMIN = Refusal("not_head_office_admin",
                                N_("Only an administrator whose scope covers the case may do this."))
NOT_SUPERVISOR = Refusal("not_supervisor",
                         N_("Only a committee chair of the case's branch or a branch above it, or a head-office "
                            "administrator, may urge a step."))
NOT_APPEAL_PANEL = Refusal("not_appeal_panel",
                           N_("Only the appeal committee of the level above the deciding committee may do this."))
NOT_PANEL_CHAIR = Refusal("not_panel_chair", N_("Only the chair of the appeal committee signs the appeal decision."))
NOT_SANCTIONS_ADMIN = Refusal("not_sanctions_admin",
                              N_("Only an administrator whose scope covers the case records the sanctions applied."))
RECUSED = N_("You are recused from this case: %(why)s")
STAND_IN_CONFLICTED = N_("You may not stand in on this case: %(why)s")
NOT_STAND_IN = Refusal("not_stand_in", N_("You are not this person's stand-in today."))
PRINCIPAL_CANNOT = N_("The person you stand in for could not do this on the case: %(why)s")
CONFLICTED = N_("You may not review these appeals: %(why)s")

_COMMITTEE_ACTIONS = {"return": ("committee_member", "committee_chair"), "vote": ("committee_member", "committee_chair"),
                      "determine": ("committee_chair",), "reopen": ("committee_chair",)}
_CHAIR_OR_ADMIN = {"issue_letters", "start_publicity", "refer", "close", "withdraw", "reevaluate", "record_service",
                   "preview_documents"}


def _administers(actor: Actor, case: CaseView) -> bool:
    """An administrator whose subtree holds the case (head office: every case)."""
    return _administers_branch(actor, case.branch_path)


def _administers_branch(actor: Actor, branch_path: str) -> bool:
    """An administrator whose subtree holds the branch (head office: every branch)."""
    return actor.has("admin") and (actor.head_office or in_subtree(branch_path, actor.branch_path))


def why_not(actor: Actor, case: CaseView, action: str) -> Refusal | None:
    """Why `actor` may not take `action` on the case, or None when they may.

    Only permissions and segregation of duties; whether the case's state allows the action is the state
    machine's business (`ACTIONS`, `states.fire`). Raises KeyError for an unknown action.
    """
    if action not in ACTIONS:
        raise KeyError(action)
    if not can_view(actor, case):
        return OUT_OF_SCOPE
    respondent = actor.id in case.respondent_user_ids
    investigator = actor.id == case.investigator_id
    if action in ("statement", "appeal", "waive_appeal", "acknowledge"):
        return None if respondent else ONLY_RESPONDENT
    if action == "evidence":
        return None if (respondent or investigator) else ONLY_INVOLVED
    if action in ("facts", "submit"):
        return None if investigator else ONLY_INVESTIGATOR
    if respondent:
        return OWN_CASE
    if action == "assign":
        if not actor.has("admin", "committee_chair", "investigator"):
            return NOT_YOURS
        return HANDLER_ASSIGNS if actor.id in case.handler_ids else None
    if action in _COMMITTEE_ACTIONS:
        own = _seat_refusal(actor.id, actor.roles, actor.branch_id, case, action)
        if own is None:
            return None
        for d in actor.stands_in_for:
            if _seat_refusal(d.principal_id, d.roles, d.branch_id, case, action) is None:
                # The principal could act: the stand-in may, unless they are conflicted on the case themselves.
                why = _recusal(actor.id, case)
                return Refusal("stand_in_conflicted", STAND_IN_CONFLICTED, detail=why) if why else None
        return own
    if action in _CHAIR_OR_ADMIN:
        if _administers(actor, case) or (actor.has("committee_chair") and actor.branch_id == case.branch_id):
            return None
        return NOT_YOURS
    if action in ("end_publicity", "close_appeal_window"):
        return None if _administers(actor, case) else NOT_YOURS
    if action in ("appeal_vote", "decide_appeal", "conclude"):
        # The appeal committee of the level above: its members vote, its chair signs (and concludes too).
        if not actor.has(*APPEAL_PANEL_ROLES):
            return NOT_YOURS
        why = appeal_reviewer_conflict(actor.id, respondent_ids=case.respondent_user_ids,
                                       decider_ids=case.decider_ids, investigator_id=case.investigator_id,
                                       loan_handler_ids=case.handler_ids)
        if why:
            return Refusal("conflicted", CONFLICTED, detail=why)
        if case.appeal_branch_id is not None and actor.branch_id != case.appeal_branch_id:
            return NOT_APPEAL_PANEL
        if action == "decide_appeal" and not actor.has("appeal_chair"):
            return NOT_PANEL_CHAIR
        return None
    if action == "legal_hold":
        return None if actor.has("auditor") or _administers(actor, case) else NOT_YOURS
    if action == "urge":
        return None if supervises(actor, case) else NOT_SUPERVISOR
    if action == "propose_precedent":
        return None if curates(actor, case.branch_path) else NOT_CURATOR
    if action == "record_sanctions":
        # The accountability procedure is HR's: an administrator whose scope holds the case records its result.
        return None if _administers(actor, case) else NOT_SANCTIONS_ADMIN
    raise KeyError(action)  # pragma: no cover - every action of ACTIONS is answered above


def _recusal(user_id: int, case: CaseView) -> str | None:
    return recusal_reason(user_id, respondent_ids=case.respondent_user_ids, investigator_id=case.investigator_id,
                          loan_handler_ids=case.handler_ids)


def _seat_refusal(user_id: int, roles: Collection[str], branch_id: int, case: CaseView, action: str) -> Refusal | None:
    """Why a committee seat (a person's roles and home branch) may not take a committee action on the case."""
    if not has_role(roles, *_COMMITTEE_ACTIONS[action]) or branch_id != case.branch_id:
        return NOT_COMMITTEE
    why = _recusal(user_id, case)
    return Refusal("recused", RECUSED, detail=why) if why else None


def acting_for(actor: Actor, case: CaseView, action: str, principal_id: int | None = None) -> int | None:
    """On whose behalf the actor takes a committee action (vote, return, determine, reopen): None in their own
    right, else the principal whose stand-in they are. `principal_id` asks for that principal's seat.

    Raises PermissionDenied when the action is refused (`why_not`), or when the actor may not act for the
    principal asked for (not named, outside the period, the principal could not act, or conflicted).
    """
    require(actor, case, action)
    if action not in _COMMITTEE_ACTIONS:
        return None
    available = seats(actor, case, action)
    if principal_id is None or principal_id == actor.id:
        if None in available:
            return None
        if principal_id is None and available:
            return available[0]
        raise refuse(_seat_refusal(actor.id, actor.roles, actor.branch_id, case, action))
    if principal_id in available:
        return principal_id
    d = next((d for d in actor.stands_in_for if d.principal_id == principal_id), None)
    if d is None:
        raise refuse(NOT_STAND_IN)
    why = _recusal(actor.id, case)
    if why:
        raise refuse(Refusal("stand_in_conflicted", STAND_IN_CONFLICTED, detail=why))
    refusal = _seat_refusal(d.principal_id, d.roles, d.branch_id, case, action)
    raise refuse(Refusal("principal_cannot", PRINCIPAL_CANNOT, detail=refusal.detail or refusal.message))


def seats(actor: Actor, case: CaseView, action: str) -> list[int | None]:
    """The seats the actor may take a committee action in: None (their own) and/or their principals' ids."""
    out: list[int | None] = []
    if _seat_refusal(actor.id, actor.roles, actor.branch_id, case, action) is None:
        out.append(None)
    if _recusal(actor.id, case) is None:
        out += [d.principal_id for d in actor.stands_in_for
                if _seat_refusal(d.principal_id, d.roles, d.branch_id, case, action) is None]
    return out


def supervises(actor: Actor, case: CaseView) -> bool:
    """Who may urge (督办) a case's step: a committee chair of the case's branch or of a branch above it, or a
    head-office chair or administrator (the branch above supervises the one below, head office all)."""
    if actor.has("committee_chair") and in_subtree(case.branch_path, actor.branch_path):
        return True
    return actor.head_office and actor.has("admin", "committee_chair")


# --- need to know (domain.md §13) -----------------------------------------------------------------------

NEED_TO_KNOW = Refusal("need_to_know", N_("A respondent sees only their own part of the case."))

# Documents of a whole case. The publicity notice is public by nature (it is posted for objections), so every
# respondent reads it. The others are not a respondent's to read: the investigation report and the batch
# report set out every respondent's findings, the meeting minutes name each member's vote (a respondent
# gets the tally, not who voted how), the referral letter lists the others' outcomes.
PUBLIC_KINDS = frozenset({"publicity_notice"})


def own_respondent_ids(actor: Actor, case: CaseView) -> frozenset[int]:
    """The respondent records of the case that are the actor's own (empty when they are not a respondent)."""
    return frozenset(rid for uid, rid in case.respondent_of_user if uid == actor.id)


def sees_all_parts(actor: Actor, case: CaseView) -> bool:
    """Whether the actor sees every respondent's part of the case (findings, facts, statements, letters,
    appeals, evidence) and who voted how.

    A respondent of the case sees only their own part and the tally, whatever else they are (an auditor or
    an administrator named in a case is a respondent in it first); everyone else who may open the case —
    the committee, the investigator, internal audit, administrators — sees all of it.
    """
    return can_view(actor, case) and actor.id not in case.respondent_user_ids


def visible_respondent_ids(actor: Actor, case: CaseView) -> frozenset[int] | None:
    """The respondent ids whose part the actor may see in full: None for all of them, else their own."""
    return None if sees_all_parts(actor, case) else own_respondent_ids(actor, case)


def sees_named_votes(actor: Actor, case: CaseView) -> bool:
    """Whether the actor sees who voted how (a respondent sees the tally only)."""
    return sees_all_parts(actor, case)


def why_not_see(actor: Actor, case: CaseView, respondent_id: int | None) -> Refusal | None:
    """Why the actor may not read the part of one respondent (`respondent_id`; None: case-wide material such
    as evidence on the loans, which every respondent may read), or None when they may."""
    if not can_view(actor, case):
        return OUT_OF_SCOPE
    if respondent_id is None or sees_all_parts(actor, case) or respondent_id in own_respondent_ids(actor, case):
        return None
    return NEED_TO_KNOW


def why_not_read_document(actor: Actor, case: CaseView, kind: str, respondent_id: int | None) -> Refusal | None:
    """Why the actor may not read one of the case's documents (by its kind and the respondent it is for, if
    any), or None when they may: see `PUBLIC_KINDS` for the documents of the whole case."""
    if not can_view(actor, case):
        return OUT_OF_SCOPE
    if sees_all_parts(actor, case) or kind in PUBLIC_KINDS:
        return None
    if respondent_id is not None and respondent_id in own_respondent_ids(actor, case):
        return None
    return NEED_TO_KNOW


def require_see(actor: Actor, case: CaseView, respondent_id: int | None) -> None:
    """Raise PermissionDenied (need_to_know) unless the actor may read that respondent's part."""
    refusal = why_not_see(actor, case, respondent_id)
    if refusal is not None:
        raise refuse(refusal)


def require_read_document(actor: Actor, case: CaseView, kind: str, respondent_id: int | None) -> None:
    """Raise PermissionDenied (need_to_know) unless the actor may read the document."""
    refusal = why_not_read_document(actor, case, kind, respondent_id)
    if refusal is not None:
        raise refuse(refusal)


# --- comments on a case ----------------------------------------------------------------------------------

# Comments are the staff's working discussion of a case, and a comment may be about any respondent's part
# (their findings, their statement, their vote outcome). So they follow the rule for a respondent's part
# that is not theirs: a respondent of the case neither reads nor writes comments (their own voice in the
# case is their statement and their appeal), and every other respondent's matters stay private. Everyone
# else who sees every part of the case — the committee, the investigator, the appeal panel, internal audit,
# administrators within scope — reads and writes them, in every state.
COMMENTS_STAFF_ONLY = Refusal("comments_staff_only",
                              N_("Comments on a case are the staff's: a respondent of the case neither reads nor "
                                 "writes them."))


def reads_comments(actor: Actor, case: CaseView) -> bool:
    """Whether the actor reads (and writes) the case's comments: whoever sees every respondent's part."""
    return sees_all_parts(actor, case)


def why_not_comment(actor: Actor, case: CaseView) -> Refusal | None:
    """Why the actor may not read or write the case's comments, or None when they may."""
    if not can_view(actor, case):
        return OUT_OF_SCOPE
    return None if reads_comments(actor, case) else COMMENTS_STAFF_ONLY


def require_comment(actor: Actor, case: CaseView) -> None:
    """Raise PermissionDenied unless the actor may read and write the case's comments."""
    refusal = why_not_comment(actor, case)
    if refusal is not None:
        raise refuse(refusal)


# --- the precedent library (案例引导) ----------------------------------------------------------------------

NOT_CURATOR = Refusal("not_curator",
                      N_("Only a committee chair of the case's branch or a branch above it, or a head-office "
                         "administrator, may propose or approve a precedent."))
SELF_APPROVAL = Refusal("self_approval",
                        N_("A precedent is approved by a second person: its proposer may not approve or reject it."))
PRECEDENT_OWN_CASE = Refusal("own_case", N_("A respondent may not act on their own case."))


@dataclass(frozen=True)
class PrecedentView:
    """Who a precedent concerns and who proposed it: everything its permissions depend on."""

    status: str
    case_branch_path: str
    proposed_by_id: int
    respondent_user_ids: frozenset[int] = frozenset()


def curates(actor: Actor, case_branch_path: str) -> bool:
    """Who proposes, edits and approves precedents: a committee chair whose subtree holds the case, or a
    head-office administrator."""
    if actor.has("committee_chair") and in_subtree(case_branch_path, actor.branch_path):
        return True
    return actor.head_office and actor.has("admin")


def why_not_edit_precedent(actor: Actor, p: PrecedentView) -> Refusal | None:
    """Why the actor may not edit a proposed precedent's texts (the proposer and the would-be approvers may)."""
    if actor.id in p.respondent_user_ids:
        return PRECEDENT_OWN_CASE
    return None if curates(actor, p.case_branch_path) else NOT_CURATOR


def why_not_decide_precedent(actor: Actor, p: PrecedentView) -> Refusal | None:
    """Why the actor may not approve or reject a proposed precedent: segregation of duties, the proposer
    never decides their own proposal (maker-checker), nor a respondent of the case."""
    refusal = why_not_edit_precedent(actor, p)
    if refusal is not None:
        return refusal
    return SELF_APPROVAL if actor.id == p.proposed_by_id else None


def sees_like_cases(actor: Actor) -> bool:
    """Who sees the like cases decided differently across branches (which names cases of other branches
    side by side): internal auditors and head-office staff, by need-to-know."""
    return actor.has("auditor") or actor.head_office


def can_view_precedent(actor: Actor, p: PrecedentView) -> bool:
    """Approved precedents are guidance for all staff; proposed and rejected ones only for their curators
    and internal auditors."""
    return p.status == "approved" or actor.has("auditor") or why_not_edit_precedent(actor, p) is None


def require_precedent(actor: Actor, p: PrecedentView, verb: str) -> None:
    """Raise PermissionDenied unless the actor may `verb` ("edit" or "decide") the precedent."""
    refusal = (why_not_edit_precedent if verb == "edit" else why_not_decide_precedent)(actor, p)
    if refusal is not None:
        raise refuse(refusal)


def may_see_tally(actor: Actor, case: CaseView, *, has_voted: bool) -> bool:
    """Whether the actor may see how the votes stand (who voted how, what the votes carry).

    While the committee votes, a member who may still vote sees the tally only once they have voted on every
    respondent (no anchoring); the chair sees it throughout. Anyone who cannot vote on the case (audit, an
    administrator, the investigator, a recused member) is not anchored by it; after the determination the
    votes are part of the record.
    """
    if case.state != "under_review" or has_voted:
        return True
    if actor.has("committee_chair") and actor.branch_id == case.branch_id:
        return True
    if any(has_role(d.roles, "committee_chair") and d.branch_id == case.branch_id for d in actor.stands_in_for) \
            and _recusal(actor.id, case) is None:
        return True  # the chair's stand-in, like the chair
    return why_not(actor, case, "vote") is not None


def evidence_open(actor: Actor, case: CaseView) -> bool:
    """Whether the actor may add evidence in the case's current state: the investigator while facts can be
    recorded, a respondent with their statement or their appeal."""
    if actor.id == case.investigator_id:
        return case.state in states.ACTION_STATES["facts"]
    return case.state in ("registered", "investigating", "appeal_window")


def why_not_register(actor: Actor) -> Refusal | None:
    """Who registers new cases: committee chairs and administrators."""
    return None if actor.has("admin", "committee_chair") else NOT_YOURS


def why_not_triage(actor: Actor, branch_path: str) -> Refusal | None:
    """Who works the NPL intake list of a loan's branch (registers a case from it, or records why none is
    opened): those who register cases, for loans within their scope."""
    refusal = why_not_register(actor)
    if refusal is not None:
        return refusal
    return None if sees_branch(actor, branch_path) else LOAN_OUT_OF_SCOPE


def why_not_issue_batch(actor: Actor, branch_id: int, branch_path: str) -> Refusal | None:
    """Who starts a committee's letter batch (the letters of its determined cases): its chair, or an
    administrator whose scope holds the branch (each case is still authorised as `issue_letters`)."""
    if actor.has("committee_chair") and actor.branch_id == branch_id:
        return None
    return None if _administers_branch(actor, branch_path) else NOT_BATCH


NOT_BATCH = Refusal("not_batch", N_("Only the committee's chair, or an administrator whose scope holds it, issues "
                                    "its letters in a batch."))


def why_not_see_job(actor: Actor, created_by_id: int | None) -> Refusal | None:
    """A background job is seen by who started it, and by head-office administrators and internal auditors
    (`created_by_id` None: whether the actor sees every job)."""
    if created_by_id is not None and actor.id == created_by_id:
        return None
    return None if actor.has("auditor") or (actor.has("admin") and actor.head_office) else NOT_YOUR_JOB


NOT_YOUR_JOB = Refusal("not_your_job", N_("This job was started by someone else."))

LOAN_IMPORT_ADMINS = Refusal("loan_import_admins", N_("Only administrators import loans."))


def why_not_import_loans(actor: Actor) -> Refusal | None:
    """The loan book is imported by administrators (from the core banking system's file, by API or job)."""
    return None if actor.has("admin") else LOAN_IMPORT_ADMINS


LOAN_OUT_OF_SCOPE = Refusal("loan_out_of_scope", N_("This loan is outside your branch's scope."))


TIMER_HEAD_OFFICE = Refusal("head_office_only", N_("Only a head-office administrator may run the deadline timer."))


def why_not_run_timer(actor: Actor) -> Refusal | None:
    """Who starts the deadline timer by hand: it moves and notifies cases of the whole bank."""
    return None if actor.has("admin") and actor.head_office else TIMER_HEAD_OFFICE


DELIVERIES_HEAD_OFFICE = Refusal("head_office_only", N_("Only a head-office administrator may see and resend "
                                                          "failed notification deliveries."))


def why_not_manage_deliveries(actor: Actor) -> Refusal | None:
    """Who sees the notification deliveries that failed and sends one again (head office: they concern staff
    of the whole bank, and a resend may deliver a message twice)."""
    return None if actor.has("admin") and actor.head_office else DELIVERIES_HEAD_OFFICE


HR_EXPORT = Refusal("hr_export", N_("Only head-office administrators and internal auditors export the HR list."))


def why_not_hr_export(actor: Actor) -> Refusal | None:
    """Who reads and exports the monthly HR list of deductions and refunds (every person of the bank, by name,
    employee number and amount): head-office administrators, who hand it to HR, and internal auditors, who
    read and export everything."""
    return None if actor.has("auditor") or (actor.has("admin") and actor.head_office) else HR_EXPORT


def require_hr_export(actor: Actor) -> None:
    """Raise PermissionDenied unless the actor may read and export the HR list."""
    refusal = why_not_hr_export(actor)
    if refusal is not None:
        raise refuse(refusal)


def refuse(refusal: Refusal) -> PermissionDenied:
    """The PermissionDenied a service raises for a refusal (its code is in `details["reason"]`)."""
    exc = PermissionDenied(refusal.text(), reason=refusal.code)
    exc.refusal = refusal
    return exc


def require(actor: Actor, case: CaseView, action: str) -> None:
    """Raise PermissionDenied (with the refusal) unless the actor may take `action` on the case."""
    refusal = why_not(actor, case, action)
    if refusal is not None:
        raise refuse(refusal)


def require_register(actor: Actor) -> None:
    """Raise PermissionDenied unless the actor may register cases."""
    refusal = why_not_register(actor)
    if refusal is not None:
        raise refuse(refusal)


# --- accounts ---------------------------------------------------------------------------------------------

# Roles whose reach is the whole bank whatever the holder's home branch: only an administrator whose own
# scope is the whole bank (head office) grants or removes them. Every other role reaches no further than
# the holder's branch, so granting it within one's own subtree grants nothing wider than one's own scope.
BANK_WIDE_ROLES = frozenset({"auditor"})
# Internal audit stays independent of the work it audits: an auditor neither decides, investigates nor
# reviews appeals (each pair is refused together, whoever grants it).
INCOMPATIBLE_ROLES = (("auditor", "committee_member"), ("auditor", "committee_chair"), ("auditor", "investigator"),
                      ("auditor", "appeal_reviewer"), ("auditor", "appeal_chair"))

NOT_ADMIN = Refusal("not_admin", N_("this action needs the administrator role"))
OUTSIDE_SUBTREE = Refusal("outside_subtree",
                          N_("administrators manage only the branches and staff of their own subtree"))
BANK_WIDE_ROLE = Refusal("bank_wide_role",
                         N_("Only a head-office administrator may grant or remove the bank-wide auditor role."))
AUDIT_INDEPENDENCE = Refusal("audit_independence",
                             N_("An internal auditor may not also sit on the committee, investigate or review "
                                "appeals: internal audit stays independent of the work it audits."))


def may_grant(actor: Actor, role: str) -> bool:
    """Whether the actor may give (or take away) `role` to staff of their own subtree."""
    return actor.has("admin") and (role not in BANK_WIDE_ROLES or actor.head_office)


def incompatible_roles(roles: Collection[str]) -> Refusal | None:
    """Why these roles may not be held together by one person, or None when they may."""
    held = set(roles)
    return AUDIT_INDEPENDENCE if any(a in held and b in held for a, b in INCOMPATIBLE_ROLES) else None


def why_not_grant(actor: Actor, roles: Collection[str], *, branch_path: str,
                  before: Collection[str] = ()) -> Refusal | None:
    """Why the actor may not give a user of the branch at `branch_path` the roles `roles` (the user holds
    `before` now; nothing for a new user), or None when they may.

    Nobody grants a scope wider than their own: an administrator places staff only within their own
    subtree (a branch administrator never at head office), and only a head-office administrator changes a
    bank-wide role. Roles the policy forbids together are refused whoever asks.
    """
    if not actor.has("admin"):
        return NOT_ADMIN
    if not in_subtree(branch_path, actor.branch_path):
        return OUTSIDE_SUBTREE
    if any(not may_grant(actor, role) for role in set(roles) ^ set(before)):
        return BANK_WIDE_ROLE
    return incompatible_roles(roles)


def require_grant(actor: Actor, roles: Collection[str], *, branch_path: str, before: Collection[str] = ()) -> None:
    """Raise PermissionDenied (with the refusal) unless the actor may give the user these roles there."""
    refusal = why_not_grant(actor, roles, branch_path=branch_path, before=before)
    if refusal is not None:
        raise refuse(refusal)


# --- rule sets --------------------------------------------------------------------------------------------

# Maker-checker: a rule-set version is published only when a second head-office administrator approves the
# draft its author submitted. Whoever wrote the draft (its creator, its last editor, the one who submitted
# it) may neither approve nor reject it.
NOT_BANK_ADMIN = Refusal("not_bank_admin", N_("only head-office administrators change bank-wide settings"))
OWN_RULE_SET_DRAFT = Refusal("own_draft",
                             N_("A second head-office administrator must approve a rule set: its author and its "
                                "last editor may not approve or reject it."))


def why_not_review_rule_set(actor: Actor, *, author_ids: Collection[int | None]) -> Refusal | None:
    """Why the actor may not approve (and publish) or reject a submitted rule-set draft, or None when they may.

    `author_ids` are the draft's creator, its last editor and the administrator who submitted it.
    """
    if not (actor.has("admin") and actor.head_office):
        return NOT_BANK_ADMIN
    if actor.id in set(author_ids):
        return OWN_RULE_SET_DRAFT
    return None


def require_review_rule_set(actor: Actor, *, author_ids: Collection[int | None]) -> None:
    """Raise PermissionDenied (with the refusal) unless the actor may approve or reject the draft."""
    refusal = why_not_review_rule_set(actor, author_ids=author_ids)
    if refusal is not None:
        raise refuse(refusal)


# --- stand-ins (代理) -------------------------------------------------------------------------------------

STAND_IN_SEATS = ("committee_member", "committee_chair")
NO_SEAT = Refusal("no_seat", N_("Only a committee member or chair names a stand-in, for their own seat."))
PASSED_ON = Refusal("passed_on", N_("A stand-in acts only for the person who named them and may not pass it on."))
STAND_IN_SELF = Refusal("stand_in_self", N_("You cannot be your own stand-in."))
STAND_IN_BRANCH = Refusal("stand_in_branch",
                          N_("A stand-in must be an active member of staff of your own branch."))
STAND_IN_AUDITOR = Refusal("stand_in_auditor",
                           N_("An internal auditor may not stand in on the committee: internal audit stays "
                              "independent of the work it audits."))
STAND_IN_AWAY = Refusal("stand_in_away",
                        N_("That person has named a stand-in of their own for part of this period: a stand-in "
                           "is never passed on."))
NOT_YOUR_STAND_IN = Refusal("not_your_stand_in",
                            N_("Only the person who named a stand-in, or an administrator of their branch, may "
                               "revoke it."))


@dataclass(frozen=True)
class StandInCandidate:
    """The person to be named a stand-in: what the naming rules read."""

    id: int
    roles: frozenset[str]
    branch_id: int
    active: bool
    away: bool  # has named a stand-in of their own over part of the period


def why_not_name_stand_in(actor: Actor, candidate: StandInCandidate) -> Refusal | None:
    """Why the actor may not name `candidate` their stand-in, or None when they may.

    Only a committee member or chair names one, for their own seat (a stand-in, who holds no seat by it, never
    passes it on); never themselves; someone of their own branch (the committee's, so within its scope), active,
    not an internal auditor, and not away themselves. A stand-in conflicted on a case is refused on that case
    when they act (`why_not`).
    """
    if not actor.has(*STAND_IN_SEATS):
        return PASSED_ON if actor.stands_in_for else NO_SEAT
    if candidate.id == actor.id:
        return STAND_IN_SELF
    if not candidate.active or candidate.branch_id != actor.branch_id:
        return STAND_IN_BRANCH
    if has_role(candidate.roles, *BANK_WIDE_ROLES):
        return STAND_IN_AUDITOR
    if candidate.away:
        return STAND_IN_AWAY
    return None


def why_not_revoke_stand_in(actor: Actor, *, principal_id: int, principal_branch_path: str) -> Refusal | None:
    """Who revokes a stand-in: the principal who named them, or an administrator whose subtree holds the
    principal's branch."""
    if actor.id == principal_id or (actor.has("admin") and in_subtree(principal_branch_path, actor.branch_path)):
        return None
    return NOT_YOUR_STAND_IN


# --- the part one plays in a case (which guide the case page offers) --------------------------------------

CASE_PARTS = ("respondent", "investigator", "appeal_reviewer", "committee", "auditor", "admin")


def part_in_case(actor: Actor, case: CaseView) -> str:
    """The part the actor plays in the case, for the help the case page offers: a respondent or the case's
    investigator first (whatever else they hold), then the appeal committee above the case while its appeals
    are heard, the deciding committee, internal audit, administration; anyone else of the staff reads it as
    a credit officer would."""
    if actor.id in case.respondent_user_ids:
        return "respondent"
    if actor.id == case.investigator_id:
        return "investigator"
    if (actor.has(*APPEAL_PANEL_ROLES) and case.appeal_branch_id == actor.branch_id
            and case.state in ("appeal_window", "appeal_review")):
        return "appeal_reviewer"
    if actor.has("committee_member", "committee_chair"):
        return "committee"
    for role, part in (("investigator", "investigator"), ("auditor", "auditor"), ("admin", "admin"),
                       ("appeal_reviewer", "appeal_reviewer"), ("appeal_chair", "appeal_reviewer")):
        if actor.has(role):
            return part
    return "respondent"


# --- first passwords: invitations ------------------------------------------------------------------------

# A member of staff sets their own first password from a one-time invitation link; an administrator types
# one for them only where the bank's policy allows it (MIANZE_ALLOW_TYPED_PASSWORDS), never by default.
TYPED_PASSWORDS_OFF = Refusal("typed_passwords_off",
                              N_("The bank's policy is that staff set their own passwords from an invitation: "
                                 "send an invitation instead of typing a password."))


def why_not_invite(actor: Actor, *, branch_path: str) -> Refusal | None:
    """Why the actor may not invite (or send again, or revoke the invitation of) a member of staff of the
    branch at `branch_path`: an administrator of that branch's subtree may."""
    if not actor.has("admin"):
        return NOT_ADMIN
    if not in_subtree(branch_path, actor.branch_path):
        return OUTSIDE_SUBTREE
    return None


def why_not_type_password(actor: Actor, *, branch_path: str, bank_allows: bool) -> Refusal | None:
    """Why the actor may not type someone's password for them: an administrator of their subtree, and only
    where the bank's policy allows typed passwords (`bank_allows`)."""
    refusal = why_not_invite(actor, branch_path=branch_path)
    if refusal is not None:
        return refusal
    return None if bank_allows else TYPED_PASSWORDS_OFF
