"""Accounts and organisation administration: passwords (argon2id), users and roles, branches, calendar.

Every change is audited in the caller's transaction. Password hashes never enter an audit payload. Who may
grant which roles where is the policy's (`policy.why_not_grant`); these verbs enforce it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date
from urllib.parse import parse_qsl, urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select
from zxcvbn import zxcvbn

from ..domain import policy
from ..domain.errors import NotFound, PermissionDenied, ValidationFailed
from ..domain.policy import has_role, in_subtree
from ..models import ROLES, Branch, CalendarOverride, User
from . import audit

LOCALES = ("zh", "en")
MIN_PASSWORD_LENGTH = 10
TOO_SHORT = f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
TOO_GUESSABLE = ("the password is too easy to guess: avoid common passwords, words, names, dates, "
                 "keyboard patterns and repeated characters")
# zxcvbn's score (0-4) a password needs: 3 is "safely unguessable" against an attacker who can try about
# 10^8 guesses of a stolen hash (zxcvbn's own reading of its scale).
MIN_PASSWORD_SCORE = 3
# zxcvbn refuses longer input (its matching grows with the length); the rest of a longer password only
# adds to the strength of its first characters.
_ESTIMATED_CHARACTERS = 72

_DEFAULT_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# A hash that takes as long to check as a real one, so an unknown username is not revealed by timing.
_DUMMY_HASH = _DEFAULT_HASHER.hash("not a real password")


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """An argon2id hash of `password`."""
    return (hasher or _DEFAULT_HASHER).hash(password)


def check_password_strength(password: str, user_inputs: Collection[str] = ()) -> None:
    """Raise ValidationFailed for a password too short or too easy to guess, as zxcvbn estimates it (common
    passwords, words, names, dates, keyboard patterns, and the person's own `user_inputs`: username, name,
    employee number)."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(TOO_SHORT, field="password")
    inputs = ["mianze", *(part for value in user_inputs if value for part in (value, *str(value).split()))]
    estimate = zxcvbn(password[:_ESTIMATED_CHARACTERS], user_inputs=inputs)
    if estimate["score"] < MIN_PASSWORD_SCORE:
        raise ValidationFailed(TOO_GUESSABLE, field="password", score=estimate["score"],
                               warning=estimate["feedback"]["warning"])


def authenticate(session: Session, username: str, password: str,
                 hasher: PasswordHasher | None = None) -> User | None:
    """The active user with these credentials, or None. Rehashes an outdated hash (the caller commits)."""
    hasher = hasher or _DEFAULT_HASHER
    user = session.exec(select(User).where(User.username == (username or "").strip())).first()
    if user is None or not user.active or not user.password_hash:
        try:
            hasher.verify(_DUMMY_HASH, password or "")
        except (VerificationError, InvalidHashError):
            pass
        return None
    try:
        hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
        session.add(user)
        session.flush()
    return user


def _policy_actor(session: Session, user: User) -> policy.Actor:
    home = session.get(Branch, user.branch_id)
    return policy.Actor(id=user.id, roles=user.role_set, branch_id=home.id, branch_path=home.path,
                        branch_level=home.level)


def _require_admin(actor: User) -> None:
    if not has_role(actor.role_set, "admin"):
        raise PermissionDenied("this action needs the administrator role")


def _branch(session: Session, branch_id: int) -> Branch:
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise ValidationFailed(f"branch {branch_id} does not exist", field="branch_id")
    return branch


def _require_in_admin_scope(session: Session, actor: User, branch: Branch) -> None:
    home = session.get(Branch, actor.branch_id)
    if not in_subtree(branch.path, home.path):
        raise PermissionDenied("administrators manage only the branches and staff of their own subtree")


def _clean_roles(roles) -> str:
    wanted = roles.split() if isinstance(roles, str) else list(roles)
    unknown = [r for r in wanted if r not in ROLES]
    if unknown:
        raise ValidationFailed(f"unknown role(s): {', '.join(unknown)}", field="roles")
    return " ".join(r for r in ROLES if r in wanted)


def create_user(session: Session, actor: User, *, username: str, name: str, employee_no: str, branch_id: int,
                roles, password: str | None = None, locale: str = "zh", email: str | None = None,
                typed_allowed: bool = False, hasher: PasswordHasher | None = None) -> User:
    """Create a member of staff with roles, without a password (they are invited to set one:
    services/invitations.py) or, where the bank's policy allows typed passwords (`typed_allowed`), with the
    initial password the administrator typed.

    Raises PermissionDenied (not an administrator of that branch, roles the actor may not grant: see
    `policy.why_not_grant`, a typed password the policy does not allow: `policy.why_not_type_password`) and
    ValidationFailed (taken username or employee number, unknown role or branch, weak password, a mail
    address that is not one).
    """
    _require_admin(actor)
    username, name, employee_no = (username or "").strip(), (name or "").strip(), (employee_no or "").strip()
    if not username or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise ValidationFailed("the username may contain letters, digits, '.', '-' and '_' only", field="username")
    if not name:
        raise ValidationFailed("the name is required", field="name")
    if not employee_no:
        raise ValidationFailed("the employee number is required", field="employee_no")
    if session.exec(select(User).where(User.username == username)).first():
        raise ValidationFailed(f"the username {username} is taken", field="username")
    if session.exec(select(User).where(User.employee_no == employee_no)).first():
        raise ValidationFailed(f"the employee number {employee_no} is taken", field="employee_no")
    branch = _branch(session, branch_id)
    _require_in_admin_scope(session, actor, branch)
    if locale not in LOCALES:
        raise ValidationFailed("unknown language", field="locale")
    email = (email or "").strip() or None
    if email is not None and (len(email) > 254 or not _EMAIL.match(email)):
        raise ValidationFailed("this is not a mail address", field="email")
    clean_roles = _clean_roles(roles)
    me = _policy_actor(session, actor)
    policy.require_grant(me, clean_roles.split(), branch_path=branch.path)
    if password:
        refusal = policy.why_not_type_password(me, branch_path=branch.path, bank_allows=typed_allowed)
        if refusal is not None:
            raise policy.refuse(refusal)
        check_password_strength(password, (username, name, employee_no))
    user = User(username=username, name=name, employee_no=employee_no, branch_id=branch.id, roles=clean_roles,
                password_hash=hash_password(password, hasher) if password else "", locale=locale, email=email)
    session.add(user)
    session.flush()
    audit.record(session, event="create_user", actor=actor,
                 payload={"user_id": user.id, "username": username, "branch": branch.code, "roles": clean_roles,
                          "password": "typed" if password else "invitation"})
    return user


def update_user(session: Session, actor: User, user_id: int, *, name: str, branch_id: int, roles,
                active: bool) -> User:
    """Change a user's name, home branch, roles or active flag (administrators cannot lock themselves out).

    Raises PermissionDenied (outside the actor's subtree, or roles the actor may not grant or remove: see
    `policy.why_not_grant`) and ValidationFailed.
    """
    _require_admin(actor)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    _require_in_admin_scope(session, actor, session.get(Branch, user.branch_id))
    branch = _branch(session, branch_id)
    _require_in_admin_scope(session, actor, branch)
    clean_roles = _clean_roles(roles)
    if user.id == actor.id and (not active or "admin" not in clean_roles.split()):
        raise ValidationFailed("you cannot remove your own administrator role or deactivate yourself",
                               field="roles")
    policy.require_grant(_policy_actor(session, actor), clean_roles.split(), branch_path=branch.path,
                         before=user.role_set)
    if not (name or "").strip():
        raise ValidationFailed("the name is required", field="name")
    before = {"name": user.name, "branch_id": user.branch_id, "roles": user.roles, "active": user.active}
    user.name, user.branch_id, user.roles, user.active = name.strip(), branch.id, clean_roles, bool(active)
    session.add(user)
    session.flush()
    audit.record(session, event="update_user", actor=actor,
                 payload={"user_id": user.id, "username": user.username, "before": before,
                          "after": {"name": user.name, "branch_id": user.branch_id, "roles": user.roles,
                                    "active": user.active}})
    return user


def set_password(session: Session, actor: User, user_id: int, password: str, *, current_password: str | None = None,
                 typed_allowed: bool = False, hasher: PasswordHasher | None = None) -> User:
    """Set a user's password: anyone for themselves (with their current password); administrators for staff
    of their subtree only where the bank's policy allows typed passwords (`typed_allowed`; otherwise they
    send an invitation). Every session of the user ends (`end_sessions`): a caller who changed their own
    password keeps theirs by storing the user's new `session_epoch`.

    Raises ValidationFailed (wrong current password, weak password), PermissionDenied and NotFound.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    if actor.id == user.id:
        try:
            (hasher or _DEFAULT_HASHER).verify(user.password_hash, current_password or "")
        except (VerificationError, InvalidHashError) as exc:
            raise ValidationFailed("the current password is wrong", field="current_password") from exc
    else:
        _require_admin(actor)
        home = session.get(Branch, user.branch_id)
        _require_in_admin_scope(session, actor, home)
        refusal = policy.why_not_type_password(_policy_actor(session, actor), branch_path=home.path,
                                               bank_allows=typed_allowed)
        if refusal is not None:
            raise policy.refuse(refusal)
    check_password_strength(password, (user.username, user.name, user.employee_no))
    user.password_hash = hash_password(password, hasher)
    user.session_epoch += 1
    session.add(user)
    session.flush()
    audit.record(session, event="set_password", actor=actor, payload={"user_id": user.id,
                                                                       "username": user.username})
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of the user, in every browser (on sign-out): a session is valid only while it
    carries the user's current session epoch, which this advances."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    user.session_epoch += 1
    session.add(user)
    session.flush()


def set_locale(session: Session, actor: User, locale: str) -> User:
    """A user chooses their interface language."""
    if locale not in LOCALES:
        raise ValidationFailed("unknown language", field="locale")
    user = session.get(User, actor.id)
    if user.locale != locale:
        user.locale = locale
        session.add(user)
        session.flush()
        audit.record(session, event="set_locale", actor=actor, payload={"user_id": user.id, "locale": locale})
    return user


def create_branch(session: Session, actor: User, *, code: str, name: str, name_en: str,
                  parent_id: int) -> Branch:
    """Add a branch under an existing one (one level below it; outlets have no children)."""
    _require_admin(actor)
    code, name = (code or "").strip().upper(), (name or "").strip()
    if not code or not code.replace("_", "").replace("-", "").isalnum() or len(code) > 32:
        raise ValidationFailed("the code may contain letters, digits, '-' and '_' only (at most 32)", field="code")
    if not name:
        raise ValidationFailed("the name is required", field="name")
    if session.exec(select(Branch).where(Branch.code == code)).first():
        raise ValidationFailed(f"the branch code {code} is taken", field="code")
    parent = _branch(session, parent_id)
    _require_in_admin_scope(session, actor, parent)
    if parent.level >= 3:
        raise ValidationFailed("an outlet cannot have branches below it", field="parent_id")
    branch = Branch(code=code, name=name, name_en=(name_en or "").strip(), level=parent.level + 1,
                    parent_id=parent.id)
    session.add(branch)
    session.flush()
    branch.path = f"{parent.path}{branch.id}/"
    session.add(branch)
    session.flush()
    audit.record(session, event="create_branch", actor=actor,
                 payload={"branch_id": branch.id, "code": code, "name": name, "parent": parent.code})
    return branch


def update_branch(session: Session, actor: User, branch_id: int, *, name: str, name_en: str,
                  active: bool) -> Branch:
    """Rename a branch or mark it inactive (its history stays)."""
    _require_admin(actor)
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotFound(f"branch {branch_id} does not exist")
    _require_in_admin_scope(session, actor, branch)
    if not (name or "").strip():
        raise ValidationFailed("the name is required", field="name")
    if branch.id == actor.branch_id and not active:
        raise ValidationFailed("you cannot deactivate your own branch", field="active")
    before = {"name": branch.name, "name_en": branch.name_en, "active": branch.active}
    branch.name, branch.name_en, branch.active = name.strip(), (name_en or "").strip(), bool(active)
    session.add(branch)
    session.flush()
    audit.record(session, event="update_branch", actor=actor,
                 payload={"branch_id": branch.id, "code": branch.code, "before": before,
                          "after": {"name": branch.name, "name_en": branch.name_en, "active": branch.active}})
    return branch


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def set_notification_channels(session: Session, actor: User, *, email: str, mail: bool, webhook: bool) -> User:
    """A user sets their mail address and chooses the channels of their notifications besides the app (which
    always shows them): mail, and the 企业微信 group robot of their branch. Audited. Raises ValidationFailed
    (an address that is not one)."""
    email = (email or "").strip() or None
    if email is not None and (len(email) > 254 or not _EMAIL.match(email)):
        raise ValidationFailed("this is not a mail address", field="email")
    user = session.get(User, actor.id)
    before = {"email": user.email, "mail": user.notify_mail, "webhook": user.notify_webhook}
    after = {"email": email, "mail": bool(mail), "webhook": bool(webhook)}
    if before != after:
        user.email, user.notify_mail, user.notify_webhook = email, bool(mail), bool(webhook)
        session.add(user)
        session.flush()
        audit.record(session, event="set_notification_channels", actor=actor,
                     payload={"user_id": user.id, "before": before, "after": after})
    return user


def masked_webhook(url: str | None) -> str | None:
    """A robot's address as administrators see it once set: its key (a secret) hidden but for four characters."""
    if not url:
        return None
    parts = urlsplit(url)
    query = "&".join(f"{k}={v[:4]}…" if k == "key" else f"{k}={v}" for k, v in parse_qsl(parts.query))
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


def set_branch_webhook(session: Session, actor: User, branch_id: int, url: str) -> Branch:
    """An administrator sets (or, with an empty address, removes) the 企业微信 group robot of a branch in their
    subtree. Audited without the robot's key. Raises PermissionDenied, NotFound, ValidationFailed."""
    _require_admin(actor)
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotFound(f"branch {branch_id} does not exist")
    _require_in_admin_scope(session, actor, branch)
    url = (url or "").strip() or None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > 500:
            raise ValidationFailed("the robot's address must be an http(s) URL, e.g. "
                                   "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…", field="webhook_url")
    if url != branch.webhook_url:
        before = masked_webhook(branch.webhook_url)
        branch.webhook_url = url
        session.add(branch)
        session.flush()
        audit.record(session, event="set_branch_webhook", actor=actor,
                     payload={"branch_id": branch.id, "code": branch.code, "before": before,
                              "after": masked_webhook(url)})
    return branch


def _require_head_office_admin(session: Session, actor: User) -> None:
    _require_admin(actor)
    if session.get(Branch, actor.branch_id).level != 0:
        raise PermissionDenied("only head-office administrators change bank-wide settings")


def set_calendar_override(session: Session, actor: User, day: date, working: bool, note: str) -> CalendarOverride:
    """Mark one date as a working day or a holiday, overriding the packaged calendar (bank-wide)."""
    _require_head_office_admin(session, actor)
    if not (note or "").strip():
        raise ValidationFailed("a note saying why is required", field="note")
    row = session.get(CalendarOverride, day)
    if row is None:
        row = CalendarOverride(day=day, working=working, note=note.strip()[:200], created_by_id=actor.id)
    else:
        row.working, row.note, row.created_by_id = working, note.strip()[:200], actor.id
    session.add(row)
    session.flush()
    audit.record(session, event="set_calendar_override", actor=actor,
                 payload={"day": day.isoformat(), "working": working, "note": row.note})
    return row


def remove_calendar_override(session: Session, actor: User, day: date) -> None:
    """Drop an override: the packaged calendar applies to that date again."""
    _require_head_office_admin(session, actor)
    row = session.get(CalendarOverride, day)
    if row is None:
        raise NotFound(f"there is no override for {day.isoformat()}")
    session.delete(row)
    session.flush()
    audit.record(session, event="remove_calendar_override", actor=actor, payload={"day": day.isoformat()})


def replace_year_overrides(session: Session, actor: User, year: int, overrides: dict[date, tuple[bool, str]]) -> int:
    """Replace every override of `year` with these (date → (working, note)), audited per date as single
    overrides are; the year's schedule (services/holidays.py) calls it. Returns how many were written."""
    _require_head_office_admin(session, actor)
    for row in session.exec(select(CalendarOverride).where(CalendarOverride.day >= date(year, 1, 1),
                                                           CalendarOverride.day <= date(year, 12, 31))).all():
        if row.day not in overrides:
            session.delete(row)
    session.flush()
    for day, (working, note) in sorted(overrides.items()):
        row = session.get(CalendarOverride, day) or CalendarOverride(day=day, working=working)
        row.working, row.note, row.created_by_id = working, note[:200], actor.id
        session.add(row)
    session.flush()
    return len(overrides)


def require_head_office_admin(session: Session, actor: User) -> None:
    """Raise PermissionDenied unless the actor administers the whole bank (rule sets, calendar)."""
    _require_head_office_admin(session, actor)
