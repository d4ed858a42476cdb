"""Helpers for web tests: passwords for the factory bank's staff, an app on the test database, signing in."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from sqlmodel import select

from workflow import create_app
from workflow.db import unit_of_work
from workflow.models import User
from workflow.services import accounts

PASSWORD = "Mianze-2025-pass"
# Cheap argon2id parameters so tests stay fast; production uses the library's recommended ones.
FAST = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def set_passwords(engine, password: str = PASSWORD) -> None:
    """Give every user of the database the same password (hashed by the accounts service)."""
    digest = accounts.hash_password(password, FAST_HASHER)
    with unit_of_work(engine) as s:
        for user in s.exec(select(User)):
            user.password_hash = digest
            s.add(user)


def make_app(engine, tmp_path, **config):
    """The Flask app on the test database (CSRF on, as in production)."""
    url = engine.url.render_as_string(hide_password=False)
    return create_app({"DATABASE_URL": url, "SECRET_KEY": "test-secret", "TESTING": True,
                       "EVIDENCE_DIR": str(tmp_path / "evidence"), "JOBS_DIR": str(tmp_path / "jobs"),
                       "REDIS_URL": None, **FAST, **config})


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, url: str = "/login") -> str:
    """A CSRF token of the client's session, read from a rendered form."""
    html = client.get(url).get_data(as_text=True)
    match = _TOKEN.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    """Sign in through the sign-in form (with its CSRF token); returns the response of the POST."""
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    client.csrf = csrf_token(client, "/account/password") if response.status_code == 302 else token
    return response


def post(client, url: str, data: dict | None = None, **kwargs):
    """POST a form with the signed-in client's CSRF token."""
    return client.post(url, data={"csrf_token": client.csrf, **(data or {})}, **kwargs)


def version_of(engine, case_id: int) -> int:
    from sqlmodel import Session

    from workflow.models import Case

    with Session(engine) as s:
        return s.get(Case, case_id).version
