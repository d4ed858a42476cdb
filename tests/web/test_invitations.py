"""Invitations: a new member of staff sets their own first password from a one-time link, mailed through the
notification outbox (a real SMTP server on loopback) and shown once to the administrator; a used, expired or
withdrawn link gets a clear page; administrators send new ones and revoke them; typed passwords only where the
bank's policy allows them."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from sqlmodel import Session, select

from tests.servers import SMTPServer
from tests.web.support import login, post, set_passwords
from workflow.models import AuditEvent, Invitation, NotificationDelivery, User, utcnow
from workflow.services import outbox

STRONG = "plum-orbit-canvas-7"
LINK = re.compile(r'id="invitation-link" readonly value="([^"]+)"')


def _admin(bank, app):
    set_passwords(bank.engine)
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


def _events(engine, *names) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event.in_(names)).order_by(AuditEvent.seq)))


def _user(engine, username: str) -> User:
    with Session(engine) as s:
        return s.exec(select(User).where(User.username == username)).one()


def _invite_new(bank, admin, username="liu.yang", email="liu.yang@mail.bank.test") -> str:
    response = post(admin, "/admin/users", {"username": username, "name": "刘洋", "employee_no": f"N-{username}",
                                            "branch_id": str(bank.branches["OU"]), "roles": ["credit_officer"],
                                            "email": email, "locale": "zh"})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    page = response.get_data(as_text=True)
    assert "已创建用户并发出设置密码的邀请" in page
    return LINK.search(page).group(1)


def _path(link: str) -> str:
    return link.split("127.0.0.1:5000", 1)[1] if "127.0.0.1:5000" in link else "/" + link.split("/", 3)[3]


def test_an_invitee_follows_the_mailed_link_sets_a_password_is_signed_in_and_the_link_works_once(bank, app_for):
    app = app_for(bank.engine, BASE_URL="https://mianze.bank.test")
    admin = _admin(bank, app)
    link = _invite_new(bank, admin)
    assert link.startswith("https://mianze.bank.test/invite/")
    token = link.rsplit("/", 1)[1]
    # created and invited in one transaction: the two events follow each other; the token is in neither
    created, invited = _events(bank.engine, "create_user", "invite_user")
    assert invited.seq == created.seq + 1 and created.payload["password"] == "invitation"
    assert token not in str(invited.payload) and token not in str(created.payload)
    with Session(bank.engine) as s:
        row = s.exec(select(Invitation)).one()
        assert row.token_hash != token and token not in (row.salt, row.token_hash)  # only its hash is kept

    with SMTPServer() as smtp:
        settings = outbox.OutboxSettings.from_config({**app.config, "SMTP_HOST": "127.0.0.1",
                                                      "SMTP_PORT": smtp.port})
        run = outbox.deliver(bank.engine, settings)
        assert run.sent["mail"] == 1
        [(to, subject)] = smtp.inbox.mails()
        body = smtp.inbox.received[0][1].get_body(("plain",)).get_content()
    assert to == "liu.yang@mail.bank.test" and "请设置密码" in subject
    assert link in body and "liu.yang" in body and "只能使用一次" in body  # the same link as shown to the admin

    invitee = app.test_client()
    form = invitee.get(_path(link))
    assert form.status_code == 200 and "设置密码" in form.get_data(as_text=True) and "刘洋" in form.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True)).group(1)
    weak = invitee.post(_path(link), data={"csrf_token": csrf, "password": "password123", "password_again": "password123"})
    assert weak.status_code == 400 and "密码太容易被猜中" in weak.get_data(as_text=True)
    done = invitee.post(_path(link), data={"csrf_token": csrf, "password": STRONG, "password_again": STRONG})
    assert done.status_code == 302 and done.headers["Location"] == "/inbox"
    inbox = invitee.get("/inbox")
    assert inbox.status_code == 200 and "刘洋" in inbox.get_data(as_text=True)  # signed in
    [accepted] = _events(bank.engine, "accept_invitation")
    assert accepted.actor_id == _user(bank.engine, "liu.yang").id
    assert login(app.test_client(), "liu.yang", STRONG).status_code == 302  # the password is theirs now

    again = app.test_client().get(_path(link))
    assert again.status_code == 410 and "已被使用" in again.get_data(as_text=True)
    stranger = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', stranger.get("/login").get_data(as_text=True)).group(1)
    reused = stranger.post(_path(link), data={"csrf_token": csrf, "password": "another-plum-orbit-9",
                                              "password_again": "another-plum-orbit-9"})
    assert reused.status_code == 410
    assert login(app.test_client(), "liu.yang", STRONG).status_code == 302  # unchanged by the reuse
    assert app.test_client().get("/invite/not-a-real-token").status_code == 404


def test_an_expired_link_is_refused_and_its_mail_is_not_sent(bank, app_for):
    app = app_for(bank.engine)
    admin = _admin(bank, app)
    link = _invite_new(bank, admin)
    with Session(bank.engine) as s:  # three days go by
        row = s.exec(select(Invitation)).one()
        row.expires_at = utcnow() - timedelta(minutes=1)
        s.add(row)
        s.commit()
    page = app.test_client().get(_path(link))
    assert page.status_code == 410 and "已过期" in page.get_data(as_text=True)
    with SMTPServer() as smtp:
        settings = outbox.OutboxSettings.from_config({**app.config, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp.port})
        assert outbox.deliver(bank.engine, settings).skipped == 1
        assert smtp.inbox.mails() == []
    user_id = _user(bank.engine, "liu.yang").id
    status = admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert 'data-status="expired"' in status


def test_an_administrator_sends_a_new_invitation_and_revokes_it(bank, app_for):
    app = app_for(bank.engine)
    admin = _admin(bank, app)
    first = _invite_new(bank, admin)
    user_id = _user(bank.engine, "liu.yang").id
    resent = post(admin, f"/admin/users/{user_id}/invite")
    assert resent.status_code == 200
    second = LINK.search(resent.get_data(as_text=True)).group(1)
    assert second != first
    withdrawn = app.test_client().get(_path(first))
    assert withdrawn.status_code == 410 and "已被撤回" in withdrawn.get_data(as_text=True)
    assert app.test_client().get(_path(second)).status_code == 200
    assert post(admin, f"/admin/users/{user_id}/invite/revoke").status_code == 302
    assert app.test_client().get(_path(second)).status_code == 410
    assert 'data-status="revoked"' in admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert [e.event for e in _events(bank.engine, "invite_user", "resend_invitation", "revoke_invitation")] == [
        "invite_user", "resend_invitation", "revoke_invitation"]
    again = post(admin, f"/admin/users/{user_id}/invite/revoke")  # nothing open: said, nothing changes
    assert again.status_code == 302 and len(_events(bank.engine, "revoke_invitation")) == 1


def test_the_new_staff_of_an_hr_import_are_invited_in_the_same_transaction(bank, app_for):
    app = app_for(bank.engine)
    admin = _admin(bank, app)
    data = ("employee_no,username,name,branch,roles,active\n"
            "H1,hr1,员工一,OU,credit_officer,yes\nH2,hr2,员工二,SB,credit_officer,yes\n"
            "H3,hr3,员工三,SB,credit_officer,no\n").encode()
    response = post(admin, "/admin/users/import", {"file": (io.BytesIO(data), "hr.csv")},
                    content_type="multipart/form-data")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    links = page.split('id="invitation-links"', 1)[1].split("</textarea>", 1)[0]
    assert "hr1\t员工一\thttp" in links and "hr2\t" in links and "hr3" not in links  # an inactive one is not invited
    with Session(bank.engine) as s:
        assert len(s.exec(select(Invitation)).all()) == 2
        assert len(s.exec(select(NotificationDelivery).where(NotificationDelivery.channel == "mail")).all()) == 2
    imported, invited = _events(bank.engine, "import_staff", "invite_users")
    assert invited.seq == imported.seq + 1 and invited.payload["count"] == 2


def test_typed_passwords_only_where_the_banks_policy_allows_them(bank, app_for):
    form = {"username": "typed1", "name": "王明", "employee_no": "N-typed1", "branch_id": str(bank.branches["OU"]),
            "roles": ["credit_officer"], "password": STRONG, "locale": "zh"}
    app = app_for(bank.engine)
    admin = _admin(bank, app)
    assert 'id="password"' not in admin.get("/admin/users").get_data(as_text=True)
    refused = post(admin, "/admin/users", form)
    assert refused.status_code == 403 and "邀请" in refused.get_data(as_text=True)
    with Session(bank.engine) as s:
        assert s.exec(select(User).where(User.username == "typed1")).first() is None
    officer = bank.users["officer"]
    assert post(admin, f"/admin/users/{officer}", {"form": "password", "password": STRONG}).status_code == 403

    allowing = app_for(bank.engine, ALLOW_TYPED_PASSWORDS=True)
    admin = allowing.test_client()
    login(admin, "admin")
    assert 'id="password"' in admin.get("/admin/users").get_data(as_text=True)
    assert post(admin, "/admin/users", form).status_code == 302
    assert login(allowing.test_client(), "typed1", STRONG).status_code == 302
    with Session(bank.engine) as s:
        assert s.exec(select(Invitation)).all() == []


def test_only_an_administrator_of_the_persons_subtree_invites_them(bank, app_for):
    with Session(bank.engine) as s:
        s.add(User(username="t2_admin", name="二分行管理员", employee_no="E9002", branch_id=bank.branches["T2"],
                   roles="admin"))
        s.commit()
    app = app_for(bank.engine)
    set_passwords(bank.engine)
    officer = bank.users["officer"]  # at outlet OU, below T1
    for name in ("t2_admin", "chair"):
        client = app.test_client()
        login(client, name)
        assert post(client, f"/admin/users/{officer}/invite").status_code == 403, name
    with Session(bank.engine) as s:
        assert s.exec(select(Invitation)).all() == []
    assert _events(bank.engine, "invite_user", "resend_invitation") == []
