"""Tamper evidence: `flask audit verify` catches an edited, deleted, inserted or swapped event and names it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.factories import drive
from workflow import create_app, engine_of
from workflow.chain import link_hash


@pytest.fixture
def chained(bank, db_url):
    drive(bank, "under_review")
    app = create_app({"DATABASE_URL": db_url, "TESTING": True})
    yield bank.engine, app
    engine_of(app).dispose()


def _verify(app):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def test_an_intact_chain_verifies(chained):
    _, app = chained
    code, out = _verify(app)
    assert code == 0 and "intact" in out, out


def test_an_edited_payload_is_caught_and_named(chained):
    engine, app = chained
    with engine.begin() as c:
        c.execute(text("UPDATE auditevent SET payload = :p WHERE seq = 5"), {"p": '{"forged": true}'})
    code, out = _verify(app)
    assert code == 1 and "seq 5" in out and "edited" in out


def test_a_deleted_event_is_caught_and_named(chained):
    engine, app = chained
    with engine.begin() as c:
        c.execute(text("DELETE FROM auditevent WHERE seq = 4"))
    code, out = _verify(app)
    assert code == 1 and "seq 5" in out


def test_a_deleted_last_event_is_caught(chained):
    engine, app = chained
    with engine.begin() as c:
        last = c.execute(text("SELECT max(seq) FROM auditevent")).scalar()
        c.execute(text("DELETE FROM auditevent WHERE seq = :s"), {"s": last})
    code, out = _verify(app)
    assert code == 1 and "head" in out


def test_an_inserted_forged_event_is_caught_and_named(chained):
    engine, app = chained
    with engine.begin() as c:
        c.execute(text("UPDATE auditevent SET seq = seq + 1000 WHERE seq > 6"))
        prev = c.execute(text("SELECT hash FROM auditevent WHERE seq = 6")).scalar()
        forged = {"seq": 7, "case_id": 1, "actor_id": None, "actor": "mallory", "at": "2026-01-01T00:00:00.000000Z",
                  "event": "determine", "from_state": "under_review", "to_state": "determined", "payload": {},
                  "prev_hash": prev}
        forged["hash"] = link_hash(forged)
        c.execute(text("INSERT INTO auditevent (seq, case_id, actor_id, actor, at, event, from_state, to_state, "
                       "payload, prev_hash, hash) VALUES (:seq, :case_id, :actor_id, :actor, :at, :event, "
                       ":from_state, :to_state, '{}', :prev_hash, :hash)"), forged)
        c.execute(text("UPDATE auditevent SET seq = seq - 999 WHERE seq > 1000"))
    code, out = _verify(app)
    assert code == 1 and "seq 8" in out


def test_two_swapped_events_are_caught_and_named(chained):
    engine, app = chained
    with engine.begin() as c:
        c.execute(text("UPDATE auditevent SET seq = -1 WHERE seq = 3"))
        c.execute(text("UPDATE auditevent SET seq = 3 WHERE seq = 4"))
        c.execute(text("UPDATE auditevent SET seq = 4 WHERE seq = -1"))
    code, out = _verify(app)
    assert code == 1 and "seq 3" in out
