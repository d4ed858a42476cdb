"""The outbox's pages: a user chooses their channels on the profile page, an administrator sets a branch's
企业微信 robot, and head-office administrators see failed deliveries and send one again."""

from __future__ import annotations

from sqlmodel import Session, select

from tests.factories import drive, make_bank
from tests.servers import RobotReceiver
from tests.web.support import login, post, set_passwords
from workflow.models import AuditEvent, Branch, Notification, NotificationDelivery, User
from workflow.services import outbox


def _queued(engine, username: str) -> set[str]:
    with Session(engine) as s:
        user_id = s.exec(select(User.id).where(User.username == username)).one()
        return {d.channel for d in s.exec(select(NotificationDelivery).join(
            Notification, Notification.id == NotificationDelivery.notification_id).where(Notification.user_id == user_id))}


def test_a_user_chooses_mail_to_their_own_address_and_not_the_branch_group_on_the_profile_page(sqlite_engine, app_for):
    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    admin = app.test_client()
    login(admin, "admin")
    t1 = bank.branches["T1"]
    assert post(admin, f"/admin/branches/{t1}/webhook",
                {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcd-secret-key"}).status_code == 302
    page = admin.get("/admin/branches").get_data(as_text=True)
    assert "key=abcd…" in page and "secret-key" not in page  # the robot's key is a secret
    with Session(bank.engine) as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.event == "set_branch_webhook")).all()
    assert "secret" not in str(event.payload)

    approver = app.test_client()
    login(approver, "approver")  # a T1 credit officer: a respondent once a case is opened
    page = approver.get("/account").get_data(as_text=True)
    assert "个人设置" in page and 'name="notify_mail" value="1" checked' in page
    bad = post(approver, "/account", {"email": "not-an-address", "notify_mail": "1"})
    assert bad.status_code == 400 and "邮箱地址格式不正确" in bad.get_data(as_text=True)
    assert post(approver, "/account", {"email": "wang.wu@mail.bank.test", "notify_mail": "1"}).status_code == 302
    with Session(bank.engine) as s:
        me = s.exec(select(User).where(User.username == "approver")).one()
    assert (me.email, me.notify_mail, me.notify_webhook) == ("wang.wu@mail.bank.test", True, False)

    drive(bank, "registered")  # the approver is named as a respondent

    assert _queued(bank.engine, "approver") == {"mail"}
    assert _queued(bank.engine, "officer") == {"mail"}  # the officer's outlet has no robot


def test_head_office_administrators_see_a_failed_delivery_and_send_it_again(sqlite_engine, app_for):
    bank = make_bank(sqlite_engine)
    with RobotReceiver() as robot, Session(bank.engine) as s:
        branch = s.get(Branch, bank.branches["T1"])
        branch.webhook_url = f"{robot.url}/cgi-bin/webhook/send?key=K"
        s.add(branch)
        s.add(User(username="t1_admin", name="分行管理员", employee_no="E9001", branch_id=branch.id, roles="admin"))
        s.commit()
        drive(bank, "investigating")
        robot.status = 500
        settings = outbox.OutboxSettings(max_attempts=1)
        assert outbox.deliver(bank.engine, settings).failed == 2  # the approver (named), the investigator
        set_passwords(bank.engine)
        app = app_for(bank.engine)
        admin = app.test_client()
        login(admin, "admin")

        page = admin.get("/admin/notifications").get_data(as_text=True)
        assert "赵六" in page and "HTTP 500" in page and "您被指派调查尽职免责案件" in page
        assert "失败：2" in page
        with Session(bank.engine) as s2:
            failed = s2.exec(select(NotificationDelivery).where(NotificationDelivery.status == "failed")).all()
        for d in failed:
            assert post(admin, f"/admin/notifications/{d.id}/resend").status_code == 302
        robot.status = 200
        assert outbox.deliver(bank.engine, settings).sent["webhook"] == 2
        assert post(admin, f"/admin/notifications/{failed[0].id}/resend").status_code == 302  # no longer failed
        assert "只有失败的投递可以重新发送" in admin.get("/admin/notifications").get_data(as_text=True)

        branch_admin = app.test_client()  # an administrator outside head office: the bank's deliveries are not theirs
        login(branch_admin, "t1_admin")
        assert branch_admin.get("/admin/notifications").status_code == 403
        assert post(branch_admin, f"/admin/notifications/{failed[0].id}/resend").status_code == 403
        assert "失败的通知" not in branch_admin.get("/admin/").get_data(as_text=True)
        member = app.test_client()
        login(member, "member1")
        assert member.get("/admin/notifications").status_code == 403
        assert post(member, "/account", {"notify_mail": "1"}).status_code == 302  # everyone sets their own
