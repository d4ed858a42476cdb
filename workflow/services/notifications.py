"""In-app notifications: listing a user's and marking them read (created by the deadline timer)."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import Session, select

from ..models import Notification, utcnow


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
