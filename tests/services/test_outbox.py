"""The notification outbox: every event of a case's life tells its people, and the worker delivers it after
the commit through a real SMTP server and a real HTTP receiver on 127.0.0.1, with back-off, never twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.factories import drive, make_bank
from tests.servers import RobotReceiver, SMTPServer, free_port
from workflow.db import unit_of_work
from workflow.models import AuditEvent, Branch, Case, Notification, NotificationDelivery, User, utcnow
from workflow.services import outbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def robot():
    with RobotReceiver() as receiver:
        yield receiver


def settings_for(smtp: SMTPServer | None, **kw) -> outbox.OutboxSettings:
    return outbox.OutboxSettings(base_url="https://mianze.bank.test", smtp_host="127.0.0.1" if smtp else None,
                                 smtp_port=smtp.port if smtp else 25, sender="mianze@bank.test",
                                 mail_domain="bank.test", timeout=10, **kw)


def set_up_channels(bank, robot_url: str | None = None, **users) -> None:
    """The T1 branch's robot posts to the receiver; `users`: username → {column: value}."""
    with unit_of_work(bank.engine) as s:
        if robot_url:
            t1 = s.get(Branch, bank.branches["T1"])
            t1.webhook_url = f"{robot_url}/cgi-bin/webhook/send?key=T1-ROBOT-KEY"
            s.add(t1)
        for username, values in users.items():
            u = bank.user(s, username)
            for column, value in values.items():
                setattr(u, column, value)
            s.add(u)


def deliveries(engine) -> list[NotificationDelivery]:
    with Session(engine) as s:
        return list(s.exec(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def case_number(engine, case_id: int) -> str:
    with Session(engine) as s:
        return s.get(Case, case_id).number


def test_a_full_lifecycle_mails_exactly_the_expected_people_and_posts_to_the_branch_robot(bank, smtp, robot):
    set_up_channels(bank, robot.url, chair={"email": "zhou.jiu@mail.bank.test"},
                    reviewer={"notify_mail": False}, member2={"notify_webhook": False})
    case_id = drive(bank, "final")  # the officer appeals; the head office's panel upholds
    number = case_number(bank.engine, case_id)

    run = outbox.deliver(bank.engine, settings_for(smtp))

    def subject(title):
        return f"【尽职免责】{title}：{number}"

    named, assigned, vote = subject("您被列为被评议人，请提交免责陈述"), subject("您被指派调查尽职免责案件"), subject("待您评议表决")
    determined, issued = subject("尽职免责认定已作出"), subject("认定书已出具，请签收")
    window, served = subject("申诉期已开始"), subject("认定书已送达，申诉期开始计算")
    filed, decided = subject("收到申诉，待复核"), subject("申诉复核决定已作出")
    respondent = [named, determined, issued, window, served]
    expected = Counter(
        [("officer@bank.test", s) for s in respondent + [decided]]
        + [("approver@bank.test", s) for s in respondent]  # the reviewer chose no mail
        + [("investigator@bank.test", assigned)]
        + [(f"{m}@bank.test", vote) for m in ("member1", "member2")]
        + [("zhou.jiu@mail.bank.test", s) for s in (vote, filed, decided)]  # the chair's own address
        + [(f"{m}@bank.test", s) for m in ("appeal", "appeal2", "appeal_chair") for s in (filed, vote)])
    assert Counter(smtp.inbox.mails()) == expected
    # Only the T1 branch has a robot: its staff's notices are posted there (member2 chose not to).
    posts = Counter((path, body["markdown"]["content"].split("\n")[0]) for path, body in robot.posts)
    titles = Counter(s.removesuffix(f"：{number}") for s in (
        [named, determined, issued, window, served] + [assigned, vote] + [vote, filed, decided]))
    assert posts == Counter({("/cgi-bin/webhook/send?key=T1-ROBOT-KEY", f"**{t}**"): n for t, n in titles.items()})
    assert all(body["msgtype"] == "markdown" and f"https://mianze.bank.test/cases/{case_id}" in
               body["markdown"]["content"] for _, body in robot.posts)
    assert run.sent == {"mail": sum(expected.values()), "webhook": len(robot.posts)}

    mail = next(m for tos, m in smtp.inbox.received if tos == ["officer@bank.test"] and m["Subject"].strip() == decided)
    text = mail.get_content()
    assert "您对案件" in text and "维持原认定" in text and f"https://mianze.bank.test/cases/{case_id}" in text
    assert mail["Message-ID"].startswith("<mianze.delivery.")
    with Session(bank.engine) as s:
        mailed = s.exec(select(Notification).where(Notification.mailed_at.is_not(None))).all()
    assert len(mailed) == sum(expected.values())

    again = outbox.deliver(bank.engine, settings_for(smtp))  # nothing is sent twice
    assert again.sent == {"mail": 0, "webhook": 0}
    assert len(smtp.inbox.received) == sum(expected.values())
    assert {d.status for d in deliveries(bank.engine)} == {"sent"}


def test_the_users_channel_choices_decide_which_deliveries_are_queued_with_the_notification(bank, robot):
    set_up_channels(bank, robot.url, officer={"notify_mail": False}, reviewer={"notify_webhook": False},
                    approver={"notify_mail": False, "notify_webhook": False})
    drive(bank, "registered")
    with Session(bank.engine) as s:
        queued = {(s.get(User, s.get(Notification, d.notification_id).user_id).username, d.channel)
                  for d in s.exec(select(NotificationDelivery))}
    # The officer's outlet and the reviewer's sub-branch have no robot; the approver's T1 does.
    assert queued == {("reviewer", "mail")}


def test_without_smtp_the_mail_is_skipped_and_says_why(bank):
    drive(bank, "registered")

    run = outbox.deliver(bank.engine, settings_for(None))

    assert (run.skipped, run.sent["mail"]) == (3, 0)
    assert {(d.status, d.last_error) for d in deliveries(bank.engine)} == {
        ("skipped", "mail is not configured (SMTP_HOST)")}


def test_a_failing_robot_is_retried_with_back_off_and_given_up_after_the_last_attempt(bank, robot):
    set_up_channels(bank, robot.url, approver={"notify_webhook": False})
    drive(bank, "investigating")  # of T1's staff, the investigator alone is told: one post
    settings = settings_for(None, max_attempts=3, backoff=60)
    robot.status = 500
    start = utcnow()

    first = outbox.deliver(bank.engine, settings, now=start)
    [row] = [d for d in deliveries(bank.engine) if d.channel == "webhook"]
    assert (first.retried, row.status, row.attempts, row.last_error) == (1, "pending", 1, "HTTP 500")
    assert row.next_attempt_at == start + timedelta(seconds=60)

    assert outbox.deliver(bank.engine, settings, now=start + timedelta(seconds=59)).retried == 0  # not due yet
    outbox.deliver(bank.engine, settings, now=start + timedelta(seconds=61))
    [row] = [d for d in deliveries(bank.engine) if d.channel == "webhook"]
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 2, start + timedelta(seconds=61 + 120))
    last = outbox.deliver(bank.engine, settings, now=start + timedelta(seconds=182))
    [row] = [d for d in deliveries(bank.engine) if d.channel == "webhook"]
    assert (last.failed, row.status, row.attempts) == (1, "failed", 3)
    assert len(robot.posts) == 3
    assert outbox.deliver(bank.engine, settings, now=start + timedelta(days=1)).to_dict()["failed"] == 0

    with unit_of_work(bank.engine) as s:  # a head-office administrator sends it again once the robot is back
        [shown] = outbox.failed(s, bank.user(s, "admin"))
        assert (shown["user"].username, shown["delivery"].last_error) == ("investigator", "HTTP 500")
        outbox.resend(s, bank.user(s, "admin"), row.id)
    robot.status = 200
    assert outbox.deliver(bank.engine, settings).sent["webhook"] == 1
    assert [d.status for d in deliveries(bank.engine) if d.channel == "webhook"] == ["sent"]
    with Session(bank.engine) as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.event == "resend_notification")).all()
    assert (event.payload["channel"], event.payload["attempts"]) == ("webhook", 3)


def test_a_refused_recipient_fails_at_once_and_an_unreachable_server_is_tried_again(bank, smtp):
    drive(bank, "registered")  # officer, reviewer and approver are told
    smtp.inbox.refuse = {"reviewer@bank.test"}

    run = outbox.deliver(bank.engine, settings_for(smtp))

    by_user = {}
    with Session(bank.engine) as s:
        for d in s.exec(select(NotificationDelivery)):
            by_user[s.get(User, s.get(Notification, d.notification_id).user_id).username] = d
    assert (run.sent["mail"], run.failed) == (2, 1)
    assert (by_user["reviewer"].status, by_user["reviewer"].attempts) == ("failed", 1)
    assert "550" in by_user["reviewer"].last_error



def test_an_smtp_server_that_cannot_be_reached_costs_an_attempt_and_the_mail_is_tried_later(bank):
    drive(bank, "registered")
    down = settings_for(None, backoff=60)
    down = outbox.OutboxSettings(**{**down.__dict__, "smtp_host": "127.0.0.1", "smtp_port": free_port()})

    run = outbox.deliver(bank.engine, down)

    assert (run.retried, run.sent["mail"]) == (3, 0)
    rows = deliveries(bank.engine)
    assert all(d.status == "pending" and d.attempts == 1 and d.claim is None and "cannot connect" in d.last_error
               for d in rows)


def test_killing_the_worker_mid_delivery_and_restarting_it_sends_nothing_twice(sqlite_engine, sqlite_url, smtp):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "determined")  # 10 notices: named and invited ×3, assigned, vote ×3, determined ×3
    number = case_number(bank.engine, case_id)
    smtp.inbox.slow = "member1@bank.test"  # its server answers late: the worker is killed while waiting
    env = {**os.environ, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test-secret", "MIANZE_SMTP_HOST": "127.0.0.1",
           "MIANZE_SMTP_PORT": str(smtp.port), "MIANZE_SMTP_FROM": "mianze@bank.test",
           "MIANZE_SMTP_MAIL_DOMAIN": "bank.test", "MIANZE_OUTBOX_LEASE": "1"}
    command = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "notifications", "deliver"]

    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert smtp.inbox.entered.wait(60), worker.communicate(timeout=5)
    worker.kill()  # SIGKILL, mid-delivery: the message was accepted, its answer never read
    worker.communicate(timeout=10)  # reaped, its pipes closed
    before = smtp.inbox.mails()
    assert ("member1@bank.test", f"【尽职免责】待您评议表决：{number}") in before and len(before) < 10
    smtp.inbox.slow = None
    time.sleep(1.2)  # the dead worker's claim is older than the lease now

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert again.returncode == 0, again.stderr
    received = smtp.inbox.mails()
    assert len(received) == 10 and len(set(received)) == 10  # every notice exactly once, none twice
    statuses = Counter(d.status for d in deliveries(bank.engine))
    assert statuses == {"sent": 9, "failed": 1}
    [interrupted] = [d for d in deliveries(bank.engine) if d.status == "failed"]
    assert interrupted.target == "member1@bank.test" and "interrupted" in interrupted.last_error
    assert '"interrupted": 1' in again.stdout


def test_with_redis_each_commit_that_queued_mail_enqueues_a_delivery_job_an_rq_worker_runs(sqlite_engine, sqlite_url,
                                                                                           smtp):
    redis = pytest.importorskip("redis")
    from rq import Queue

    from workflow.services import notifications

    url = os.environ.get("MIANZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not running at {url} (.ci/run starts it)")
    queue = f"mianze-test-{os.getpid()}-{time.monotonic_ns()}"
    notifications.dispatch_through_rq(sqlite_engine, url, queue)  # as create_app does with REDIS_URL
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "registered")  # the respondents are named: each is told, by mail too
    number = case_number(sqlite_engine, case_id)
    jobs = Queue(queue, connection=redis.Redis.from_url(url))
    assert jobs.count >= 1 and all(j.func_name == notifications.JOB_FUNCTION for j in jobs.jobs)
    assert {d.status for d in deliveries(sqlite_engine)} == {"pending"}  # nothing left before a worker ran

    env = {**os.environ, "DATABASE_URL": sqlite_url, "REDIS_URL": url, "MIANZE_JOBS_QUEUE": queue,
           "FLASK_APP": "wsgi", "MIANZE_SMTP_HOST": "127.0.0.1", "MIANZE_SMTP_PORT": str(smtp.port),
           "MIANZE_SMTP_FROM": "mianze@bank.test", "MIANZE_SMTP_MAIL_DOMAIN": "bank.test"}
    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "jobs", "worker", "--burst"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    subject = f"【尽职免责】您被列为被评议人，请提交免责陈述：{number}"
    assert sorted(smtp.inbox.mails()) == [("approver@bank.test", subject), ("officer@bank.test", subject),
                                          ("reviewer@bank.test", subject)]
    assert {d.status for d in deliveries(sqlite_engine) if d.channel == "mail"} == {"sent"}
    assert jobs.count == 0
    assert outbox.deliver(sqlite_engine, settings_for(smtp)).sent == {"mail": 0, "webhook": 0}  # never twice
