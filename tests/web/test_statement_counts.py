"""SQL statements per request: a request is one unit of work that loads the case once.

Counted with SQLAlchemy's `before_cursor_execute` on the app's engine, so that a view which reads the same
thing twice, or a verb that re-reads what its view already loaded, fails here instead of slowly in
production. The budgets are the issue's: case page <= 15, inbox <= 10, the `determine` POST <= 25.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from tests.factories import drive
from tests.web.support import login, post, set_passwords, version_of
from workflow import engine_of
from workflow.models import Case, Respondent
from workflow.services import cases

CASE_PAGE, INBOX, DETERMINE = 15, 10, 25


@contextmanager
def counted(app):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = engine_of(app)
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def chair_on_a_voted_case(bank, app_for):
    """The chair signed in, and a case under review on which every member has voted."""
    case_id = drive(bank, "under_review")
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        for member in ("member1", "member2", "chair"):
            for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
                cases.record_vote(s, case, bank.user(s, member), r.id, r.recommended_outcome)
        s.commit()
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    client = app.test_client()
    assert login(client, "chair").status_code == 302
    return app, client, case_id


def test_the_case_page_runs_at_most_fifteen_statements(chair_on_a_voted_case):
    app, client, case_id = chair_on_a_voted_case
    client.get(f"/cases/{case_id}")  # warm the process-wide caches (rule sets, calendar)
    with counted(app) as statements:
        response = client.get(f"/cases/{case_id}")
    assert response.status_code == 200
    assert len(statements) <= CASE_PAGE, "\n".join(statements)


def test_the_inbox_runs_at_most_ten_statements(chair_on_a_voted_case):
    app, client, _ = chair_on_a_voted_case
    client.get("/inbox")
    with counted(app) as statements:
        response = client.get("/inbox")
    assert response.status_code == 200
    assert len(statements) <= INBOX, "\n".join(statements)


def test_determining_a_case_runs_at_most_twenty_five_statements(chair_on_a_voted_case, bank):
    app, client, case_id = chair_on_a_voted_case
    client.get(f"/cases/{case_id}/determine")
    with counted(app) as statements:
        response = post(client, f"/cases/{case_id}/determine",
                        {"expected_version": str(version_of(bank.engine, case_id)), "confirm": "1"})
    assert response.status_code == 302
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "determined"
    assert len(statements) <= DETERMINE, "\n".join(statements)


@contextmanager
def synchronous_at_commit(app):
    """SQLite's `synchronous` setting of every transaction that commits a write (1 NORMAL, 2 FULL)."""
    seen: list[int] = []

    def at_commit(conn):
        if conn.connection.driver_connection.in_transaction:
            seen.append(conn.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0])

    engine = engine_of(app)
    event.listen(engine, "commit", at_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", at_commit)


def test_a_case_view_logs_itself_without_an_fsync_and_a_decision_commits_with_one(chair_on_a_voted_case, bank):
    """The case view's access-log entry is the only commit that does not wait for the disk (it would hold
    SQLite's one write lock for an fsync per page view); the determination waits for it (FULL)."""
    app, client, case_id = chair_on_a_voted_case
    if bank.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's synchronous setting; PostgreSQL commits every transaction alike")
    with synchronous_at_commit(app) as seen:
        assert client.get(f"/cases/{case_id}").status_code == 200
    assert seen[-1] == 1  # NORMAL: the access-log entry's commit
    with synchronous_at_commit(app) as seen:
        response = post(client, f"/cases/{case_id}/determine",
                        {"expected_version": str(version_of(bank.engine, case_id)), "confirm": "1"})
    assert response.status_code == 302
    assert seen and set(seen) == {2}  # FULL for the decision
