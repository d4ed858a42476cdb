"""Notifications: telling people of what concerns them (in the app, and queued for mail and 企业微信 in the same
transaction: the outbox, delivered by `services/outbox.py`), listing a user's, marking them read."""

from __future__ import annotations

import logging
import weakref

from sqlalchemy import String, cast, event, func, insert, literal, update
from sqlmodel import Session, select

from ..models import Branch, Notification, NotificationDelivery, User, utcnow

log = logging.getLogger(__name__)


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


#: What each kind of notification is about, as the title of its mail and of its 企业微信 post (zh, en).
KINDS = {
    "statement_invited": ("您被列为被评议人，请提交免责陈述", "You are a respondent: file your statement"),
    "investigator_assigned": ("您被指派调查尽职免责案件", "You are assigned to investigate a case"),
    "vote_needed": ("待您评议表决", "Your vote is needed"),
    "votes_voided": ("评议表决已作废，需重新表决", "The votes no longer count"),
    "determined": ("尽职免责认定已作出", "The determination is made"),
    "letter_issued": ("认定书已出具，请签收", "A letter is issued: acknowledge it"),
    "letter_served": ("认定书已送达，申诉期开始计算", "Your letter is served: the appeal window runs"),
    "appeal_window": ("申诉期已开始", "The appeal window is open"),
    "deadline_moved": ("申诉期限变更", "Your appeal deadline moved"),
    "appeal_filed": ("收到申诉，待复核", "An appeal is filed"),
    "appeal_decided": ("申诉复核决定已作出", "The appeal is decided"),
    "urge": ("督办", "Urged (督办)"),
    "overdue": ("办理期限已逾期", "A deadline is overdue"),
    "one_year_limit": ("一年办理时限提示", "The one-year limit"),
    "invitation": ("系统账户邀请：请设置密码", "You are invited: set your password"),
}
DEFAULT_TITLE = ("尽职免责系统通知", "A notification")


def title_of(kind: str, locale: str) -> str:
    """The title of a kind of notification in the locale (mail subjects, 企业微信 posts)."""
    zh, en = KINDS.get(kind, DEFAULT_TITLE)
    return en if locale == "en" else zh


def notify(session: Session, user_ids, *, case_id: int | None, kind: str, key: str, zh: str,
           en: str) -> list[Notification]:
    """Notify each user once (in their language) in the caller's unit of work, and queue its delivery on the
    channels the user chose (mail; the 企业微信 group robot of their branch when it has one) in the same
    transaction; returns the notifications created now.

    `key` (with the user id appended) makes the notice idempotent: telling someone twice adds nothing.
    """
    ids = sorted({u for u in user_ids if u is not None})
    if not ids:
        return []
    # One statement for the users, their channels and whether they were told already; one to insert the
    # notifications, one for their deliveries (a verb's statement budget counts them).
    told = Notification.__table__.alias("told")
    own_key = literal(f"{key}:") + cast(User.id, String)
    users = session.exec(select(User.id, User.locale, User.notify_mail, User.notify_webhook, Branch.webhook_url)
                         .join(Branch, Branch.id == User.branch_id)
                         .outerjoin(told, told.c.key == own_key)
                         .where(User.id.in_(ids), told.c.id.is_(None)).order_by(User.id)).all()
    if not users:
        return []
    now = utcnow()
    rows = [{"user_id": user_id, "case_id": case_id, "kind": kind, "key": f"{key}:{user_id}",
             "message": (en if locale == "en" else zh)[:500], "created_at": now}
            for user_id, locale, *_ in users]
    if any(len(r["key"]) > 120 for r in rows):
        raise ValueError(f"notification key too long: {key!r}")
    table = Notification.__table__
    inserted = session.connection().execute(insert(table).returning(table.c.id, table.c.user_id,
                                                                    sort_by_parameter_order=True), rows).all()
    channels = {user_id: ("mail",) * bool(mail) + ("webhook",) * bool(webhook and url)
                for user_id, _, mail, webhook, url in users}
    deliveries = [{"notification_id": note_id, "channel": channel, "status": "pending", "attempts": 0,
                   "next_attempt_at": now, "created_at": now}
                  for note_id, user_id in inserted for channel in channels[user_id]]
    if deliveries:
        session.connection().execute(insert(NotificationDelivery.__table__), deliveries)
        deliveries_queued(session)
    return [Notification(id=note_id, **row) for (note_id, _), row in zip(inserted, rows, strict=True)]


def tell(session: Session, user_ids, *, case_id: int | None, kind: str, key: str, zh: str, en: str) -> int:
    """Notify each user once, with delivery queued (`notify`); returns how many were told."""
    return len(notify(session, user_ids, case_id=case_id, kind=kind, key=key, zh=zh, en=en))


# --- delivery as RQ jobs: the enqueueing side (the job is `outbox.deliver_in_worker`) -------------------------

# engine's pool -> (redis url, queue name): the pool, because units of work write through the engine with
# execution options (db.writer), another Engine object sharing it
_DISPATCH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
JOB_FUNCTION = "workflow.services.outbox.deliver_in_worker"


def dispatch_through_rq(engine, redis_url: str, queue: str) -> None:
    """Deliveries queued on this engine's units of work go to this RQ queue after their commit."""
    _DISPATCH[engine.pool] = (redis_url, queue)


def rq_queue(redis_url: str, name: str):
    from redis import Redis
    from rq import Queue

    return Queue(name, connection=Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5))


def deliveries_queued(session: Session) -> None:
    """Called by `notifications.notify` when it queued deliveries: after this unit of work commits, one
    delivery job is enqueued (once per unit of work, whatever it queued)."""
    target = _DISPATCH.get(session.get_bind().pool)
    if target is None or session.info.get("mianze.outbox_kick"):
        return
    session.info["mianze.outbox_kick"] = True

    def _kick(committed: Session) -> None:
        committed.info.pop("mianze.outbox_kick", None)
        try:
            rq_queue(*target).enqueue(JOB_FUNCTION, job_timeout=600, result_ttl=3600, failure_ttl=7 * 24 * 3600)
        except Exception as exc:  # noqa: BLE001 - after the commit: the polling worker delivers instead
            log.warning("could not enqueue the notification delivery (%s): the polling worker delivers", exc)

    def _forget(rolled_back: Session) -> None:
        rolled_back.info.pop("mianze.outbox_kick", None)

    event.listen(session, "after_commit", _kick, once=True)
    event.listen(session, "after_soft_rollback", _forget, once=True)
