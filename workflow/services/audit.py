"""Appending to and verifying the audit hash chain."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Text, bindparam, cast
from sqlalchemy import select as sa_select
from sqlmodel import Session

from ..chain import GENESIS, ChainBroken, link_hash, verify_stored
from ..db import stream
from ..models import AuditEvent, AuditHead, utcnow  # noqa: F401  (AuditHead: re-exported)

SYSTEM_ACTOR = "system"


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        raise TypeError("floats are not allowed in audit payloads; use Decimal or str")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def now_iso() -> str:
    """The current UTC time as the canonical string stored and hashed."""
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_HEAD = AuditHead.__table__
_EVENT = AuditEvent.__table__
# Built once: executing a prebuilt statement with parameters reuses its compiled form from the cache.
_LOCK_HEAD = sa_select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_START_HEAD = _HEAD.insert()
_INSERT_EVENT = _EVENT.insert()
_MOVE_HEAD = _HEAD.update().where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def record(session: Session, *, event: str, actor=None, case_id: int | None = None,
           from_state: str | None = None, to_state: str | None = None, payload: dict | None = None) -> dict:
    """Append one event to the chain in the caller's transaction (locks the chain head); the event's fields.

    Core statements, not ORM objects: the chain head is read under a row lock, the event inserted and the
    head moved on, in the caller's transaction (pending ORM changes are flushed first, in order).
    """
    session.flush()
    conn = session.connection()
    head = conn.execute(_LOCK_HEAD).first()
    if head is None:
        conn.execute(_START_HEAD, {"id": 1, "seq": 0, "hash": GENESIS})
        head = (0, GENESIS)
    fields = {
        "seq": head[0] + 1,
        "case_id": case_id,
        "actor_id": getattr(actor, "id", None),
        "actor": getattr(actor, "username", None) or SYSTEM_ACTOR,
        "at": now_iso(),
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "payload": _jsonable(payload or {}),
        "prev_hash": head[1] if head[0] else GENESIS,
    }
    fields["hash"] = link_hash(fields)
    conn.execute(_INSERT_EVENT, fields)
    conn.execute(_MOVE_HEAD, {"new_seq": fields["seq"], "new_hash": fields["hash"]})
    return fields


def event_dict(ev: AuditEvent) -> dict:
    return {
        "seq": ev.seq, "case_id": ev.case_id, "actor_id": ev.actor_id, "actor": ev.actor, "at": ev.at,
        "event": ev.event, "from_state": ev.from_state, "to_state": ev.to_state, "payload": ev.payload,
        "prev_hash": ev.prev_hash, "hash": ev.hash,
    }


_COLUMNS = ("seq", "case_id", "actor_id", "actor", "at", "event", "from_state", "to_state", "payload",
            "prev_hash", "hash")


def iter_events(session: Session, batch: int = 10000, case_id: int | None = None):
    """Events in seq order as plain dicts, streamed (one SELECT read `batch` rows at a time; Core rows, no ORM
    objects, flat memory however long the chain)."""
    table = AuditEvent.__table__
    query = sa_select(*(table.c[name] for name in _COLUMNS))
    if case_id is not None:
        query = query.where(table.c.case_id == case_id)
    for part in stream(session.connection(), query.order_by(table.c.seq), batch):
        for row in part:
            yield dict(zip(_COLUMNS, row, strict=True))


_STORED = ("seq", "case_id", "actor_id", "actor", "at", "event", "from_state", "to_state", "prev_hash", "hash")


def _stored_rows(session: Session, batch: int = 20000):
    """Events as stored, payload as its text (no JSON decoding), in seq order, streamed."""
    table = AuditEvent.__table__
    cols = [table.c[name] for name in _STORED] + [cast(table.c.payload, Text)]
    for part in stream(session.connection(), sa_select(*cols).order_by(table.c.seq), batch):
        yield from part


def verify(session: Session) -> int:
    """Verify the whole chain in the database; returns the number of events. Raises ChainBroken."""
    head = session.get(AuditHead, 1)
    head_dict = {"seq": head.seq, "hash": head.hash} if head else {"seq": 0, "hash": GENESIS}
    return verify_stored(_stored_rows(session), head_dict)


__all__ = ["record", "verify", "ChainBroken", "event_dict", "iter_events", "SYSTEM_ACTOR"]
