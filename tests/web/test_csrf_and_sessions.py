"""CSRF protection, sessions and sign-in throttling."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from tests.factories import drive
from tests.web.support import PASSWORD, csrf_token, login, post, set_passwords
from workflow.models import AuditHead, Case, User

ARGUMENT_VALUES = {"stage": "pre_loan", "step": "return", "day": "2030-01-01"}


def _post_urls(app) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith("/api/"):
            continue
        values = {arg: ARGUMENT_VALUES.get(arg, 1) for arg in rule.arguments}
        urls.append(rule.rule if not rule.arguments else app.url_map.bind("localhost").build(
            rule.endpoint, values))
    return sorted(set(urls))


@pytest.fixture
def web(bank, app_for):
    set_passwords(bank.engine)
    return bank, app_for(bank.engine)


def test_every_post_without_a_csrf_token_is_refused_and_changes_nothing(web):
    bank, app = web
    case_id = drive(bank, "under_review")
    client = app.test_client()
    login(client, "chair")
    with Session(bank.engine) as s:
        before = (s.get(AuditHead, 1).seq, s.get(Case, case_id).version)
        version = s.get(Case, case_id).version
    urls = _post_urls(app)
    assert len(urls) >= 25
    for url in urls:
        response = client.post(url.replace("/cases/1/", f"/cases/{case_id}/"),
                               data={"expected_version": str(version), "reason": "x", "locale": "en"})
        assert response.status_code == 400, url
    with Session(bank.engine) as s:
        assert (s.get(AuditHead, 1).seq, s.get(Case, case_id).version) == before


def test_a_token_from_another_session_is_refused(web):
    bank, app = web
    first, second = app.test_client(), app.test_client()
    login(first, "chair")
    stolen = csrf_token(second, "/login")
    assert first.post("/language", data={"csrf_token": stolen, "locale": "en"}).status_code == 400


def test_signing_in_sets_a_fresh_http_only_same_site_session_cookie(web):
    _bank, app = web
    client = app.test_client()
    response = login(client, "officer")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/inbox").status_code == 200


def test_a_session_slides_its_cookie_is_renewed_every_few_minutes_not_with_every_page(web):
    _bank, app = web
    client = app.test_client()
    login(client, "officer")
    client.get("/inbox")  # the first page stores the CSRF secret
    assert all("Set-Cookie" not in client.get(path).headers for path in ("/inbox", "/inbox?tab=all"))
    with client.session_transaction() as sess:  # as if the cookie was last renewed six minutes ago
        sess["_renewed"] -= 360
    renewed = client.get("/inbox")
    assert _expires_in(renewed.headers["Set-Cookie"]) == pytest.approx(8 * 3600, abs=120)  # 8 hours again
    assert "Set-Cookie" not in client.get("/inbox").headers


def _expires_in(cookie: str) -> float:
    """Seconds from now until the Expires of a mianze_session Set-Cookie header."""
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    assert cookie.startswith("mianze_session=")
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    return (expires - datetime.now(UTC)).total_seconds()


def test_a_session_lasts_eight_hours_not_flasks_default_of_a_month(web):
    _bank, app = web
    response = login(app.test_client(), "officer")
    assert _expires_in(response.headers["Set-Cookie"]) == pytest.approx(8 * 3600, abs=120)


def test_secure_cookies_are_marked_secure_when_configured(bank, app_for):
    set_passwords(bank.engine)
    app = app_for(bank.engine, SESSION_COOKIE_SECURE=True)
    response = login(app.test_client(), "officer")
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_password_is_refused_with_a_message(web):
    _bank, app = web
    client = app.test_client()
    response = login(client, "officer", "wrong-password-1")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)
    assert client.get("/inbox").status_code == 302


def test_an_inactive_user_cannot_sign_in(web):
    bank, app = web
    from workflow.db import unit_of_work

    with unit_of_work(bank.engine) as s:
        u = s.get(User, bank.users["officer"])
        u.active = False
        s.add(u)
    assert login(app.test_client(), "officer").status_code == 401


def test_after_five_failures_even_the_right_password_must_wait(web):
    _bank, app = web
    client = app.test_client()
    for _ in range(5):
        assert login(client, "officer", "wrong-password-1").status_code == 401
    response = login(client, "officer", PASSWORD)
    assert response.status_code == 429
    assert "分钟后再试" in response.get_data(as_text=True)
    assert login(app.test_client(), "chair").status_code == 302  # other accounts are not affected


def test_login_throttling_uses_redis_when_configured(bank, app_for):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis not reachable")
    set_passwords(bank.engine)
    prefix = f"test-{uuid.uuid4().hex}:"
    first = app_for(bank.engine, REDIS_URL="redis://127.0.0.1:6379/0", LOGIN_THROTTLE_PREFIX=prefix)
    second = app_for(bank.engine, REDIS_URL="redis://127.0.0.1:6379/0", LOGIN_THROTTLE_PREFIX=prefix)
    for _ in range(5):
        login(first.test_client(), "officer", "wrong-password-1")
    assert login(second.test_client(), "officer").status_code == 429  # shared by every worker
    first.extensions["mianze.login_throttle"].succeeded("officer", "127.0.0.1")


def test_signing_out_ends_the_session(web):
    _bank, app = web
    client = app.test_client()
    login(client, "officer")
    assert post(client, "/logout").status_code == 302
    assert client.get("/inbox").status_code == 302


def test_the_sign_in_page_never_redirects_to_another_site(web):
    _bank, app = web
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/login?next=https://evil.example/", data={"username": "officer", "password": PASSWORD,
                                                                      "csrf_token": token})
    assert response.headers["Location"] == "/inbox"


def test_passwords_are_stored_as_argon2id_hashes(web):
    bank, _app = web
    with Session(bank.engine) as s:
        hashes = s.exec(select(User.password_hash)).all()
    assert all(h.startswith("$argon2id$") for h in hashes)
