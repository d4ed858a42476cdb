"""NPL intake: the non-performing loans awaiting an exemption case, grouped by enterprise, a case registered
from a group in one step, why no case is opened recorded, and the registration form's loan picker.

Which loans await a case is `domain/intake.py`'s rule; who works the list is `policy.why_not_triage`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import and_, exists, func, or_, true
from sqlmodel import Session, select

from ..domain import intake, policy, states
from ..domain.errors import NotFound, OutOfScope, ValidationFailed
from ..models import Branch, Case, CaseLoan, Enterprise, IntakeDismissal, Loan, LoanStage, User
from . import audit, cases, queries, rulesets

PAGE = 20


@dataclass
class IntakeLoan:
    id: int
    loan_no: str
    classification: str
    product_class: str
    amount: Decimal
    balance: Decimal
    branch: str
    branch_en: str
    out_of_scope: str | None = None  # the scope check's reason, None when in scope
    scope_details: dict | None = None  # the same as data: reason (product_class, borrower_kind, credit_total), value


@dataclass
class Handler:
    user_id: int
    name: str
    employee_no: str
    stages: list[str] = field(default_factory=list)
    other_groups: int = 0  # other enterprises on the list whose NPLs this person also handled


@dataclass
class IntakeGroup:
    enterprise_id: int
    enterprise: str
    uscc: str
    loans: list[IntakeLoan]
    handlers: list[Handler]
    open_case: str | None = None  # the enterprise's open case: the loans are to be considered in it

    @property
    def in_scope(self) -> bool:
        return all(lo.out_of_scope is None for lo in self.loans)

    @property
    def total_balance(self) -> Decimal:
        return sum((lo.balance for lo in self.loans), Decimal(0))


def _awaiting():
    """The SQL condition "the loan awaits a case" (domain/intake.py)."""
    in_case = exists().where(CaseLoan.loan_id == Loan.id, Case.id == CaseLoan.case_id, Case.state != "withdrawn")
    dismissed = exists().where(IntakeDismissal.loan_id == Loan.id)
    return and_(Loan.classification.in_(intake.NPL_CLASSES), ~in_case, ~dismissed)


def _scope(actor: policy.Actor):
    if policy.sees_everything(actor):
        return true()
    return Branch.path.startswith(actor.branch_path)


def _actor(session: Session, user) -> policy.Actor:
    actor = queries.actor_of(session, user)
    policy.require_register(actor)
    return actor


def groups(session: Session, user, *, q: str = "", offset: int = 0, limit: int = PAGE,
           today: date | None = None) -> tuple[list[IntakeGroup], int]:
    """One page of the intake list (enterprises with loans awaiting a case, in the actor's scope), newest
    enterprise first, and how many enterprises are on it. `q` filters by loan number prefix or enterprise name."""
    actor = _actor(session, user)
    cond = [_awaiting(), _scope(actor)]
    q = (q or "").strip()
    if q:
        cond.append(or_(Loan.loan_no.startswith(q), Enterprise.name.contains(q)))
    base = (select(Loan.enterprise_id).join(Branch, Branch.id == Loan.branch_id)
            .join(Enterprise, Enterprise.id == Loan.enterprise_id).where(*cond))
    total = session.exec(select(func.count()).select_from(base.distinct().subquery())).one()
    page = session.exec(base.group_by(Loan.enterprise_id).order_by(Loan.enterprise_id.desc())
                        .offset(offset).limit(limit)).all()
    return _build(session, actor, list(page), today or date.today()), total


def _build(session: Session, actor: policy.Actor, enterprise_ids: list[int], today: date) -> list[IntakeGroup]:
    if not enterprise_ids:
        return []
    rows = session.exec(select(Loan, Branch.name, Branch.name_en, Enterprise).join(Branch, Branch.id == Loan.branch_id)
                        .join(Enterprise, Enterprise.id == Loan.enterprise_id)
                        .where(Loan.enterprise_id.in_(enterprise_ids), _awaiting(), _scope(actor))
                        .order_by(Loan.loan_no)).all()
    rs = rulesets.parsed(rulesets.version_in_force(session, today))
    by_ent: dict[int, list[IntakeLoan]] = defaultdict(list)
    ents: dict[int, Enterprise] = {}
    loan_ent: dict[int, int] = {}
    for loan, branch_name, branch_name_en, ent in rows:
        ents[ent.id] = ent
        loan_ent[loan.id] = ent.id
        try:
            rulesets.check_scope(session, loan, rs)
            why = details = None
        except OutOfScope as exc:
            why, details = exc.message, dict(exc.details)
        by_ent[ent.id].append(IntakeLoan(loan.id, loan.loan_no, loan.classification, loan.product_class, loan.amount,
                                         loan.balance, branch_name, branch_name_en or branch_name, why, details))
    stages = session.exec(select(LoanStage.loan_id, LoanStage.stage, User.id, User.name, User.employee_no)
                          .join(User, User.id == LoanStage.user_id)
                          .where(LoanStage.loan_id.in_(list(loan_ent)))).all()
    handlers: dict[int, dict[int, Handler]] = defaultdict(dict)
    for loan_id, stage, uid, name, emp in stages:
        h = handlers[loan_ent[loan_id]].setdefault(uid, Handler(uid, name, emp))
        if stage not in h.stages:
            h.stages.append(stage)
    # Merged consideration: how many other enterprises awaiting a case the same person handled NPLs of.
    people = {uid for hs in handlers.values() for uid in hs}
    spread: dict[int, set[int]] = defaultdict(set)
    if people:
        for uid, ent_id in session.exec(select(LoanStage.user_id, Loan.enterprise_id).join(Loan, Loan.id == LoanStage.loan_id)
                                        .where(LoanStage.user_id.in_(list(people)), _awaiting()).distinct()).all():
            spread[uid].add(ent_id)
    open_cases = dict(session.exec(select(Case.enterprise_id, Case.number).where(
        Case.enterprise_id.in_(list(ents)), Case.state.not_in(states.TERMINAL_STATES))).all())
    out = []
    for ent_id in enterprise_ids:
        if ent_id not in ents:
            continue
        hs = sorted(handlers[ent_id].values(), key=lambda h: h.employee_no)
        for h in hs:
            h.other_groups = len(spread[h.user_id] - {ent_id})
        e = ents[ent_id]
        out.append(IntakeGroup(ent_id, e.name, e.uscc, by_ent[ent_id], hs, open_cases.get(ent_id)))
    return out


def count(session: Session, user) -> int:
    """How many loans on the intake list the actor may work (0 for those who do not register cases)."""
    actor = queries.actor_of(session, user)
    if policy.why_not_register(actor) is not None:
        return 0
    return session.exec(select(func.count()).select_from(Loan).join(Branch, Branch.id == Loan.branch_id)
                        .where(_awaiting(), _scope(actor))).one()


def _awaiting_of(session: Session, actor: policy.Actor, enterprise_id: int) -> list[Loan]:
    rows = session.exec(select(Loan, Branch.path).join(Branch, Branch.id == Loan.branch_id)
                        .where(Loan.enterprise_id == enterprise_id, _awaiting())).all()
    for _loan, path in rows:
        refusal = policy.why_not_triage(actor, path)
        if refusal is not None:
            raise policy.refuse(refusal)
    return [loan for loan, _ in rows]


def register(session: Session, user, enterprise_id: int, *, batch_report: bool = False,
             today: date | None = None) -> Case:
    """Register one case for every loan of the enterprise awaiting a case (统一合并考量), in the caller's unit.

    Raises PermissionDenied (policy), NotFound (no loan of the enterprise awaits a case) and whatever
    `cases.open_case` raises (scope, an open case of the enterprise, no stage handlers).
    """
    actor = _actor(session, user)
    if session.get(Enterprise, enterprise_id) is None:
        raise NotFound(f"enterprise {enterprise_id} does not exist")
    loans = _awaiting_of(session, actor, enterprise_id)
    if not loans:
        raise NotFound("no loan of this enterprise awaits a case")
    return cases.open_case(session, user, [lo.id for lo in loans], batch_report=batch_report, today=today)


def dismiss(session: Session, user, enterprise_id: int, reason: str, note: str = "") -> int:
    """Record why no case is opened for the enterprise's loans awaiting a case; returns how many loans.

    Raises PermissionDenied, NotFound, ValidationFailed (unknown reason, a note missing for "other" or too long).
    """
    actor = _actor(session, user)
    if reason not in intake.DISMISSAL_REASONS:
        raise ValidationFailed(f"unknown reason '{reason}' (choose {', '.join(intake.DISMISSAL_REASONS)})",
                               field="reason")
    note = (note or "").strip()
    if reason == "other" and not note:
        raise ValidationFailed("say why no case is opened", field="note")
    if len(note) > intake.NOTE_MAX:
        raise ValidationFailed("the note may be at most 500 characters long", field="note")
    loans = _awaiting_of(session, actor, enterprise_id)
    if not loans:
        raise NotFound("no loan of this enterprise awaits a case")
    for lo in loans:
        session.add(IntakeDismissal(loan_id=lo.id, reason=reason, note=note, dismissed_by_id=actor.id))
    session.flush()
    audit.record(session, event="intake_dismissed", actor=user,
                 payload={"enterprise_id": enterprise_id, "loans": sorted(lo.loan_no for lo in loans),
                          "reason": reason, "note": note})
    return len(loans)


@dataclass
class PickedLoan:
    id: int
    loan_no: str
    enterprise: str
    classification: str
    balance: Decimal
    branch: str
    awaiting: bool  # non-performing and in no case: it can be registered


def search_loans(session: Session, user, q: str, limit: int = 20) -> list[PickedLoan]:
    """The registration form's loan picker: loans in the actor's scope whose number starts with `q` or whose
    enterprise's name contains it, awaiting a case first."""
    actor = _actor(session, user)
    q = (q or "").strip()
    if len(q) < 2:
        return []
    awaiting = _awaiting()
    rows = session.exec(select(Loan.id, Loan.loan_no, Enterprise.name, Loan.classification, Loan.balance, Branch.name,
                               awaiting.label("awaiting"))
                        .join(Branch, Branch.id == Loan.branch_id).join(Enterprise, Enterprise.id == Loan.enterprise_id)
                        .where(_scope(actor), or_(Loan.loan_no.startswith(q), Enterprise.name.contains(q)))
                        .order_by(awaiting.desc(), Loan.loan_no).limit(limit)).all()
    return [PickedLoan(*row[:6], awaiting=bool(row[6])) for row in rows]
