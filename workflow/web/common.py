"""Small helpers shared by the views: the engine, the acting user, loading with 404/403, form parsing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from flask import current_app, request
from flask_login import current_user
from sqlmodel import Session
from werkzeug.exceptions import BadRequest, Forbidden, NotFound

from ..models import Case, User
from . import access


def engine():
    return current_app.extensions["mianze.engine"]


def today() -> date:
    return date.today()


def _with_detail(exc_class, detail: str):
    exc = exc_class(description=detail)
    exc._mianze_detail = True
    return exc


def deny(reason: str):
    """Refuse with 403 and say why."""
    raise _with_detail(Forbidden, reason)


def not_found(detail: str | None = None):
    raise _with_detail(NotFound, detail) if detail else NotFound()


def bad_request(detail: str):
    raise _with_detail(BadRequest, detail)


def actor(s: Session) -> User:
    """The signed-in user's row in this session."""
    user = s.get(User, current_user.id)
    if user is None or not user.active:
        deny("inactive user")
    return user


def load_case(s: Session, case_id: int) -> tuple[Case, access.CaseFacts]:
    """The case (404 if missing) and its facts; 403 when outside the user's scope."""
    case = s.get(Case, case_id)
    if case is None:
        not_found()
    cf = access.case_facts(s, case)
    if not access.can_view(current_user, cf):
        deny(str(access.OUT_OF_SCOPE))
    return case, cf


def require(cf: access.CaseFacts, action: str) -> None:
    """403 unless the signed-in user may take `action` on the case."""
    why = access.why_not(current_user, cf, action)
    if why:
        deny(str(why))


def expected_version() -> int:
    """The case version the user saw when the form was rendered (every POST on a case sends it)."""
    raw = request.form.get("expected_version", "")
    if not raw.isdigit():
        bad_request("expected_version is missing")
    return int(raw)


def text_field(name: str) -> str:
    return (request.form.get(name) or "").strip()


def int_field(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    return int(raw) if raw.isdigit() else None


@contextmanager
def reading(eng=None) -> Iterator[Session]:
    """A read-only session whose loaded rows stay readable after it ends (templates render them later)."""
    session = Session(eng if eng is not None else engine(), expire_on_commit=False)
    try:
        yield session
    finally:
        session.expunge_all()  # detach before the rollback, so nothing is expired
        session.rollback()
        session.close()
