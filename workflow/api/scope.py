"""Who may see what through the API: the policy's one scope rule (`policy.sees_everything`, `can_view`).

Auditors and head-office staff see everything. Everyone else (branch administrators included) sees their
home branch's subtree (a branch whose materialised path starts with their home branch's path), plus the
cases they are a respondent in or investigate. Things outside the scope answer 404, as if they did not exist.
"""

from __future__ import annotations

from sqlalchemy import or_
from sqlmodel import Session, select

from ..domain import policy
from ..domain.errors import NotFound
from ..models import Branch, Case, Enterprise, Loan, Respondent, User
from ..services import queries


def sees_all(session: Session, user: User) -> bool:
    return policy.sees_everything(queries.actor_of(session, user))


def home_path(session: Session, user: User) -> str:
    return queries.actor_of(session, user).branch_path


def _subtree_ids(session: Session, user: User):
    return select(Branch.id).where(Branch.path.startswith(home_path(session, user)))


def case_filter(session: Session, user: User):
    """A WHERE clause for the cases the user may see (None: all)."""
    if sees_all(session, user):
        return None
    mine = select(Respondent.case_id).where(Respondent.user_id == user.id)
    return or_(Case.branch_id.in_(_subtree_ids(session, user)), Case.id.in_(mine), Case.investigator_id == user.id)


def loan_filter(session: Session, user: User):
    if sees_all(session, user):
        return None
    return Loan.branch_id.in_(_subtree_ids(session, user))


def enterprise_filter(session: Session, user: User):
    if sees_all(session, user):
        return None
    return Enterprise.id.in_(select(Loan.enterprise_id).where(loan_filter(session, user)))


def _visible(session: Session, model, row_id: int, where, noun: str):
    """The row if it is within the user's scope (`where`, None for everything); NotFound otherwise."""
    query = select(model).where(model.id == row_id)
    if where is not None:
        query = query.where(where)
    row = session.exec(query).first()
    if row is None:
        raise NotFound(f"{noun} {row_id} does not exist")
    return row


def visible_case(session: Session, user: User, case_id: int) -> Case:
    """The case if the user may see it; NotFound otherwise."""
    return _visible(session, Case, case_id, case_filter(session, user), "case")


def visible_loan(session: Session, user: User, loan_id: int) -> Loan:
    """The loan if it is in the user's branch scope; NotFound otherwise."""
    return _visible(session, Loan, loan_id, loan_filter(session, user), "loan")


def visible_enterprise(session: Session, user: User, enterprise_id: int) -> Enterprise:
    """The enterprise if one of its loans is in the user's branch scope; NotFound otherwise."""
    return _visible(session, Enterprise, enterprise_id, enterprise_filter(session, user), "enterprise")
