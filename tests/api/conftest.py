"""Fixtures for the API: an app on a fresh database with the small bank, and a token per user."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlmodel import SQLModel

from tests.factories import Bank, make_bank
from workflow import create_app, engine_of
from workflow.db import unit_of_work
from workflow.services import rulesets, tokens


@dataclass
class Api:
    app: object
    client: object
    bank: Bank
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, username: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def get(self, username: str, url: str, **kw):
        return self.client.get(url, headers=self.headers(username), **kw)

    def post(self, username: str, url: str, **kw):
        return self.client.post(url, headers=self.headers(username), **kw)

    def put(self, username: str, url: str, **kw):
        return self.client.put(url, headers=self.headers(username), **kw)


def build_api(url: str, max_content_length: int | None = None) -> Api:
    config = {"DATABASE_URL": url, "TESTING": True, "WTF_CSRF_ENABLED": True}
    if max_content_length:
        config["MAX_CONTENT_LENGTH"] = max_content_length
    app = create_app(config)
    engine = engine_of(app)
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine)
    api = Api(app=app, client=app.test_client(), bank=bank)
    with unit_of_work(engine) as s:
        for username, user_id in bank.users.items():
            api.tokens[username] = tokens.create(s, None, user_id, f"{username} integration")[1]
    return api


@pytest.fixture
def api(db_url):
    """The API on a fresh SQLite or PostgreSQL database (each test runs on both)."""
    built = build_api(db_url)
    yield built
    engine_of(built.app).dispose()


@pytest.fixture
def sqlite_api(sqlite_url):
    built = build_api(sqlite_url)
    yield built
    engine_of(built.app).dispose()
