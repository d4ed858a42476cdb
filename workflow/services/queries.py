"""Readers shared by the verbs, the pages and the API: the acting user and the case aggregate.

A case is loaded once per unit of work as one `CaseAggregate` (kept in the session's `info`): the policy's
`CaseView`, the state machine's `GuardContext` and the case page are all built from the same snapshot, and
each part (respondents, votes, appeals…) is read the first time something asks for it, with one statement.
A verb that changes a part says so (`changed`), so that a later reader in the same unit sees the change.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property
from types import SimpleNamespace

from sqlalchemy import bindparam, event
from sqlmodel import Session, select

from ..db import rows
from ..domain import hearing, policy, rules, states
from ..domain.errors import NotFound
from ..models import (
    Appeal,
    AppealVote,
    AppealWaiver,
    AuditEvent,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Letter,
    LetterService,
    Loan,
    LoanStage,
    Respondent,
    RuleSetVersion,
    StageFact,
    StandIn,
    User,
    Vote,
)
from . import rulesets

_AGGREGATES = "mianze.aggregates"
_ACTORS = "mianze.actors"


@event.listens_for(Session, "after_transaction_end")
def _forget_at_transaction_end(session, transaction) -> None:
    """What a unit of work read (aggregates, actors, calendar, rules) lives as long as its transaction."""
    if transaction.parent is None:
        for key in [k for k in session.info if isinstance(k, str) and k.startswith("mianze.")]:
            del session.info[key]

# Statements built once (building a statement costs several times more than running it); the case id is a
# bound parameter.
# The case with its deciding branch, its enterprise and the identity of its procedure's rule set: one row.
_CASE = (select(Case, Branch.path, Branch.name, Branch.name_en, Enterprise.name.label("enterprise_name"),
                Enterprise.uscc, RuleSetVersion.id.label("rs_id"), RuleSetVersion.version.label("rs_version"),
                RuleSetVersion.status.label("rs_status"), RuleSetVersion.created_at.label("rs_created_at"))
         .join(Branch, Branch.id == Case.branch_id).join(Enterprise, Enterprise.id == Case.enterprise_id)
         .join(RuleSetVersion, RuleSetVersion.id == Case.rule_set_version_id)
         .where(Case.id == bindparam("case_id")))
_BRANCH = select(Branch.path, Branch.name, Branch.name_en).where(Branch.id == bindparam("branch_id"))
_RESPONDENTS = select(Respondent).where(Respondent.case_id == bindparam("case_id")).order_by(Respondent.id)
_LOANS = (select(Loan).join(CaseLoan, CaseLoan.loan_id == Loan.id)
          .where(CaseLoan.case_id == bindparam("case_id")).order_by(Loan.loan_no))
_ASSIGNMENTS = (select(LoanStage).join(CaseLoan, CaseLoan.loan_id == LoanStage.loan_id)
                .where(CaseLoan.case_id == bindparam("case_id")).order_by(LoanStage.loan_id, LoanStage.id))
_VOTES = select(Vote).where(Vote.case_id == bindparam("case_id")).order_by(Vote.id)
_VALID_VOTES = select(Vote).where(Vote.case_id == bindparam("case_id"), Vote.invalidated_at.is_(None))
_APPEAL_VOTES = select(AppealVote).where(AppealVote.case_id == bindparam("case_id")).order_by(AppealVote.id)
_APPEALS = select(Appeal).where(Appeal.case_id == bindparam("case_id")).order_by(Appeal.id)
_FACTS = (select(StageFact).join(Respondent, Respondent.id == StageFact.respondent_id)
          .where(Respondent.case_id == bindparam("case_id")))
_LETTERS = (select(Letter.id, Letter.kind, Letter.doc_number, Letter.version, Letter.issued_at, Letter.respondent_id,
                   Letter.supersedes_id, Letter.appeal_id).where(Letter.case_id == bindparam("case_id"))
            .order_by(Letter.id))
_SERVICES = select(LetterService.id, LetterService.letter_id, LetterService.respondent_id, LetterService.method,
                   LetterService.served_on, LetterService.appeal_deadline, LetterService.receipt_id) \
    .where(LetterService.case_id == bindparam("case_id"))
_WAIVERS = select(AppealWaiver.respondent_id).where(AppealWaiver.case_id == bindparam("case_id"))
_DETERMINERS = select(AuditEvent.actor_id).where(AuditEvent.case_id == bindparam("case_id"),
                                                 AuditEvent.event == "determine")
_EVENTS = (select(AuditEvent.seq, AuditEvent.actor_id, AuditEvent.actor, AuditEvent.at, AuditEvent.event,
                  AuditEvent.from_state, AuditEvent.to_state, AuditEvent.payload)
           .where(AuditEvent.case_id == bindparam("case_id")).order_by(AuditEvent.seq))
_ENTERPRISE = select(Enterprise.id, Enterprise.name, Enterprise.uscc).where(Enterprise.id == bindparam("id"))
_BRANCH_STAFF = select(User.id, User.name, User.roles).where(User.branch_id == bindparam("branch_id"),
                                                              User.active.is_(True))
_ACTOR = (select(User.id, User.roles, User.branch_id, Branch.path, Branch.level)
          .join(Branch, Branch.id == User.branch_id).where(User.id == bindparam("user_id")))
# The stand-ins a user holds on a day: named for them, not revoked, the day within the period, the principal
# still active.
_DELEGATIONS = (select(StandIn.principal_id, User.roles, User.branch_id)
                .join(User, User.id == StandIn.principal_id)
                .where(StandIn.stand_in_id == bindparam("user_id"), StandIn.revoked_at.is_(None),
                       StandIn.starts_on <= bindparam("day"), StandIn.ends_on >= bindparam("day"),
                       User.active.is_(True))
                .order_by(StandIn.id))


def delegations_of(conn, user_id: int, day: date | None = None) -> tuple[policy.Delegation, ...]:
    """The stand-ins `user_id` holds on `day` (today by default) as the policy's Delegations; `conn` is a
    Connection or a Session."""
    found = conn.execute(_DELEGATIONS, {"user_id": user_id, "day": day or date.today()}).all()
    return tuple(policy.Delegation(principal_id=r.principal_id, roles=frozenset(r.roles.split()),
                                   branch_id=r.branch_id) for r in found)


# --- the acting user --------------------------------------------------------------------------------------

def actor_of(session: Session, user) -> policy.Actor | None:
    """The policy's Actor for a user row (None for the system, e.g. the deadline tick); read once per unit."""
    if user is None:
        return None
    if isinstance(user, policy.Actor):
        return user
    known = session.info.setdefault(_ACTORS, {})
    actor = known.get(user.id)
    if actor is None:
        row = rows(session, _ACTOR, {"user_id": user.id}).first()
        if row is None:
            raise NotFound(f"user {user.id} does not exist")
        actor = known[user.id] = policy.Actor(id=row.id, roles=frozenset(row.roles.split()),
                                              branch_id=row.branch_id, branch_path=row.path,
                                              branch_level=row.level,
                                              stands_in_for=delegations_of(session, row.id))
    return actor


# --- the case aggregate -----------------------------------------------------------------------------------

@dataclass
class Committee:
    """A committee member as the vote pages and the quorum read them."""

    id: int
    name: str
    roles: frozenset[str]


class CaseAggregate:
    """One case with everything a verb, a guard, the policy or a page reads about it, each part read once."""

    def __init__(self, session: Session, case: Case, branch_path: str, branch_name: str = "",
                 branch_name_en: str = ""):
        self.session = session
        self.case = case
        self.branch_path = branch_path
        self.branch_name = branch_name  # the deciding branch
        self.branch_name_en = branch_name_en or branch_name

    def _all(self, statement):
        return list(self.session.exec(statement, params={"case_id": self.case.id}))

    @cached_property
    def respondents(self) -> list[Respondent]:
        return self._all(_RESPONDENTS)

    @cached_property
    def loans(self) -> list[Loan]:
        return self._all(_LOANS)

    @cached_property
    def assignments(self) -> list[LoanStage]:
        """Who handled which stage of the case's loans."""
        return self._all(_ASSIGNMENTS)

    @cached_property
    def votes(self) -> list[Vote]:
        """Every vote on the case, valid or not, in the order cast."""
        return self._all(_VOTES)

    @property
    def valid_votes(self) -> list[Vote]:
        return [v for v in self.votes if v.invalidated_at is None]

    @cached_property
    def appeals(self) -> list[Appeal]:
        return self._all(_APPEALS)

    @cached_property
    def appeal_votes(self) -> list[AppealVote]:
        """Every appeal panel vote on the case's appeals, valid or replaced, in the order cast."""
        return self._all(_APPEAL_VOTES)

    @cached_property
    def facts(self) -> list[StageFact]:
        return self._all(_FACTS)

    @cached_property
    def letters(self) -> list:
        """The case's letters (metadata rows, no PDF bytes)."""
        return rows(self.session, _LETTERS, {"case_id": self.case.id}).all()

    @cached_property
    def services(self) -> list:
        """The recorded services of the case's letters (rows: letter, respondent, appeal deadline)."""
        return rows(self.session, _SERVICES, {"case_id": self.case.id}).all()

    @cached_property
    def waivers(self) -> frozenset[int]:
        """The respondents who waived their appeal."""
        return frozenset(rows(self.session, _WAIVERS, {"case_id": self.case.id}).scalars())

    def respondents_settled(self, today: date) -> bool:
        """Whether every respondent has appealed, waived, or let the window from their current
        determination letter's service pass (a respondent whose letter is not served is not settled)."""
        current: dict[int, tuple[int, int]] = {}
        for lt in self.letters:
            if lt.kind == "determination" and (lt.respondent_id not in current
                                               or lt.version > current[lt.respondent_id][0]):
                current[lt.respondent_id] = (lt.version, lt.id)
        deadline = {sv.letter_id: sv.appeal_deadline for sv in self.services}
        appealed = {a.respondent_id for a in self.appeals}
        for r in self.respondents:
            if r.id in appealed or r.id in self.waivers:
                continue
            letter = current.get(r.id)
            due = deadline.get(letter[1]) if letter else None
            if due is None or today <= due:
                return False
        return bool(self.respondents)

    @cached_property
    def events(self) -> list:
        """The case's audit events (rows), oldest first: its timeline."""
        return rows(self.session, _EVENTS, {"case_id": self.case.id}).all()

    @cached_property
    def determiners(self) -> list[int]:
        """Who signed the case's determinations (a reopened case may have several)."""
        if "events" in self.__dict__:
            return [e.actor_id for e in self.events if e.event == "determine" and e.actor_id is not None]
        return [a for a in rows(self.session, _DETERMINERS, {"case_id": self.case.id}).scalars() if a is not None]

    @cached_property
    def enterprise(self):
        return rows(self.session, _ENTERPRISE, {"id": self.case.enterprise_id}).first()

    @cached_property
    def procedure(self) -> rules.RuleSet:
        """The rules of the case's procedure: the rule-set version in force when it was opened."""
        return rulesets.procedure_rules(self.session, self.case)

    @cached_property
    def committee(self) -> list[Committee]:
        """Committee members and chairs whose home branch is the case's determining branch."""
        staff = rows(self.session, _BRANCH_STAFF, {"branch_id": self.case.branch_id}).all()
        out = [Committee(u.id, u.name, frozenset(u.roles.split())) for u in staff]
        return [m for m in out if policy.has_role(m.roles, "committee_member", "committee_chair")]

    @property
    def appeal_branch_id(self) -> int:
        """The branch whose appeal committee reviews this case's appeals (the level above the deciding one)."""
        return policy.appeal_body_of(self.branch_path)

    @cached_property
    def appeal_panel(self) -> list[Committee]:
        """The appeal committee: active appeal reviewers and chairs whose home branch is the appeal branch."""
        staff = rows(self.session, _BRANCH_STAFF, {"branch_id": self.appeal_branch_id}).all()
        out = [Committee(u.id, u.name, frozenset(u.roles.split())) for u in staff]
        return [m for m in out if policy.has_role(m.roles, *policy.APPEAL_PANEL_ROLES)]

    def appeal_conflict(self, user_id: int) -> str | None:
        """Why a member of the appeal committee recuses from this case's appeals, or None."""
        view = self.view()
        return policy.appeal_reviewer_conflict(user_id, respondent_ids=view.respondent_user_ids,
                                               decider_ids=view.decider_ids, investigator_id=view.investigator_id,
                                               loan_handler_ids=view.handler_ids)

    def eligible_panel(self) -> list[Committee]:
        """Appeal committee members not recused from this case's appeals."""
        return [m for m in self.appeal_panel if self.appeal_conflict(m.id) is None]

    def panel_votes(self, appeal_id: int) -> list[AppealVote]:
        """The valid panel votes on one appeal, in the order cast."""
        return [v for v in self.appeal_votes if v.appeal_id == appeal_id and v.invalidated_at is None]

    def changed(self, *parts: str) -> None:
        """Forget parts a verb changed (read again when next asked for)."""
        for part in parts:
            self.__dict__.pop(part, None)

    # --- derived views ---------------------------------------------------------------------------------

    @property
    def respondent_user_ids(self) -> frozenset[int]:
        return frozenset(r.user_id for r in self.respondents)

    @property
    def handler_ids(self) -> frozenset[int]:
        return frozenset(a.user_id for a in self.assignments)

    def respondent(self, respondent_id: int) -> Respondent:
        """A respondent of this case, or NotFound."""
        for r in self.respondents:
            if r.id == respondent_id:
                return r
        raise NotFound(f"respondent {respondent_id} is not part of case {self.case.number}")

    def respondent_of_user(self, user_id: int) -> Respondent | None:
        return next((r for r in self.respondents if r.user_id == user_id), None)

    def sees_tally(self, actor: policy.Actor) -> bool:
        """Whether the actor may see the votes now: the policy's answer, given whether they have a valid vote
        on every respondent."""
        mine = {v.respondent_id for v in self.valid_votes if v.member_id == actor.id}  # cast by them
        voted = bool(self.respondents) and all(r.id in mine for r in self.respondents)
        return policy.may_see_tally(actor, self.view(), has_voted=voted)

    def view(self) -> policy.CaseView:
        """The plain view of the case the policy decides on."""
        return policy.CaseView(
            case_id=self.case.id, state=self.case.state, branch_id=self.case.branch_id, branch_path=self.branch_path,
            investigator_id=self.case.investigator_id, respondent_user_ids=self.respondent_user_ids,
            handler_ids=self.handler_ids,
            respondent_of_user=tuple((r.user_id, r.id) for r in self.respondents),
            decider_ids=frozenset([*(v.member_id for v in self.votes), *(v.on_behalf_of_id for v in self.votes
                                                                           if v.on_behalf_of_id), *self.determiners]),
            appeal_branch_id=policy.appeal_body_of(self.branch_path))

    def eligible_voters(self) -> list[Committee]:
        """Committee members not recused from this case."""
        respondents, handlers = self.respondent_user_ids, self.handler_ids
        return [m for m in self.committee
                if policy.recusal_reason(m.id, respondent_ids=respondents, investigator_id=self.case.investigator_id,
                                         loan_handler_ids=handlers) is None]

    def carried(self, respondent: Respondent) -> str | None:
        """The outcome the valid votes carry for one respondent under the voting rule, or None."""
        votes = [v.outcome for v in self.valid_votes if v.respondent_id == respondent.id]
        return rules.decide_by_votes(votes, None, self.procedure)

    def guard_context(self, today: date | None = None, needs: Collection[str] | None = None) -> states.GuardContext:
        """A plain snapshot of the case for the state machine's guards.

        `needs`: the guard names it is for (None: every guard); parts no needed guard reads stay empty.
        """
        case = self.case
        need_respondents = needs is None or not _RESPONDENT_GUARDS.isdisjoint(needs)
        need_quorum = (needs is None or "quorum_reached" in needs) and case.state == "under_review"
        snaps = []
        day = today or date.today()
        names: dict[int, str] = {}
        if (needs is None or "statements_heard" in needs) and case.state == "investigating" and self.respondents:
            names = dict(self.session.exec(select(User.id, User.name).where(
                User.id.in_([r.user_id for r in self.respondents]))).all())
        if need_respondents:
            # A stage is recorded once its written findings are (domain.md §11: the report prints them).
            have = {(f.respondent_id, f.loan_id, f.stage) for f in self.facts if (f.facts.get("findings") or "").strip()}
            for r in self.respondents:
                mine = [(a.loan_id, a.stage) for a in self.assignments if a.user_id == r.user_id]
                snaps.append(states.RespondentSnapshot(
                    id=r.id, user_id=r.user_id, stages=tuple(f"{lo}:{s}" for lo, s in mine),
                    stages_with_facts=frozenset(f"{lo}:{s}" for lo, s in mine if (r.id, lo, s) in have),
                    recommended=r.recommended_outcome,
                    decided=r.decided_outcome or (self.carried(r) if case.state == "under_review" else None),
                    deviation_reason=r.deviation_reason, final=r.final_outcome, name=names.get(r.user_id, ""),
                    statement=hearing.position(r.statement_at, r.statement_declined_at, r.statement_due, day),
                    statement_due=r.statement_due))
        appeals = self.appeals if needs is None or not _APPEAL_GUARDS.isdisjoint(needs) else []
        voter_ids = {m.id for m in self.eligible_voters()} if need_quorum else set()
        letters_missing = 0
        if case.state == "determined" and need_respondents:
            issued = {lt.respondent_id for lt in self.letters if lt.kind == "determination"}
            letters_missing = sum(1 for r in self.respondents if r.id not in issued)
        return states.GuardContext(
            today=today or date.today(),
            respondents=tuple(snaps),
            appeals=tuple(states.AppealSnapshot(id=a.id, respondent_id=a.respondent_id,
                                                appealed_outcome=a.appealed_outcome, decided=a.decision is not None,
                                                new_outcome=a.new_outcome) for a in appeals),
            eligible_voters=len(voter_ids),
            votes_cast_by=frozenset(v.seat_id for v in self.valid_votes if v.seat_id in voter_ids),
            **({"quorum_fraction": rulesets.quorum(self.procedure)} if need_quorum else {}),
            letters_missing=letters_missing,
            publicity_ends=case.publicity_ends,
            appeal_window_ends=case.appeal_window_ends,
            respondents_settled=(case.state == "appeal_window" and (needs is None or "appeal_window_elapsed" in needs)
                                 and self.respondents_settled(today or date.today())),
            legal_hold=case.legal_hold,
        )


# Which parts of the snapshot each guard reads, so that an event prepares only what its guards need.
_RESPONDENT_GUARDS = frozenset({"investigator_not_respondent", "facts_complete", "statements_heard",
                                "every_respondent_decided",
                                "deviations_have_reasons", "some_outcome_not_exempt", "letters_issued"})
_APPEAL_GUARDS = frozenset({"has_appeals", "every_appeal_decided", "no_appeal_worsened"})


@cache
def guards_of(trigger: str) -> frozenset[str]:
    """The guard names any declared transition of `trigger` evaluates."""
    return frozenset(g for t in states.TRANSITIONS if t["trigger"] == trigger
                     for g in t.get("conditions", []) + t.get("unless", []))


def load(session: Session, case_id: int, *, for_update: bool = False) -> CaseAggregate:
    """The case's aggregate in this unit of work (read once), or NotFound."""
    known = session.info.setdefault(_AGGREGATES, {})
    agg = known.get(case_id)
    if agg is not None and not for_update:
        return agg
    query = _CASE.with_for_update(of=Case) if for_update else _CASE
    row = session.exec(query, params={"case_id": case_id}).first()
    if row is None:
        raise NotFound(f"case {case_id} does not exist")
    case = row[0]
    if agg is not None and agg.case is case:
        return agg
    agg = known[case_id] = CaseAggregate(session, case, row.path, row.name, row.name_en)
    agg.enterprise = SimpleNamespace(id=case.enterprise_id, name=row.enterprise_name, uscc=row.uscc)
    agg.procedure = rulesets.parsed_by_identity(session, SimpleNamespace(
        id=row.rs_id, version=row.rs_version, status=row.rs_status, created_at=row.rs_created_at))
    return agg


def aggregate(session: Session, case: Case) -> CaseAggregate:
    """The aggregate of a case row already loaded in this session."""
    known = session.info.setdefault(_AGGREGATES, {})
    agg = known.get(case.id)
    if agg is None or agg.case is not case:
        branch = rows(session, _BRANCH, {"branch_id": case.branch_id}).one()
        agg = known[case.id] = CaseAggregate(session, case, *branch)
    return agg


def authorize(session: Session, case: Case, actor, action: str) -> CaseAggregate:
    """The case's aggregate, after the policy allowed `actor` to take `action` (PermissionDenied otherwise).

    The system (`actor` None: the deadline tick) is not asked.
    """
    agg = aggregate(session, case)
    who = actor_of(session, actor)
    if who is not None:
        policy.require(who, agg.view(), action)
    return agg


class NeedToKnow:
    """What of a case one actor may read, by the policy's need-to-know rule (`policy.sees_all_parts`): the
    readers (case page, API lists, downloads) filter what they show through it. The system sees all."""

    def __init__(self, agg: CaseAggregate, actor: policy.Actor | None):
        self.view = agg.view()
        self.actor = actor
        self._agg = agg
        self.all = actor is None or policy.sees_all_parts(actor, self.view)
        self.named_votes = actor is None or policy.sees_named_votes(actor, self.view)
        self._appeal_of = {a.id: a.respondent_id for a in agg.appeals}
        # a letter's respondent; for a document of the whole case -2 when readable, -1 when not
        self._letter_of = {} if self.all else {
            lt.id: (self.document_respondent(lt) if self.document_respondent(lt) is not None
                    else (-2 if self.reads_document(lt) else -1)) for lt in agg.letters}

    def sees(self, respondent_id: int | None) -> bool:
        """Whether one respondent's part (None: case-wide material) is readable."""
        return self.all or policy.why_not_see(self.actor, self.view, respondent_id) is None

    def respondents(self, items):
        return [r for r in items if self.sees(r.id)]

    def parts(self, items):
        """Rows that belong to one respondent (`respondent_id`): facts, appeals, windows, votes."""
        return [x for x in items if self.sees(x.respondent_id)]

    def document_respondent(self, letter) -> int | None:
        rid = getattr(letter, "respondent_id", None)
        if rid is None and getattr(letter, "appeal_id", None) is not None:
            rid = self._appeal_of.get(letter.appeal_id)
        return rid

    def reads_document(self, letter) -> bool:
        return self.all or policy.why_not_read_document(self.actor, self.view, letter.kind,
                                                        self.document_respondent(letter)) is None

    def require_document(self, letter) -> None:
        if not self.all:
            policy.require_read_document(self.actor, self.view, letter.kind, self.document_respondent(letter))

    def evidence_respondent(self, ev) -> int | None:
        if ev.respondent_id is not None:
            return ev.respondent_id
        return self._appeal_of.get(ev.appeal_id) if ev.appeal_id is not None else None

    def reads_evidence(self, ev) -> bool:
        return self.sees(self.evidence_respondent(ev))

    def require_evidence(self, ev) -> None:
        if not self.all:
            policy.require_see(self.actor, self.view, self.evidence_respondent(ev))

    def require_named_votes(self) -> None:
        """Raise PermissionDenied (need_to_know) unless the actor sees who voted how (and so the audit trail)."""
        if not self.named_votes:
            raise policy.refuse(policy.NEED_TO_KNOW)

    def unanchored(self, events):
        """The audit events without the votes the actor may not see yet (no anchoring, policy.may_see_tally):
        a member who has not voted on every respondent reads their own votes only. `events` are dicts or rows
        with `event` and `actor_id`."""
        if self.actor is None or self._agg.sees_tally(self.actor):
            return list(events)
        me = self.actor.id

        def field(ev, name):
            return ev[name] if isinstance(ev, dict) else getattr(ev, name)
        return [ev for ev in events if field(ev, "event") != "record_vote" or field(ev, "actor_id") == me]

    def require_part(self, respondent_id: int | None) -> None:
        if not self.all:
            policy.require_see(self.actor, self.view, respondent_id)

    def events(self, items):
        """The timeline. A respondent sees the case's steps (the state changes) and the events of their own
        part; not the votes cast (who voted), nor another respondent's facts, statement, letters or appeal."""
        if self.all:
            return list(items)
        out = []
        for ev in items:
            payload = ev.payload if isinstance(ev.payload, dict) else {}
            rid = payload.get("respondent_id")
            if rid is None and payload.get("appeal_id") is not None:
                rid = self._appeal_of.get(payload["appeal_id"])
            if rid is None and payload.get("letter_id") is not None:
                rid = self._letter_of.get(payload["letter_id"], -1)
            if rid is not None:
                if rid == -2 or (rid != -1 and self.sees(rid)):
                    out.append(ev)
            elif ev.to_state and ev.event not in _VOTE_EVENTS:
                out.append(ev)
        return out


_VOTE_EVENTS = frozenset({"record_vote", "votes_invalidated"})


def need_to_know(session: Session, case: Case, actor) -> NeedToKnow:
    """The need-to-know filter of the case for `actor` (a user row, an Actor or None for the system)."""
    return NeedToKnow(aggregate(session, case), actor_of(session, actor))


# --- readers kept for callers that need one part only ------------------------------------------------------

def get_case(session: Session, case_id: int, *, for_update: bool = False) -> Case:
    """The case, or NotFound."""
    return load(session, case_id, for_update=for_update).case


def respondents_of(session: Session, case_id: int) -> list[Respondent]:
    return list(session.exec(_RESPONDENTS, params={"case_id": case_id}))


def case_loans(session: Session, case_id: int) -> list[Loan]:
    return list(session.exec(_LOANS, params={"case_id": case_id}))


def stage_assignments(session: Session, case_id: int) -> list[LoanStage]:
    """Who handled which stage of the case's loans."""
    return list(session.exec(_ASSIGNMENTS, params={"case_id": case_id}))


def valid_votes(session: Session, case_id: int) -> list[Vote]:
    return list(session.exec(_VALID_VOTES, params={"case_id": case_id}))


def audit_events(session: Session, case_id: int) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq)))


def determining_branch(session: Session, branch: Branch) -> Branch:
    """The branch whose committee decides: the tier-1 branch above (or the branch itself if higher)."""
    while branch.level > 1 and branch.parent_id is not None:
        branch = session.get(Branch, branch.parent_id)
    return branch
