"""Small helpers shared by the views: the request's unit of work, the acting user, loading with 404/403,
form parsing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from flask import current_app, request
from flask_login import current_user
from sqlmodel import Session
from werkzeug.exceptions import BadRequest, Forbidden, NotFound

from .. import unit
from ..domain import policy
from ..domain.errors import NotFound as CaseNotFound
from ..models import Case, User
from ..services import queries
from . import access

work = unit.work  # a verb's part of the request's unit of work (rolled back to its start if it raises)


def engine():
    return current_app.extensions["mianze.engine"]


def today() -> date:
    return date.today()


def _with_detail(exc_class, detail: str):
    exc = exc_class(description=detail)
    exc._mianze_detail = True
    return exc


def deny(reason: str, refusal: str | None = None):
    """Refuse with 403 and say why (`refusal`: the policy's code, on the page for machines and tests)."""
    exc = _with_detail(Forbidden, reason)
    exc._mianze_refusal = refusal
    raise exc


def not_found(detail: str | None = None):
    raise _with_detail(NotFound, detail) if detail else NotFound()


def bad_request(detail: str):
    raise _with_detail(BadRequest, detail)


def actor(s: Session) -> User:
    """The signed-in user's row in this session (the policy's view of them is the Principal's, not read again)."""
    user = s.get(User, current_user.id)
    if user is None or not user.active:
        deny("inactive user")
    s.info.setdefault("mianze.actors", {})[user.id] = current_user.actor
    return user


def load_case(s: Session, case_id: int) -> tuple[Case, policy.CaseView]:
    """The case (404 if missing; its aggregate is loaded for the unit of work) and the policy's view of it;
    403 when outside the user's scope."""
    try:
        agg = queries.load(s, case_id)
    except CaseNotFound:
        not_found()
    view = agg.view()
    if not access.can_view(current_user, view):
        deny(access.refusal_text(access.OUT_OF_SCOPE), access.OUT_OF_SCOPE.code)
    return agg.case, view


def require(view: policy.CaseView, action: str) -> None:
    """403 with the policy's reason unless the signed-in user may take `action` on the case."""
    refusal = policy.why_not(current_user.actor, view, action)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)


def require_comment(view: policy.CaseView) -> None:
    """403 with the policy's reason unless the signed-in user may read and write the case's comments."""
    refusal = policy.why_not_comment(current_user.actor, view)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)


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
    """The request's session, for reading (templates render its rows before it is committed or closed)."""
    yield unit.session()
