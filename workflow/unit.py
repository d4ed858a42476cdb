"""One unit of work per request: one session, committed once, in one place.

A request (web page, form POST or API call) gets one session the first time a view asks for it
(`session()`); the view parses, loads, calls one service verb inside `work()` and renders or redirects.
When the view has returned, the session is committed if the response is a success (status < 400) and
rolled back otherwise; side effects outside the database (files, mail) belong after that commit
(`after_commit`). A verb that fails inside `work()` is rolled back to where it began (a savepoint), so a
form can be shown again with its errors and nothing half-done is committed.

On SQLite a request that will write takes the write lock when its transaction begins (BEGIN IMMEDIATE):
every non-GET request, and GET requests whose view says so (`session(write=True)` before anything else).
A page that reads, renders and then appends one row (a case view and its access-log entry) calls
`write_now()` after rendering instead: its reads do not hold the database's one write lock, so concurrent
case views render side by side and queue only for the one-row insert. The entry is still written by the
request's unit of work, committed with it in one place, and never if the view fails. On SQLite that commit
does not wait for the disk (`db.writer(lazy_sync=True)`): the write lock is then held for the insert alone, not for
an fsync per page view; decisions and every other write commit with a full sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from .db import is_unique_violation, writer
from .domain.errors import ConflictError

_SESSION = "_mianze_session"
_AFTER = "_mianze_after_commit"
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


def session(*, write: bool = False) -> Session:
    """The request's session (opened on first use). `write`: a GET that will write says so first."""
    s = g.get(_SESSION)
    if s is None:
        engine = current_app.extensions["mianze.engine"]
        writes = write or request.method not in _READ_METHODS
        s = Session(writer(engine) if writes else engine, expire_on_commit=False)
        s.info["mianze.writes"] = writes
        setattr(g, _SESSION, s)
    elif write and not s.info.get("mianze.writes"):
        raise RuntimeError("session(write=True) must be the request's first use of its session")
    return s


def write_now() -> Session:
    """The request's session, now ready to write its access-log entry though the request began as a read.

    The read transaction ends first (it wrote nothing; rows already loaded stay usable): on SQLite, a
    transaction that has read and then writes fails at once (SQLITE_BUSY_SNAPSHOT) if another writer
    committed in between, while one that begins with its write waits for the lock in the busy handler.
    """
    s = session()
    if not s.info.get("mianze.writes"):
        if s.new or s.dirty or s.deleted:
            raise RuntimeError("write_now() must come before the request's first change")
        s.commit()
        s.bind = writer(current_app.extensions["mianze.engine"], lazy_sync=True)
        s.info["mianze.writes"] = True
    return s


@contextmanager
def reading() -> Iterator[Session]:
    """The request's session, for reading (rows stay usable until the request ends)."""
    yield session()


@contextmanager
def work() -> Iterator[Session]:
    """A verb's part of the request's unit of work: rolled back to its start if it raises.

    A flush that finds the case changed by someone else, or a row refused as a duplicate, is a ConflictError
    (409) here as at the commit: the loser of a race hears it from the verb that lost.
    """
    s = session()
    try:
        with s.begin_nested():
            yield s
        s.flush()
    except StaleDataError as exc:
        raise ConflictError("the case was changed by someone else in the meantime; reload and try again") from exc
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise ConflictError("someone else made the same change at the same moment; reload and try again") from exc


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the request's unit of work has been committed (never if it is rolled back)."""
    g.setdefault(_AFTER, []).append(callback)


def commit(s: Session) -> None:
    """Commit a unit of work; a concurrent change or a broken unique rule is a ConflictError."""
    try:
        s.commit()
    except StaleDataError as exc:
        s.rollback()
        raise ConflictError("the case was changed by someone else in the meantime; reload and try again") from exc
    except IntegrityError as exc:
        s.rollback()
        raise ConflictError("someone else made the same change at the same moment; reload and try again") from exc


def register(app: Flask) -> None:
    """Commit each request's unit of work after its view, and close it at the end of the request."""

    @app.after_request
    def _commit(response):
        s = g.pop(_SESSION, None)
        if s is None:
            return response
        try:
            if response.status_code < 400:
                commit(s)
            else:
                s.rollback()
        except ConflictError as exc:
            g.pop(_AFTER, None)
            return app.make_response(app.handle_user_exception(exc))
        finally:
            s.close()
        for callback in g.pop(_AFTER, []):
            try:
                callback()
            except Exception:  # noqa: BLE001 - the change is committed; the side effect is logged to be redone
                logging.getLogger(__name__).exception("a side effect after the commit failed")
        return response

    @app.teardown_request
    def _close(_exc):
        s = g.pop(_SESSION, None)
        if s is not None:  # the view raised, or the response was never made: nothing is committed
            s.rollback()
            s.close()
        g.pop(_AFTER, None)
