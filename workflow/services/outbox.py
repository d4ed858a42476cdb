"""The notification outbox's worker: delivers queued notifications by mail and to 企业微信 group robots.

`notifications.notify` writes a notification and one `NotificationDelivery` per channel the user chose in the
transaction of the event; nothing leaves the process before that transaction commits. `deliver(engine, settings)`
then takes the due deliveries one at a time, each step in a short transaction of its own:

1. **claim**: `pending → sending` (attempts + 1, a random claim token, the time), committed. The UPDATE is
   conditional on the row still being pending, so of two workers at once exactly one claims a row;
2. **send**: one SMTP transaction (Flask-Mailman's SMTP backend, over a connection opened *before* the claim)
   or one POST to the branch's robot (requests, with a timeout);
3. **mark**: `sending → sent` (or back to pending with a back-off, or failed), committed, under the claim.

A worker killed between 1 and 3 leaves the row `sending`. Whether the message arrived is then unknown (the
SMTP server may have queued it and the answer was lost), so the row is never sent again by itself: once its
claim is older than `lease` the next run marks it failed ("interrupted"), and an administrator who checked may
send it again from the failed deliveries' page. Nothing is sent twice by the machine; the window in which a
crash loses certainty is one SMTP transaction or one POST. Every mail of one delivery carries the same
Message-ID, so a manual resend of a mail that did arrive is recognisable as the same message.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from urllib.parse import urlsplit

import requests
from flask_mailman import EmailMessage, Mail
from flask_mailman.backends.smtp import EmailBackend
from sqlalchemy import func, update
from sqlmodel import Session, select

from ..db import read_session, unit_of_work
from ..domain import policy
from ..domain.errors import NotFound, ValidationFailed
from ..models import Branch, Case, Invitation, Notification, NotificationDelivery, User, as_utc, utcnow
from . import audit, invitations, queries
from .notifications import JOB_FUNCTION, rq_queue, title_of

log = logging.getLogger(__name__)

_TABLE = NotificationDelivery.__table__
_C = _TABLE.c


@dataclass(frozen=True)
class OutboxSettings:
    """How the worker delivers: SMTP (absent: mail deliveries are skipped), the link base, retries."""

    base_url: str = "http://127.0.0.1:5000"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    sender: str = "mianze@localhost"
    mail_domain: str | None = None  # addresses are username@domain for users without an address of their own
    bank_name: str = "示范商业银行"
    timeout: float = 30.0  # seconds: each SMTP operation, each POST
    max_attempts: int = 6
    backoff: float = 60.0  # seconds before the second attempt, doubled for each later one
    backoff_cap: float = 6 * 3600.0
    lease: float = 600.0  # a claim older than this belongs to a worker that died while sending
    secret_key: str | None = field(default=None, repr=False)  # makes the invitations' links (invitations.py)

    @classmethod
    def from_config(cls, config) -> OutboxSettings:
        """The settings of an app's configuration (SMTP_*, BASE_URL, OUTBOX_*)."""
        host = config.get("SMTP_HOST") or None
        return cls(base_url=(config.get("BASE_URL") or cls.base_url).rstrip("/"), smtp_host=host,
                   smtp_port=int(config.get("SMTP_PORT") or 25),
                   smtp_starttls=str(config.get("SMTP_STARTTLS", "")).lower() in ("1", "true", "yes"),
                   smtp_username=config.get("SMTP_USER") or None, smtp_password=config.get("SMTP_PASSWORD") or None,
                   sender=config.get("SMTP_FROM") or f"mianze@{host or 'localhost'}",
                   mail_domain=config.get("SMTP_MAIL_DOMAIN") or None,
                   bank_name=config.get("BANK_NAME") or cls.bank_name,
                   timeout=float(config.get("OUTBOX_TIMEOUT") or cls.timeout),
                   max_attempts=int(config.get("OUTBOX_MAX_ATTEMPTS") or cls.max_attempts),
                   backoff=float(config.get("OUTBOX_BACKOFF") or cls.backoff),
                   lease=float(config.get("OUTBOX_LEASE") or cls.lease),
                   secret_key=config.get("SECRET_KEY") or None)

    def delay(self, attempts: int) -> timedelta:
        """How long to wait after the `attempts`-th failed attempt: exponential, capped."""
        return timedelta(seconds=min(self.backoff_cap, self.backoff * 2 ** max(0, attempts - 1)))

    def address_of(self, user) -> str | None:
        """Where a user's mail goes: their own address, else username@SMTP_MAIL_DOMAIN, else nowhere."""
        if user.email:
            return user.email
        return f"{user.username}@{self.mail_domain}" if self.mail_domain else None


@dataclass
class DeliveryRun:
    """What one run of the worker did."""

    sent: dict[str, int] = field(default_factory=lambda: {"mail": 0, "webhook": 0})
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0

    def to_dict(self) -> dict:
        return {"sent": dict(self.sent), "retried": self.retried, "failed": self.failed, "skipped": self.skipped,
                "interrupted": self.interrupted}


class Permanent(Exception):
    """A refusal that trying again will not change (an unknown recipient, a wrong robot key)."""


class Transient(Exception):
    """A failure worth trying again later (a server down, a timeout, a rate limit)."""


# --- what is sent --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    """The person a delivery is for, as plain data."""

    id: int
    username: str
    name: str
    locale: str
    email: str | None


@dataclass(frozen=True)
class Outgoing:
    """One delivery as the worker reads it (a plain snapshot, read before the claim)."""

    id: int
    channel: str
    notification_id: int
    kind: str
    message: str
    case_id: int | None
    case_number: str | None
    user: Recipient
    webhook_url: str | None
    invitation: tuple[str, datetime] | None = None  # an invitation's link and expiry (while it is open)


def case_link(settings: OutboxSettings, case_id: int | None) -> str:
    """The absolute address of a case's page (or of the notifications page)."""
    return f"{settings.base_url}/cases/{case_id}" if case_id else f"{settings.base_url}/notifications"


def mail_of(settings: OutboxSettings, item: Outgoing) -> tuple[str, str]:
    """The subject and plain-text body of a notification's mail, in the recipient's language (Chinese unless
    they chose English): the title, the message and a link to the case."""
    en = item.user.locale == "en"
    title = title_of(item.kind, item.user.locale)
    if item.kind == "invitation" and item.invitation is not None:
        return _invitation_mail(settings, item, title)
    number = f"{'' if en else '：'}{item.case_number}" if item.case_number else ""
    if en:
        subject = f"[Mianze] {title}" + (f": {item.case_number}" if item.case_number else "")
        body = (f"{item.user.name},\n\n{item.message}\n\nOpen the case: {case_link(settings, item.case_id)}\n\n"
                f"-- {settings.bank_name}, due-diligence exemption system (sent automatically; do not reply)\n")
    else:
        subject = f"【尽职免责】{title}{number}"
        body = (f"{item.user.name}：\n\n{item.message}\n\n查看案件：{case_link(settings, item.case_id)}\n\n"
                f"—— {settings.bank_name}尽职免责管理系统（系统自动发送，请勿回复）\n")
    return subject, body


def _invitation_mail(settings: OutboxSettings, item: Outgoing, title: str) -> tuple[str, str]:
    """An invitation's mail: who is invited, the link and until when it works (China Standard Time)."""
    url, expires = item.invitation
    until = (as_utc(expires) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    if item.user.locale == "en":
        body = (f"{item.user.name},\n\nAn account of the due-diligence exemption system of {settings.bank_name} has "
                f"been opened for you. Your username: {item.user.username}\n\nSet your password here (the link "
                f"works once, until {until} China Standard Time):\n{url}\n\nIf you did not expect this mail, do "
                f"not open the link and tell the system administrator.\n\n-- {settings.bank_name}, due-diligence "
                f"exemption system (sent automatically; do not reply)\n")
        return f"[Mianze] {title}", body
    body = (f"{item.user.name}：\n\n已为您开立{settings.bank_name}尽职免责管理系统账户，用户名：{item.user.username}\n\n"
            f"请通过以下链接设置密码（链接只能使用一次，有效期至北京时间 {until}）：\n{url}\n\n"
            f"如您并未申请开立账户，请勿打开该链接，并告知系统管理员。\n\n"
            f"—— {settings.bank_name}尽职免责管理系统（系统自动发送，请勿回复）\n")
    return f"【尽职免责】{title}", body


def webhook_payload(settings: OutboxSettings, item: Outgoing) -> dict:
    """The 企业微信 group robot message (markdown) of a notification.

    The group is wider than the case's need to know, so the post names the kind, the case and the person, and
    links to the case; the message itself (statements, outcomes, reasons) stays in the app and the mail.
    """
    lines = [f"**【尽职免责】{title_of(item.kind, 'zh')}**", f"> 通知对象：{item.user.name}"]
    if item.case_number:
        lines.append(f"> 案件：{item.case_number}")
    lines.append(f"[查看详情]({case_link(settings, item.case_id)})")
    return {"msgtype": "markdown", "markdown": {"content": "\n".join(lines)}}


def message_id(settings: OutboxSettings, delivery_id: int) -> str:
    """The Message-ID of a delivery's mail: the same for every attempt of it."""
    domain = settings.sender.rpartition("@")[2] or "localhost"
    return f"<mianze.delivery.{delivery_id}@{domain}>"


# --- the channels --------------------------------------------------------------------------------------------

class Mailer:
    """An SMTP connection through Flask-Mailman's SMTP backend, configured from the settings (no app needed)."""

    def __init__(self, settings: OutboxSettings):
        self.settings = settings
        self.mailman = Mail.init_mail({
            "MAIL_BACKEND": "smtp", "MAIL_SERVER": settings.smtp_host, "MAIL_PORT": settings.smtp_port,
            "MAIL_USE_TLS": settings.smtp_starttls, "MAIL_USERNAME": settings.smtp_username,
            "MAIL_PASSWORD": settings.smtp_password, "MAIL_DEFAULT_SENDER": settings.sender,
            "MAIL_TIMEOUT": settings.timeout, "MAIL_DEFAULT_CHARSET": "utf-8"})
        self.backend: EmailBackend | None = None

    def open(self) -> None:
        """Connect (and authenticate) unless connected: before a delivery is claimed, so a server that cannot
        be reached costs an attempt without leaving anything uncertain."""
        if self.backend is None:
            backend = EmailBackend(mailman=self.mailman)
            try:
                backend.open()
            except (OSError, smtplib.SMTPException) as exc:
                raise Transient(f"cannot connect to the SMTP server {self.settings.smtp_host}:"
                                f"{self.settings.smtp_port}: {exc}") from exc
            self.backend = backend

    def send(self, address: str, subject: str, body: str, msgid: str) -> None:
        """One SMTP transaction; raises Permanent (5xx) or Transient (anything else)."""
        message = EmailMessage(subject, body, self.settings.sender, [address], connection=self.backend,
                               headers={"Message-ID": msgid, "Date": formatdate(localtime=False)})
        message.encoding = "utf-8"
        try:
            self.backend.send_messages([message])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise (Permanent if all(c >= 500 for c in codes) else Transient)(f"refused {address}: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise (Permanent if exc.smtp_code >= 500 else Transient)(f"SMTP {exc.smtp_code}: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise Transient(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except (OSError, smtplib.SMTPException):
                pass  # the connection is gone either way
            self.backend = None


def post_webhook(settings: OutboxSettings, url: str, payload: dict) -> None:
    """POST one message to a 企业微信 group robot; raises Permanent or Transient unless it answered errcode 0.

    The robot answers HTTP 200 with {"errcode": 0, "errmsg": "ok"}; 45009 is its rate limit (20 a minute),
    worth waiting for, like 5xx, 429 and time-outs. Other errors (a wrong key, a malformed message) are final.
    """
    try:
        response = requests.post(url, json=payload, timeout=settings.timeout)
    except requests.RequestException as exc:
        raise Transient(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise Transient(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise Permanent(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
    if code == 45009:
        raise Transient(f"rate limited: {answer.get('errmsg', '')}")
    if code:
        raise Permanent(f"errcode {code}: {answer.get('errmsg', '')}")


# --- the worker ----------------------------------------------------------------------------------------------

def _snapshot(session: Session, settings: OutboxSettings, delivery_id: int) -> Outgoing | None:
    row = session.exec(select(NotificationDelivery, Notification, User, Branch.webhook_url)
                       .join(Notification, Notification.id == NotificationDelivery.notification_id)
                       .join(User, User.id == Notification.user_id).join(Branch, Branch.id == User.branch_id)
                       .where(NotificationDelivery.id == delivery_id)).first()
    if row is None or row[0].status != "pending":
        return None
    delivery, note, user, webhook_url = row
    number = session.exec(select(Case.number).where(Case.id == note.case_id)).first() if note.case_id else None
    return Outgoing(id=delivery.id, channel=delivery.channel, notification_id=note.id, kind=note.kind,
                    message=note.message, case_id=note.case_id, case_number=number,
                    user=Recipient(user.id, user.username, user.name, user.locale, user.email),
                    webhook_url=webhook_url, invitation=_invitation_of(session, settings, note.id, user)
                    if note.kind == "invitation" else None)


def _invitation_of(session: Session, settings: OutboxSettings, notification_id: int, user: User):
    """An open invitation's link (made again from its salt with the secret key) and expiry; None when it was
    used, revoked or has expired meanwhile, or the worker has no secret key: then no mail goes out."""
    invitation = session.exec(select(Invitation).where(Invitation.notification_id == notification_id)).first()
    if invitation is None or not settings.secret_key or not user.active or invitation.status(utcnow()) != "open":
        return None
    return invitations.link(settings.base_url, invitations.token_of(settings.secret_key, invitation.salt)), \
        invitation.expires_at


def _update(engine, delivery_id: int, where, **values) -> bool:
    """One conditional UPDATE of a delivery in a transaction of its own; whether it applied."""
    with unit_of_work(engine) as s:
        result = s.connection().execute(update(_TABLE).where(_C.id == delivery_id, where).values(**values))
        return result.rowcount == 1


def _claim(engine, item: Outgoing, now: datetime, target: str, msgid: str | None) -> str | None:
    """pending → sending under a new claim token, committed; None when another worker claimed it first."""
    token = secrets.token_hex(16)
    ok = _update(engine, item.id, _C.status == "pending", status="sending", claim=token, claimed_at=now,
                 attempts=_C.attempts + 1, target=target[:254], message_id=msgid)
    return token if ok else None


def _failed_attempt(engine, settings: OutboxSettings, delivery_id: int, error: str, now: datetime, *,
                    permanent: bool, claim: str | None) -> str:
    """After a failed attempt: pending again after the back-off, or failed once attempts are exhausted or the
    failure is final. `claim`: the attempt's claim (None: it failed before anything was claimed)."""
    with unit_of_work(engine) as s:
        attempts = s.exec(select(NotificationDelivery.attempts).where(NotificationDelivery.id == delivery_id)).one()
        attempts += claim is None  # an attempt that failed before its claim counts too
        give_up = permanent or attempts >= settings.max_attempts
        where = (_C.claim == claim) if claim is not None else (_C.status == "pending")
        s.connection().execute(update(_TABLE).where(_C.id == delivery_id, where).values(
            status="failed" if give_up else "pending", attempts=attempts, last_error=error[:500],
            next_attempt_at=now if give_up else now + settings.delay(attempts), claim=None))
    return "failed" if give_up else "retried"


def _close_unusable(engine, delivery_id: int, reason: str) -> None:
    _update(engine, delivery_id, _C.status == "pending", status="skipped", last_error=reason[:500])


def reap_interrupted(engine, settings: OutboxSettings, now: datetime | None = None) -> int:
    """Mark failed the deliveries whose worker died while sending (claimed longer than `lease` ago): they may
    have arrived, so they are not sent again unless an administrator asks. Returns how many."""
    now = now or utcnow()
    with unit_of_work(engine) as s:
        result = s.connection().execute(update(_TABLE).where(
            _C.status == "sending", _C.claimed_at < now - timedelta(seconds=settings.lease)).values(
            status="failed", last_error="interrupted while sending (the worker stopped): it may have been "
                                        "delivered, so it is not sent again unless an administrator asks"))
        return result.rowcount


def due(session: Session, now: datetime, limit: int) -> list[int]:
    """The ids of the pending deliveries due by `now`, oldest first."""
    return list(session.exec(select(NotificationDelivery.id).where(
        NotificationDelivery.status == "pending", NotificationDelivery.next_attempt_at <= now)
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id).limit(limit)))


def deliver(engine, settings: OutboxSettings, *, now: datetime | None = None, limit: int = 200) -> DeliveryRun:
    """Deliver the due deliveries (at most `limit`), each claimed, sent and marked in transactions of its own
    (see the module's docstring); returns what it did. Safe to run in several processes at once."""
    run = DeliveryRun()
    now = now or utcnow()
    run.interrupted = reap_interrupted(engine, settings, now)
    with read_session(engine) as s:
        ids = due(s, now, limit)
    mailer = Mailer(settings) if settings.smtp_host else None
    try:
        for delivery_id in ids:
            with read_session(engine) as s:
                item = _snapshot(s, settings, delivery_id)
            if item is None:
                continue  # delivered or taken by another worker meanwhile
            outcome = _deliver_one(engine, settings, mailer, item, now)
            if outcome == "sent":
                run.sent[item.channel] += 1
            elif outcome != "taken":
                setattr(run, outcome, getattr(run, outcome) + 1)
    finally:
        if mailer is not None:
            mailer.close()
    return run


def _deliver_one(engine, settings: OutboxSettings, mailer: Mailer | None, item: Outgoing, now: datetime) -> str:
    if item.kind == "invitation" and (item.invitation is None or item.channel != "mail"):
        _close_unusable(engine, item.id, "the invitation is no longer open (used, revoked or expired), or the "
                                         "worker has no SECRET_KEY to make its link")
        return "skipped"
    if item.channel == "mail":
        address = settings.address_of(item.user)
        if mailer is None or not address:
            _close_unusable(engine, item.id, "mail is not configured (SMTP_HOST)" if mailer is None
                            else "the user has no mail address (and SMTP_MAIL_DOMAIN is not set)")
            return "skipped"
        try:
            mailer.open()
        except Transient as exc:
            return _failed_attempt(engine, settings, item.id, str(exc), now, permanent=False, claim=None)
        target = address
    else:
        if not item.webhook_url:
            _close_unusable(engine, item.id, "the user's branch has no 企业微信 robot")
            return "skipped"
        target = urlsplit(item.webhook_url).netloc  # the key in the address is a secret: not recorded
    msgid = message_id(settings, item.id) if item.channel == "mail" else None
    claim = _claim(engine, item, now, target, msgid)
    if claim is None:
        return "taken"  # another worker claimed it first
    try:
        if item.channel == "mail":
            subject, body = mail_of(settings, item)
            mailer.send(address, subject, body, msgid)
        else:
            post_webhook(settings, item.webhook_url, webhook_payload(settings, item))
    except (Permanent, Transient) as exc:
        return _failed_attempt(engine, settings, item.id, str(exc), now, permanent=isinstance(exc, Permanent),
                               claim=claim)
    sent_at = utcnow()
    with unit_of_work(engine) as s:  # recorded at once: the window of uncertainty ends here
        s.connection().execute(update(_TABLE).where(_C.id == item.id, _C.claim == claim).values(
            status="sent", sent_at=sent_at, last_error=None))
        if item.channel == "mail":
            s.connection().execute(update(Notification.__table__).where(
                Notification.__table__.c.id == item.notification_id).values(mailed_at=sent_at))
    return "sent"


# --- delivery as RQ jobs (the enqueueing side is notifications.deliveries_queued) ------------------------------
#
# With Redis (REDIS_URL), a unit of work that queued deliveries enqueues one delivery job on the jobs queue once
# it has committed; `flask jobs worker` runs it (`deliver` above: claims make two jobs at once harmless) and,
# while deliveries wait for a retry, schedules the next job at the earliest retry time. Without Redis, or if
# Redis does not answer, the deliveries wait for the polling worker (the app's thread in the embedded default,
# `flask notifications deliver --loop` where configured): nothing is lost either way, only later.

_WORKER: list = []  # the RQ worker's (engine, settings, redis url, queue), set by `flask jobs worker`


def deliver_in_worker() -> dict:
    """The RQ job: deliver what is due; if deliveries wait for a retry, schedule the next job at the earliest."""
    if not _WORKER:
        raise RuntimeError("run RQ workers with `flask jobs worker`, which connects them to the database")
    engine, settings, redis_url, queue = _WORKER[0]
    run = deliver(engine, settings)
    with read_session(engine) as s:
        retry_at = s.exec(select(func.min(NotificationDelivery.next_attempt_at))
                          .where(NotificationDelivery.status == "pending")).one()
    if retry_at is not None:
        when = retry_at if retry_at.tzinfo else retry_at.replace(tzinfo=UTC)
        rq_queue(redis_url, queue).enqueue_at(when, JOB_FUNCTION, job_timeout=600, result_ttl=3600)
    return run.to_dict()


# --- the embedded default's thread ---------------------------------------------------------------------------

class DeliveryThread(threading.Thread):
    """The embedded default's delivery worker: runs `deliver` in the app process every `interval` seconds.
    Production runs `flask notifications deliver --loop` as a process of its own (docs/deployment.md)."""

    def __init__(self, engine, settings: OutboxSettings, interval: float):
        super().__init__(name="mianze-outbox", daemon=True)
        self.engine, self.settings, self.interval = engine, settings, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                deliver(self.engine, self.settings)
            except Exception:  # noqa: BLE001 - the worker keeps running; the failure is logged
                log.exception("the notification delivery worker failed")
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()


# --- administrators: failed deliveries ----------------------------------------------------------------------

def status_counts(session: Session) -> dict[str, int]:
    """How many deliveries are in each status."""
    return {status: n for status, n in session.exec(
        select(NotificationDelivery.status, func.count()).group_by(NotificationDelivery.status))}


def failed(session: Session, actor: User, *, limit: int = 50, offset: int = 0, locale: str = "zh") -> list[dict]:
    """The deliveries given up (newest first) with their recipient, what they were about (titled in `locale`)
    and case; for head-office administrators (PermissionDenied otherwise). The message itself is not shown:
    it is the recipient's."""
    refusal = policy.why_not_manage_deliveries(queries.actor_of(session, actor))
    if refusal is not None:
        raise policy.refuse(refusal)
    rows = session.exec(select(NotificationDelivery, Notification, User, Case.number)
                        .join(Notification, Notification.id == NotificationDelivery.notification_id)
                        .join(User, User.id == Notification.user_id)
                        .outerjoin(Case, Case.id == Notification.case_id)
                        .where(NotificationDelivery.status == "failed")
                        .order_by(NotificationDelivery.next_attempt_at.desc(), NotificationDelivery.id.desc())
                        .offset(offset).limit(limit))
    return [{"delivery": d, "notification": n, "user": u, "case_number": number, "title": title_of(n.kind, locale)}
            for d, n, u, number in rows]


def resend(session: Session, actor: User, delivery_id: int, now: datetime | None = None) -> NotificationDelivery:
    """An administrator sends a failed delivery again: pending now, with a fresh count of attempts (audited).

    Raises PermissionDenied (not a head-office administrator), NotFound, ValidationFailed (not failed).
    """
    refusal = policy.why_not_manage_deliveries(queries.actor_of(session, actor))
    if refusal is not None:
        raise policy.refuse(refusal)
    delivery = session.get(NotificationDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    if delivery.status != "failed":
        raise ValidationFailed("only a failed delivery can be sent again")
    note = session.get(Notification, delivery.notification_id)
    before = {"attempts": delivery.attempts, "last_error": delivery.last_error}
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, now or utcnow()
    delivery.claim = None
    session.add(delivery)
    session.flush()
    audit.record(session, event="resend_notification", actor=actor, case_id=note.case_id,
                 payload={"delivery_id": delivery.id, "notification_id": note.id, "channel": delivery.channel,
                          "user_id": note.user_id, **before})
    return delivery
