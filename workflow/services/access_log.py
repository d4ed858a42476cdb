"""The access log: who looked at what (case views, letter and evidence downloads, exports, API reads).

Web and API views call `record` in the unit of work of the request; auditors list the log here and export it
through `workflow.services.export` (record type `access_log`). Entries are never edited or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert
from sqlmodel import Session, select

from ..db import rows
from ..domain.errors import ValidationFailed
from ..models import AccessLog, utcnow

ACTIONS = ("view_case", "download_letter", "download_evidence", "preview_evidence", "download_case_file", "export",
           "api_read", "sign_in", "sign_in_failed", "sign_out")
SYSTEM = "system"


def _jsonable(value):
    from .audit import _jsonable as audit_jsonable

    try:
        return audit_jsonable(value)
    except TypeError:  # a float in details is harmless here (the access log is not hashed)
        return str(value)


# Every page view writes one entry: a statement built once, without an ORM object to construct and flush.
_APPEND = insert(AccessLog.__table__)


def record(session: Session, user, action: str, target: str = "", case_id: int | None = None,
           details: dict | None = None) -> None:
    """Append one access-log entry in the caller's transaction (never commits).

    Raises ValidationFailed for an unknown action.
    """
    rows(session, _APPEND, _entry(user, action, target, case_id, details))


def stated_reason(reason: str | None) -> str:
    """The stated reason of an export, stripped. Raises ValidationFailed when there is none or it is too long."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("every export needs a stated reason (it is recorded in the access log)",
                               field="reason")
    if len(reason) > REASON_MAX:
        raise ValidationFailed("the reason is longer than 500 characters", field="reason")
    return reason


REASON_MAX = 500


def record_export(session: Session, user, target: str, reason: str | None, details: dict | None = None) -> str:
    """Check an export's stated reason and log the export with it, in the caller's transaction, before the
    file is written. Returns the reason. Raises ValidationFailed when the reason is missing or too long."""
    reason = stated_reason(reason)
    record(session, user, "export", target, None, {**(details or {}), "reason": reason})
    return reason


def _entry(user, action: str, target: str, case_id: int | None, details: dict | None) -> dict:
    if action not in ACTIONS:
        raise ValidationFailed(f"unknown access-log action '{action}'", field="action")
    return {"at": utcnow(), "user_id": getattr(user, "id", None),
            "username": getattr(user, "username", None) or SYSTEM, "action": action,
            "target": (target or "")[:200], "case_id": case_id, "details": _jsonable(details or {})}


@dataclass(frozen=True)
class Page:
    """One page of access-log entries, newest first."""

    entries: list[AccessLog]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def entries(session: Session, *, username: str | None = None, action: str | None = None,
            case_id: int | None = None, since: datetime | None = None, until: datetime | None = None,
            page: int = 1, per_page: int = 50) -> Page:
    """A page of entries matching the filters, newest first (`since` inclusive, `until` exclusive, UTC)."""
    conds = []
    if username:
        conds.append(AccessLog.username == username)
    if action:
        conds.append(AccessLog.action == action)
    if case_id is not None:
        conds.append(AccessLog.case_id == case_id)
    if since is not None:
        conds.append(AccessLog.at >= _aware(since))
    if until is not None:
        conds.append(AccessLog.at < _aware(until))
    page, per_page = max(1, page), max(1, min(per_page, 500))
    total = session.exec(select(func.count()).select_from(AccessLog).where(*conds)).one()
    rows = list(session.exec(select(AccessLog).where(*conds).order_by(AccessLog.id.desc())
                             .offset((page - 1) * per_page).limit(per_page)))
    for row in rows:
        session.expunge(row)  # plain values for the page, whatever the caller does with the session
    return Page(rows, total, page, per_page)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
