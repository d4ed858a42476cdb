"""Invitations: a new member of staff sets their own first password from a one-time link.

Creating a user (one, or the new staff of an HR import) invites them: an `Invitation` that expires after
`INVITATION_HOURS` (72 by default), is used once, and is revoked by a newer one or by an administrator. Its
notice goes through the notification outbox (a mail delivery, whatever channels the person chose: the link
never goes to a 企业微信 group, which is wider than the person), and the administrator is shown the link once
to hand it over another way.

The link's token is never stored. The database holds its SHA-256 (how the link is looked up when it is
opened) and a random salt; the token is the HMAC-SHA256 of the salt under the server's secret key, so the
outbox worker can write the link into the mail after the commit, while a copy of the database alone makes no
working link. Changing SECRET_KEY makes every open link unusable (send new invitations).

Every verb writes its audit event in the caller's transaction: invite_user (one user), invite_users (an HR
import's new staff, one event), resend_invitation, revoke_invitation, accept_invitation (by the invitee).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy import update
from sqlmodel import Session, select

from ..domain import policy
from ..domain.errors import DomainError, NotFound, ValidationFailed
from ..models import Branch, Invitation, Notification, NotificationDelivery, User, utcnow
from . import audit, notifications
from .accounts import _policy_actor, check_password_strength, hash_password

DEFAULT_HOURS = 72.0


@dataclass(frozen=True)
class InvitationSettings:
    """The server's secret key (the tokens' HMAC key), the address links point at, how long a link works."""

    secret_key: str = field(repr=False)
    base_url: str = "http://127.0.0.1:5000"
    hours: float = DEFAULT_HOURS

    @classmethod
    def from_config(cls, config) -> InvitationSettings:
        return cls(secret_key=str(config["SECRET_KEY"]),
                   base_url=(config.get("BASE_URL") or cls.base_url).rstrip("/"),
                   hours=float(config.get("INVITATION_HOURS") or DEFAULT_HOURS))


class InvitationUnusable(DomainError):
    """A link that cannot be used: unknown, used, expired or revoked (`details["status"]`)."""

    code = "invitation_unusable"
    http_status = 410

    def __init__(self, status: str):
        super().__init__(f"the invitation is {status}", status=status)


def token_of(secret_key: str, salt: str) -> str:
    """The link's token: HMAC-SHA256 of the salt under the secret key, URL-safe base64 (43 characters)."""
    digest = hmac.new(secret_key.encode(), f"mianze-invitation:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_of(token: str) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/invite/{token}"


@dataclass(frozen=True)
class Issued:
    """An invitation just made, with its link (shown once to the administrator)."""

    invitation_id: int
    user_id: int
    username: str
    name: str
    expires_at: datetime
    link: str


def _notice(user: User, expires: datetime) -> str:
    day = (expires + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")  # China Standard Time
    if user.locale == "en":
        return (f"An account has been opened for you (username {user.username}). Set your password from the "
                f"invitation link by {day} (China Standard Time); the link works once.")
    return f"已为您开立系统账户（用户名：{user.username}）。请于北京时间 {day} 前通过邀请链接设置密码；该链接只能使用一次。"


def _require_inviter(session: Session, actor: User, user: User) -> None:
    branch = session.get(Branch, user.branch_id)
    refusal = policy.why_not_invite(_policy_actor(session, actor), branch_path=branch.path)
    if refusal is not None:
        raise policy.refuse(refusal)


def _revoke_open(session: Session, actor: User, user_ids: list[int], now: datetime) -> list[int]:
    """Revoke the open invitations of these users (a newer one replaces them); their ids."""
    ids = list(session.exec(select(Invitation.id).where(Invitation.user_id.in_(user_ids),
                                                        Invitation.used_at.is_(None),
                                                        Invitation.revoked_at.is_(None))))
    if ids:
        session.connection().execute(update(Invitation.__table__).where(Invitation.__table__.c.id.in_(ids))
                                     .values(revoked_at=now, revoked_by_id=actor.id))
    return ids


def _issue(session: Session, actor: User, users: list[User], settings: InvitationSettings,
           now: datetime) -> list[Issued]:
    """One invitation per user, each with its notice and the notice's mail delivery queued (the outbox)."""
    expires = now + timedelta(hours=settings.hours)
    pairs = []
    for user in users:
        salt = secrets.token_hex(16)
        token = token_of(settings.secret_key, salt)
        invitation = Invitation(user_id=user.id, token_hash=hash_of(token), salt=salt, created_by_id=actor.id,
                                created_at=now, expires_at=expires)
        note = Notification(user_id=user.id, case_id=None, kind="invitation", key=f"invitation:{salt}",
                            message=_notice(user, expires)[:500], created_at=now)
        pairs.append((user, token, invitation, note))
    session.add_all([p[2] for p in pairs] + [p[3] for p in pairs])
    session.flush()
    deliveries = []
    for _user, _token, invitation, note in pairs:
        invitation.notification_id = note.id
        deliveries.append(NotificationDelivery(notification_id=note.id, channel="mail", status="pending",
                                               next_attempt_at=now, created_at=now))
    session.add_all(deliveries)
    session.flush()
    notifications.deliveries_queued(session)  # with Redis: a delivery job once this unit of work commits
    return [Issued(invitation.id, user.id, user.username, user.name, expires, link(settings.base_url, token))
            for user, token, invitation, _note in pairs]


def invite(session: Session, actor: User, user_id: int, settings: InvitationSettings, *,
           event: str = "invite_user") -> Issued:
    """Invite a member of staff to set their password (an open invitation of theirs is revoked: one link works
    at a time). Raises PermissionDenied (not an administrator of their branch), NotFound, ValidationFailed
    (an inactive user)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    _require_inviter(session, actor, user)
    if not user.active:
        raise ValidationFailed("an inactive user cannot be invited: make them active first", field="active")
    now = utcnow()
    replaced = _revoke_open(session, actor, [user.id], now)
    issued = _issue(session, actor, [user], settings, now)[0]
    audit.record(session, event=event, actor=actor,
                 payload={"user_id": user.id, "username": user.username, "invitation_id": issued.invitation_id,
                          "expires_at": issued.expires_at.isoformat(), "replaced": replaced})
    return issued


def resend(session: Session, actor: User, user_id: int, settings: InvitationSettings) -> Issued:
    """Send a member of staff a new invitation (the link of the earlier one stops working): the token is not
    stored, so a link is never sent twice. Audited as resend_invitation."""
    return invite(session, actor, user_id, settings, event="resend_invitation")


def invite_many(session: Session, actor: User, user_ids: list[int], settings: InvitationSettings) -> list[Issued]:
    """Invite the new staff of an HR import, in the import's transaction; one audit event (invite_users)
    naming each invitation. Raises PermissionDenied for anyone outside the administrator's subtree."""
    if not user_ids:
        return []
    users = []
    for i in range(0, len(user_ids), 2000):
        users += list(session.exec(select(User).where(User.id.in_(user_ids[i:i + 2000]))))
    me = _policy_actor(session, actor)
    paths = {b.id: b.path for b in session.exec(select(Branch).where(Branch.id.in_({u.branch_id for u in users})))}
    for user in users:
        refusal = policy.why_not_invite(me, branch_path=paths[user.branch_id])
        if refusal is not None:
            raise policy.refuse(refusal)
    users = [u for u in sorted(users, key=lambda u: u.id) if u.active]
    now = utcnow()
    issued = _issue(session, actor, users, settings, now)
    if issued:
        audit.record(session, event="invite_users", actor=actor, payload={
            "count": len(issued), "expires_at": issued[0].expires_at.isoformat(),
            "invitations": [{"invitation_id": i.invitation_id, "user_id": i.user_id, "username": i.username}
                            for i in issued]})
    return issued


def latest(session: Session, user_id: int) -> Invitation | None:
    """The user's most recent invitation, if any."""
    return session.exec(select(Invitation).where(Invitation.user_id == user_id)
                        .order_by(Invitation.id.desc())).first()


def revoke(session: Session, actor: User, user_id: int) -> Invitation:
    """An administrator revokes the user's open invitation (its link stops working). Raises PermissionDenied,
    NotFound, ValidationFailed (no open invitation)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    _require_inviter(session, actor, user)
    invitation = latest(session, user.id)
    now = utcnow()
    if invitation is None or invitation.status(now) != "open":
        raise ValidationFailed("there is no open invitation to revoke", field="invitation")
    invitation.revoked_at, invitation.revoked_by_id = now, actor.id
    session.add(invitation)
    session.flush()
    audit.record(session, event="revoke_invitation", actor=actor,
                 payload={"user_id": user.id, "username": user.username, "invitation_id": invitation.id})
    return invitation


@dataclass(frozen=True)
class Opened:
    """What a link leads to: its status (open, used, expired, revoked, unknown) and, when known, whose it is."""

    status: str
    invitation: Invitation | None
    user: User | None


def look_up(session: Session, token: str, now: datetime | None = None) -> Opened:
    """The invitation a link's token names (by its hash) and its status; an inactive user's is revoked."""
    now = now or utcnow()
    invitation = session.exec(select(Invitation).where(Invitation.token_hash == hash_of(token))).first()
    if invitation is None:
        return Opened("unknown", None, None)
    user = session.get(User, invitation.user_id)
    status = invitation.status(now)
    if status == "open" and not user.active:
        status = "revoked"
    return Opened(status, invitation, user)


def accept(session: Session, token: str, password: str, hasher: PasswordHasher | None = None) -> User:
    """The invitee sets their password from the link: checked by the password rules, the link used up (once:
    of two at the same time only one succeeds), every earlier session of theirs ended; audited as
    accept_invitation by the invitee. Raises InvitationUnusable and ValidationFailed (a weak password)."""
    now = utcnow()
    opened = look_up(session, token, now)
    if opened.status != "open":
        raise InvitationUnusable(opened.status)
    user, invitation = opened.user, opened.invitation
    check_password_strength(password, (user.username, user.name, user.employee_no))
    table = Invitation.__table__
    used = session.connection().execute(update(table).where(
        table.c.id == invitation.id, table.c.used_at.is_(None), table.c.revoked_at.is_(None),
        table.c.expires_at > now).values(used_at=now))
    if used.rowcount != 1:
        raise InvitationUnusable("used")
    session.expire(invitation)
    user.password_hash = hash_password(password, hasher)
    user.session_epoch += 1
    session.add(user)
    session.flush()
    audit.record(session, event="accept_invitation", actor=user,
                 payload={"user_id": user.id, "username": user.username, "invitation_id": invitation.id})
    return user

