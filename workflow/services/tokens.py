"""Per-user API tokens: created and revoked by administrators, stored only as their SHA-256, audited.

The plain token is shown once, when it is created; the database keeps its hash and a short prefix that
lets people tell their tokens apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session, select

from ..domain.errors import NotFound, PermissionDenied, ValidationFailed
from ..domain.policy import has_role
from ..models import ApiToken, User, utcnow
from . import audit

TOKEN_PREFIX = "mz_"
# last_used_at is a hint for administrators, not an access log: refresh it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def hash_token(plain: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def _require_admin(actor) -> None:
    # actor None is the operator at the command line (`flask tokens create`), who runs as the system.
    if actor is not None and not has_role(actor.role_set, "admin"):
        raise PermissionDenied("only administrators create or revoke API tokens")


def create(session: Session, actor, user_id: int, name: str) -> tuple[ApiToken, str]:
    """Create a token for a user; returns the row and the plain token (shown once, never stored).

    Raises PermissionDenied (actor not an administrator), NotFound (unknown user) and ValidationFailed
    (no name, or an inactive user).
    """
    _require_admin(actor)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("a token needs a name of 1 to 100 characters", field="name")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    if not user.active:
        raise ValidationFailed(f"user {user.username} is inactive", field="user")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=plain[:12], token_hash=hash_token(plain),
                     created_by_id=getattr(actor, "id", None))
    session.add(token)
    session.flush()
    audit.record(session, event="create_api_token", actor=actor,
                 payload={"token_id": token.id, "user": user.username, "name": name, "prefix": token.prefix})
    return token, plain


def revoke(session: Session, actor, token_id: int) -> ApiToken:
    """Revoke a token (idempotent: revoking a revoked token changes nothing). Raises NotFound."""
    _require_admin(actor)
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"API token {token_id} does not exist")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        session.flush()
        user = session.get(User, token.user_id)
        audit.record(session, event="revoke_api_token", actor=actor,
                     payload={"token_id": token.id, "user": user.username if user else None, "name": token.name,
                              "prefix": token.prefix})
    return token


def tokens_of(session: Session, user_id: int | None = None) -> list[ApiToken]:
    """Tokens (of one user, or all), newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.exec(query))


def authenticate(session: Session, plain: str) -> tuple[User, ApiToken] | None:
    """The active user and live token behind a plain token, or None (unknown, revoked, inactive user)."""
    if not plain or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(plain))).first()
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    return user, token


def needs_touch(token: ApiToken) -> bool:
    """Whether the token's last_used_at is older than the resolution we keep."""
    last = token.last_used_at
    if last is None:
        return True
    if last.tzinfo is None:  # SQLite hands back naive UTC
        last = last.replace(tzinfo=utcnow().tzinfo)
    return utcnow() - last >= LAST_USED_RESOLUTION


def touch(session: Session, token_id: int) -> None:
    """Record that a token was used now (not audited: it is a hint, not a decision)."""
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = utcnow()
        session.add(token)
        session.flush()
