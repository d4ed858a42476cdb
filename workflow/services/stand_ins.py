"""Stand-ins (代理): a committee member or chair names a member of staff of their branch to act for them for a
period; the policy (`why_not_name_stand_in`, `why_not`, `acting_for`) decides, each step is audited in its
transaction, and the acts a stand-in does record on whose behalf.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, or_, select

from ..domain import policy
from ..domain.errors import ConflictError, NotFound, ValidationFailed
from ..models import Branch, StandIn, User, utcnow
from . import audit, notifications, queries

REASON_MAX = 500


def _overlapping(session: Session, user_id: int, starts_on: date, ends_on: date, column) -> StandIn | None:
    return session.exec(select(StandIn).where(column == user_id, StandIn.revoked_at.is_(None),
                                              StandIn.starts_on <= ends_on, StandIn.ends_on >= starts_on)).first()


def check_stand_in(session: Session, actor: User, stand_in_id: int, starts_on: date, ends_on: date, reason: str, *,
                   today: date | None = None) -> User:
    """Every check of `name_stand_in`, changing nothing (for a confirmation page); the candidate."""
    today = today or date.today()
    me = queries.actor_of(session, actor)
    candidate = session.get(User, stand_in_id)
    if candidate is None:
        raise NotFound(f"user {stand_in_id} does not exist")
    if ends_on < starts_on:
        raise ValidationFailed("the period ends before it starts", field="ends_on")
    if ends_on < today:
        raise ValidationFailed("the period has already ended", field="ends_on")
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("say why you name a stand-in", field="reason")
    if len(text) > REASON_MAX:
        raise ValidationFailed("the reason may be at most 500 characters long", field="reason")
    away = _overlapping(session, candidate.id, starts_on, ends_on, StandIn.principal_id) is not None
    refusal = policy.why_not_name_stand_in(me, policy.StandInCandidate(
        id=candidate.id, roles=candidate.role_set, branch_id=candidate.branch_id, active=candidate.active, away=away))
    if refusal is not None:
        raise policy.refuse(refusal)
    if _overlapping(session, actor.id, starts_on, ends_on, StandIn.principal_id) is not None:
        raise ConflictError("you have already named a stand-in for part of this period: revoke it first")
    if _overlapping(session, actor.id, starts_on, ends_on, StandIn.stand_in_id) is not None:
        raise policy.refuse(policy.PASSED_ON)  # a stand-in in that period: what they hold is not theirs to pass
    return candidate


def name_stand_in(session: Session, actor: User, stand_in_id: int, starts_on: date, ends_on: date, reason: str, *,
                  today: date | None = None) -> StandIn:
    """The actor (a committee member or chair) names a stand-in for the days `starts_on` to `ends_on`.

    Raises PermissionDenied (policy.why_not_name_stand_in: no seat of their own, a stand-in passing it on,
    themselves, someone outside their branch, an auditor, someone away themselves), ValidationFailed (no
    reason, a period that ends before it starts or has ended), NotFound, ConflictError (a stand-in already
    named for part of the period).
    """
    candidate = check_stand_in(session, actor, stand_in_id, starts_on, ends_on, reason, today=today)
    text = reason.strip()
    row = StandIn(principal_id=actor.id, stand_in_id=candidate.id, starts_on=starts_on, ends_on=ends_on,
                  reason=text, created_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.record(session, event="name_stand_in", actor=actor,
                 payload={"stand_in_id": row.id, "principal": actor.username, "stand_in": candidate.username,
                          "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat(), "reason": text})
    notifications.tell(session, [candidate.id], case_id=None, kind="stand_in", key=f"stand-in:{row.id}",
                       zh=f"{actor.name} 指定您在 {starts_on.isoformat()} 至 {ends_on.isoformat()} 期间代其履行评议委员会职责：{text}",
                       en=f"{actor.name} named you their stand-in on the committee from {starts_on.isoformat()} "
                          f"to {ends_on.isoformat()}: {text}")
    return row


def revoke_stand_in(session: Session, actor: User, stand_in_id: int) -> StandIn:
    """End a stand-in now (the principal, or an administrator of their branch). Raises NotFound,
    PermissionDenied, ConflictError (already revoked)."""
    row = session.get(StandIn, stand_in_id)
    if row is None:
        raise NotFound(f"stand-in {stand_in_id} does not exist")
    principal = session.get(User, row.principal_id)
    refusal = policy.why_not_revoke_stand_in(queries.actor_of(session, actor), principal_id=principal.id,
                                             principal_branch_path=session.get(Branch, principal.branch_id).path)
    if refusal is not None:
        raise policy.refuse(refusal)
    if row.revoked_at is not None:
        raise ConflictError("this stand-in has already been revoked")
    row.revoked_at, row.revoked_by_id = utcnow(), actor.id
    session.add(row)
    session.flush()
    stand_in = session.get(User, row.stand_in_id)
    audit.record(session, event="revoke_stand_in", actor=actor,
                 payload={"stand_in_id": row.id, "principal": principal.username, "stand_in": stand_in.username,
                          "starts_on": row.starts_on.isoformat(), "ends_on": row.ends_on.isoformat()})
    notifications.tell(session, [stand_in.id], case_id=None, kind="stand_in", key=f"stand-in-revoked:{row.id}",
                       zh=f"{principal.name} 指定您代为履职的授权已撤销。",
                       en=f"Your stand-in for {principal.name} has been revoked.")
    return row


def stand_ins_of(session: Session, user_id: int) -> list[StandIn]:
    """The stand-ins a user named and those named for them, newest first."""
    return list(session.exec(select(StandIn).where(or_(StandIn.principal_id == user_id,
                                                       StandIn.stand_in_id == user_id))
                             .order_by(StandIn.id.desc())))


def candidates(session: Session, actor: User) -> list[User]:
    """The staff the actor may name: active, of their branch, not themselves nor an internal auditor."""
    staff = session.exec(select(User).where(User.branch_id == actor.branch_id, User.active.is_(True),
                                            User.id != actor.id).order_by(User.name))
    return [u for u in staff if not policy.has_role(u.role_set, *policy.BANK_WIDE_ROLES)]
