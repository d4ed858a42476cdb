"""In-app notifications: telling people of what concerns them, listing a user's, marking them read."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import Session, select

from ..models import Notification, User, utcnow


def unread_count(session: Session, user_id: int) -> int:
    """How many of the user's notifications are unread."""
    return session.exec(select(func.count()).select_from(Notification)
                        .where(Notification.user_id == user_id, Notification.read_at.is_(None))).one()


def for_user(session: Session, user_id: int, *, limit: int = 50, offset: int = 0) -> list[Notification]:
    """The user's notifications, newest first."""
    return list(session.exec(select(Notification).where(Notification.user_id == user_id)
                             .order_by(Notification.created_at.desc(), Notification.id.desc())
                             .offset(offset).limit(limit)))


def mark_all_read(session: Session, user_id: int) -> int:
    """Mark every unread notification of the user read; returns how many."""
    result = session.connection().execute(
        update(Notification.__table__).where(Notification.__table__.c.user_id == user_id,
                                             Notification.__table__.c.read_at.is_(None))
        .values(read_at=utcnow()))
    return result.rowcount


def tell(session: Session, user_ids, *, case_id: int | None, kind: str, key: str, zh: str, en: str) -> int:
    """Notify each user once (in their language) in the caller's unit of work; returns how many were told.

    `key` (with the user id appended) makes the notice idempotent: telling someone twice adds nothing.
    """
    ids = sorted({u for u in user_ids if u is not None})
    if not ids:
        return 0
    users = session.exec(select(User.id, User.locale).where(User.id.in_(ids))).all()
    known = set(session.exec(select(Notification.key).where(Notification.key.in_([f"{key}:{u}" for u in ids]))))
    told = 0
    for user_id, locale in users:
        if f"{key}:{user_id}" in known:
            continue
        session.add(Notification(user_id=user_id, case_id=case_id, kind=kind, key=f"{key}:{user_id}"[:120],
                                 message=(en if locale == "en" else zh)[:500]))
        told += 1
    session.flush()
    return told
