"""/health answers JSON even while the database does not answer: 503 {"status": "unavailable"}."""

from __future__ import annotations

import logging
import socket

import pytest

from workflow import create_app, engine_of


def _closed_port() -> int:
    """A port of 127.0.0.1 on which nothing listens (bound once by us, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", ["postgresql on a closed port", "sqlite file in a missing directory"])
def test_health_is_503_json_when_the_database_does_not_answer(where, tmp_path, caplog):
    url = (f"postgresql+psycopg://mianze:secret@127.0.0.1:{_closed_port()}/mianze" if where.startswith("postgresql")
           else f"sqlite:///{tmp_path / 'missing' / 'mianze.sqlite3'}")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test-secret", "TESTING": True, "REDIS_URL": None})
    with caplog.at_level(logging.WARNING):
        r = app.test_client().get("/health")
    engine_of(app).dispose()
    assert r.status_code == 503 and r.mimetype == "application/json"
    assert r.json["status"] == "unavailable"
    assert "secret" not in r.get_data(as_text=True) and "127.0.0.1" not in r.get_data(as_text=True)
    assert any("does not answer" in rec.getMessage() for rec in caplog.records), "the reason is in the log"


def test_the_same_app_answers_ok_once_the_database_is_there(tmp_path):
    from workflow.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'later' / 'mianze.sqlite3'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test-secret", "TESTING": True, "REDIS_URL": None})
    client = app.test_client()
    assert client.get("/health").status_code == 503
    (tmp_path / "later").mkdir()
    upgrade(url)
    r = client.get("/health")
    engine_of(app).dispose()
    assert r.status_code == 200 and r.json["status"] == "ok" and r.json["schema_version"]
