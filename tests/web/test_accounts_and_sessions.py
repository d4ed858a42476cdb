"""Accounts and sessions: who may grant which roles, sessions that end everywhere, sign-in throttling per
account and per address (Redis and in-process), the client address behind a proxy, the password policy,
and the session key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.web.support import PASSWORD, csrf_token, login, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import User

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
STRONG = "plum-orbit-canvas-7"  # a password zxcvbn scores 4
STAFF = ("officer", "reviewer", "approver", "investigator")  # of the factory bank


@pytest.fixture
def web(bank, app_for):
    """The factory bank with a branch administrator at tier-1 branch T1 (its subtree: T1, SB, OU)."""
    with unit_of_work(bank.engine) as s:
        u = User(username="t1_admin", name="分行管理员", employee_no="E9001", branch_id=bank.branches["T1"],
                 roles="admin")
        s.add(u)
        s.flush()
        bank.users["t1_admin"] = u.id
    set_passwords(bank.engine)
    return bank, app_for(bank.engine)


def _signed_in(app, username: str):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def _roles(bank, username: str) -> str | None:
    with Session(bank.engine) as s:
        user = s.exec(select(User).where(User.username == username)).first()
        return user.roles if user else None


def _new_user(bank, *, username: str, branch: str, roles: list[str]) -> dict:
    return {"username": username, "name": "新员工", "employee_no": f"N-{username}",
            "branch_id": str(bank.branches[branch]), "roles": roles, "locale": "zh"}  # invited to set a password


# --- who grants what -------------------------------------------------------------------------------------

def test_a_branch_administrator_is_not_offered_the_auditor_role_and_cannot_create_an_auditor(web):
    bank, app = web
    client = _signed_in(app, "t1_admin")
    page = client.get("/admin/users").get_data(as_text=True)
    assert 'id="role-auditor"' not in page and 'id="role-investigator"' in page  # the add form's checkboxes
    response = post(client, "/admin/users", _new_user(bank, username="new_auditor", branch="SB", roles=["auditor"]))
    assert response.status_code == 403
    assert "只有总行管理员可以授予或撤销全行范围的内审人员角色" in response.get_data(as_text=True)
    assert _roles(bank, "new_auditor") is None


def test_a_branch_administrator_cannot_make_themselves_or_a_colleague_an_auditor(web):
    bank, app = web
    client = _signed_in(app, "t1_admin")
    for username in ("t1_admin", "investigator"):
        user_id = bank.users[username]
        before = _roles(bank, username)
        response = post(client, f"/admin/users/{user_id}", {
            "form": "user", "name": "改名", "branch_id": str(bank.branches["T1"]), "active": "1",
            "roles": [*before.split(), "auditor"]})
        assert response.status_code == 403, username
        assert _roles(bank, username) == before


def test_a_branch_administrator_creates_administrators_only_within_their_subtree_never_at_head_office(web):
    bank, app = web
    client = _signed_in(app, "t1_admin")
    for n, branch in enumerate(("HO", "T2")):
        response = post(client, "/admin/users", _new_user(bank, username=f"boss{n}", branch=branch, roles=["admin"]))
        assert response.status_code == 403, branch
        assert _roles(bank, f"boss{n}") is None
    response = post(client, "/admin/users", _new_user(bank, username="sb_admin", branch="SB", roles=["admin"]))
    assert response.status_code == 200  # created; the invitation link is shown once
    assert _roles(bank, "sb_admin") == "admin"


def test_a_head_office_administrator_grants_the_auditor_role_but_never_with_a_deciding_role(web):
    bank, app = web
    client = _signed_in(app, "admin")
    assert 'value="auditor"' in client.get("/admin/users").get_data(as_text=True)
    response = post(client, "/admin/users", _new_user(bank, username="auditor2", branch="HO", roles=["auditor"]))
    assert response.status_code == 200
    for n, other in enumerate(("committee_member", "committee_chair", "investigator")):
        response = post(client, "/admin/users",
                        _new_user(bank, username=f"mixed{n}", branch="HO", roles=["auditor", other]))
        assert response.status_code == 403, other
        assert "内部审计须独立于其所审计的工作" in response.get_data(as_text=True)
        assert _roles(bank, f"mixed{n}") is None
    response = post(client, f"/admin/users/{bank.users['auditor']}", {
        "form": "user", "name": "郑审", "branch_id": str(bank.branches["HO"]), "active": "1",
        "roles": ["auditor", "committee_member"]})
    assert response.status_code == 403
    assert _roles(bank, "auditor") == "auditor"


def test_a_branch_administrator_editing_an_auditor_of_their_branch_leaves_the_auditor_role_as_it_is(web):
    bank, app = web
    with unit_of_work(bank.engine) as s:
        s.get(User, bank.users["approver"]).roles = "credit_officer auditor"
    client = _signed_in(app, "t1_admin")
    user_id = bank.users["approver"]
    page = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert '<input type="hidden" name="roles" value="auditor">' in page
    assert 'id="role-auditor" checked disabled' in page
    response = post(client, f"/admin/users/{user_id}", {
        "form": "user", "name": "王五", "branch_id": str(bank.branches["T1"]), "active": "1",
        "roles": ["credit_officer", "auditor"]})  # what the page sends
    assert response.status_code == 302
    assert _roles(bank, "approver") == "credit_officer auditor"
    response = post(client, f"/admin/users/{user_id}", {
        "form": "user", "name": "王五", "branch_id": str(bank.branches["T1"]), "active": "1",
        "roles": ["credit_officer"]})  # taking it away is head office's too
    assert response.status_code == 403
    assert _roles(bank, "approver") == "credit_officer auditor"


# --- sessions end everywhere -----------------------------------------------------------------------------

def _copy(app, client):
    """A second client carrying the same session cookie, as a copied cookie would."""
    other = app.test_client()
    cookie = client.get_cookie("mianze_session")
    other.set_cookie(cookie.key, cookie.value)
    return other


def test_after_signing_out_the_old_session_cookie_gets_the_sign_in_page(web):
    _bank, app = web
    client = _signed_in(app, "officer")
    copied = _copy(app, client)
    assert copied.get("/inbox").status_code == 200
    assert post(client, "/logout").status_code == 302
    response = copied.get("/inbox")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_signing_out_in_one_browser_signs_the_user_out_in_every_other(web):
    _bank, app = web
    phone, desk, colleague = _signed_in(app, "officer"), _signed_in(app, "officer"), _signed_in(app, "chair")
    assert post(phone, "/logout").status_code == 302
    assert desk.get("/inbox").headers["Location"].startswith("/login")
    assert colleague.get("/inbox").status_code == 200
    assert _signed_in(app, "officer").get("/inbox").status_code == 200  # signing in again starts afresh


def _change_password(client, current: str, new: str):
    return post(client, "/account/password", {"current_password": current, "password": new, "password_again": new})


def test_a_password_change_ends_every_other_session_and_keeps_the_changing_one(web):
    _bank, app = web
    stolen, desk = _signed_in(app, "officer"), _signed_in(app, "officer")
    copied = _copy(app, stolen)
    assert _change_password(desk, PASSWORD, STRONG).status_code == 302
    assert desk.get("/inbox").status_code == 200
    for old in (stolen, copied):
        response = old.get("/inbox")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert login(app.test_client(), "officer", PASSWORD).status_code == 401
    assert login(app.test_client(), "officer", STRONG).status_code == 302


def test_a_password_set_by_an_administrator_ends_the_users_sessions(web, app_for):
    bank, _app = web
    app = app_for(bank.engine, ALLOW_TYPED_PASSWORDS=True)  # where the bank's policy allows typed passwords
    officer, admin = _signed_in(app, "officer"), _signed_in(app, "admin")
    response = post(admin, f"/admin/users/{bank.users['officer']}", {"form": "password", "password": STRONG})
    assert response.status_code == 302
    assert officer.get("/inbox").headers["Location"].startswith("/login")
    assert admin.get("/inbox").status_code == 200


# --- the password policy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["password123", "qwertyuiop1", "1234567890", "officer2024", "张三张三张三张三张三"])
def test_common_and_guessable_passwords_are_refused_with_a_translated_message(web, password):
    _bank, app = web
    client = _signed_in(app, "officer")
    response = _change_password(client, PASSWORD, password)
    assert response.status_code == 400
    assert "密码太容易被猜中" in response.get_data(as_text=True)
    assert login(app.test_client(), "officer", PASSWORD).status_code == 302  # unchanged


def test_a_short_password_is_refused_before_it_is_estimated(web):
    _bank, app = web
    response = _change_password(_signed_in(app, "officer"), PASSWORD, "Xq7#vK2!")
    assert response.status_code == 400 and "密码至少需要 10 个字符" in response.get_data(as_text=True)


def test_a_new_users_own_name_and_username_make_a_weak_password(web, app_for):
    bank, _app = web
    client = _signed_in(app_for(bank.engine, ALLOW_TYPED_PASSWORDS=True), "admin")
    response = post(client, "/admin/users", {**_new_user(bank, username="liwei2024", branch="HO", roles=[]),
                                             "password": "liwei2024!"})
    assert response.status_code == 400 and "密码太容易被猜中" in response.get_data(as_text=True)
    assert _roles(bank, "liwei2024") is None


# --- throttling: per account and per address -------------------------------------------------------------

@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own on the real Redis server; its keys are removed afterwards."""
    redis = pytest.importorskip("redis")
    server = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        server.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis not reachable")
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    keys = list(server.scan_iter(f"{prefix}*"))
    if keys:
        server.delete(*keys)
    server.close()


def _attempt(app, username: str, password: str, address: str, forwarded: str | None = None) -> int:
    """The status of one sign-in from a browser at `address` (optionally through a proxy saying who)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token(client, "/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       headers=headers).status_code


def test_twelve_wrong_passwords_from_twelve_addresses_are_throttled_as_one_account(sqlite_engine, app_for,
                                                                                 redis_prefix):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    workers = [app_for(bank.engine, REDIS_URL=REDIS_URL, LOGIN_THROTTLE_PREFIX=redis_prefix) for _ in range(2)]
    statuses = [_attempt(workers[n % 2], "officer", "wrong-password-1", f"198.51.100.{n + 1}") for n in range(12)]
    assert statuses == [401] * 5 + [429] * 7
    assert _attempt(workers[0], "officer", PASSWORD, "198.51.100.99") == 429  # even right, from a new address
    assert _attempt(workers[1], "chair", PASSWORD, "198.51.100.1") == 302  # the addresses are not blocked


def test_one_address_cannot_lock_everyone_out(sqlite_engine, app_for, redis_prefix):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    app = app_for(bank.engine, REDIS_URL=REDIS_URL, LOGIN_THROTTLE_PREFIX=redis_prefix)
    # ten accounts, two guesses each: the address's limit (20 failures), whatever other staff the bank has
    accounts = [name for name in bank.users if name != "other_member"][:10]
    assert len(accounts) == 10
    sprayed = [_attempt(app, name, guess, "203.0.113.7") for guess in ("Spring2025!", "Summer2025!")
               for name in accounts]
    assert sprayed == [401] * 20
    assert _attempt(app, "other_member", PASSWORD, "203.0.113.7") == 429  # that address waits, for any account
    assert _attempt(app, "officer", PASSWORD, "203.0.113.8") == 302  # the sprayed accounts are not locked
    assert _attempt(app, "other_member", PASSWORD, "192.0.2.1") == 302  # and other addresses sign in


def test_a_right_password_starts_the_accounts_count_afresh_but_not_the_addresss(sqlite_engine, app_for):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    app = app_for(bank.engine, LOGIN_MAX_ADDRESS_FAILURES=6)
    assert [_attempt(app, "officer", "wrong-password-1", "192.0.2.5") for _ in range(4)] == [401] * 4
    assert _attempt(app, "officer", PASSWORD, "192.0.2.5") == 302
    assert [_attempt(app, "officer", "wrong-password-1", "192.0.2.5") for _ in range(3)] == [401, 401, 429]


def test_without_redis_sign_in_is_throttled_in_the_process(sqlite_engine, app_for):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    app = app_for(bank.engine, REDIS_URL="redis://127.0.0.1:9/0")  # nothing listens there
    assert [_attempt(app, "officer", "wrong-password-1", f"198.51.100.{n}") for n in range(6)] == [401] * 5 + [429]
    assert _attempt(app, "chair", PASSWORD, "198.51.100.1") == 302


def test_behind_a_configured_proxy_the_address_is_taken_from_x_forwarded_for(sqlite_engine, app_for):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    app = app_for(bank.engine, PROXY_FIX_X_FOR=1, LOGIN_MAX_ADDRESS_FAILURES=3)
    proxy = "10.0.0.2"  # every request comes from the proxy; the client is the header's last address
    statuses = [_attempt(app, name, "wrong-password-1", proxy, "203.0.113.7") for name in STAFF]
    assert statuses == [401] * 3 + [429]
    assert _attempt(app, "chair", PASSWORD, proxy, "1.2.3.4, 203.0.113.8") == 302


def test_without_a_configured_proxy_x_forwarded_for_is_ignored(sqlite_engine, app_for):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    app = app_for(bank.engine, LOGIN_MAX_ADDRESS_FAILURES=3)
    statuses = [_attempt(app, name, "wrong-password-1", "192.0.2.9", f"203.0.113.{n}")
                for n, name in enumerate(STAFF)]
    assert statuses == [401] * 3 + [429]  # a new header each time, still one address


# --- the session key -------------------------------------------------------------------------------------

def test_in_production_the_app_refuses_to_start_without_a_secret_key_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(MIANZE_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 4
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mianze: SECRET_KEY is not set")


def test_in_production_the_app_starts_with_a_secret_key(tmp_path):
    from workflow import create_app, engine_of
    from workflow.config import ConfigurationError

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app({"MIANZE_ENV": "production", "SECRET_KEY": "", "DATABASE_URL": url})
    app = create_app({"MIANZE_ENV": "production", "SECRET_KEY": "k" * 64, "DATABASE_URL": url})
    engine_of(app).dispose()


def test_a_generated_development_key_is_readable_by_its_owner_only_and_kept(tmp_path):
    from workflow.config import generated_secret

    key_file = tmp_path / "secret_key"
    key = generated_secret(key_file)
    assert len(key) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert generated_secret(key_file) == key
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]
    key_file.chmod(0o644)  # written by an older version
    assert generated_secret(key_file) == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
