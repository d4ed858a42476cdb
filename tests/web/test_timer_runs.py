"""The deadline timer's run history: every run is recorded (cron, the app's timer thread, an administrator's
"run now"), and administrators are warned when it has not run for a day."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from tests.factories import make_bank
from tests.web.support import login, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import TimerRun
from workflow.services import jobs


@pytest.fixture
def bank(sqlite_engine):
    bank = make_bank(sqlite_engine)
    set_passwords(sqlite_engine)
    return bank


def signed_in(app, username: str):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def test_each_run_is_recorded_with_what_started_it_and_what_it_did(bank):
    jobs.tick(bank.engine)
    jobs.tick(bank.engine, started_by="timer")
    with unit_of_work(bank.engine) as s:
        runs = jobs.timer_runs(s)
        assert [r.trigger for r in runs] == ["timer", "cron"]
        assert all(r.ok and r.summary["errors"] == [] and r.finished_at >= r.started_at for r in runs)
        status = jobs.timer_status(s)
        assert status["last"].id == runs[0].id and not status["stale"] and status["runs"] == 2
        assert jobs.timer_status(s, datetime.now(UTC) + timedelta(days=1, minutes=1))["stale"]


def test_administrators_are_warned_when_the_timer_never_ran_or_ran_more_than_a_day_ago(bank, app_for):
    app = app_for(bank.engine)
    admin = signed_in(app, "admin")
    page = admin.get("/admin/").get_data(as_text=True)
    assert 'id="timer-stale"' in page and "期限计时器从未运行" in page
    assert 'id="timer-stale"' in admin.get("/dashboard/").get_data(as_text=True)
    with unit_of_work(bank.engine) as s:
        old = datetime.now(UTC) - timedelta(days=2)
        s.add(TimerRun(started_at=old, finished_at=old, trigger="cron", day=old.date(), ok=True, summary={}))
    page = admin.get("/admin/").get_data(as_text=True)
    assert "已超过一天" in page
    jobs.tick(bank.engine)
    page = admin.get("/admin/").get_data(as_text=True)
    assert 'id="timer-stale"' not in page and "最近运行" in page
    chair = signed_in(app, "chair")  # not an administrator: no warning on the dashboard
    assert 'id="timer-stale"' not in chair.get("/dashboard/").get_data(as_text=True)


def test_a_head_office_administrator_runs_the_timer_now_and_sees_the_run(bank, app_for):
    app = app_for(bank.engine)
    admin = signed_in(app, "admin")
    done = post(admin, "/admin/timer")
    assert done.status_code == 302
    page = admin.get("/admin/timer").get_data(as_text=True)
    assert "计时器已运行" in page and "管理员手动运行" in page and 'id="run-timer"' in page
    with unit_of_work(bank.engine) as s:
        assert [r.trigger for r in s.exec(select(TimerRun))] == ["admin"]


def test_a_branch_administrator_sees_the_runs_but_may_not_start_one(bank, app_for):
    with unit_of_work(bank.engine) as s:
        from workflow.models import User

        u = s.get(User, bank.users["other_member"])  # a tier-1 branch's administrator
        u.roles = "admin"
        s.add(u)
    app = app_for(bank.engine)
    branch_admin = signed_in(app, "other_member")
    page = branch_admin.get("/admin/timer")
    assert page.status_code == 200 and 'id="run-timer"' not in page.get_data(as_text=True)
    refused = post(branch_admin, "/admin/timer")
    assert refused.status_code == 403 and "只有总行管理员可以运行期限计时器" in refused.get_data(as_text=True)
    with unit_of_work(bank.engine) as s:
        assert s.exec(select(TimerRun)).all() == []


def test_the_embedded_timer_runs_in_the_serving_process_from_its_first_request(bank, app_for):
    app = app_for(bank.engine, TIMER_INTERVAL=3600, TESTING=False)
    assert "mianze.timer" not in app.extensions  # building the app (as the command line does) never ticks
    app.test_client().get("/login")
    thread = app.extensions["mianze.timer"]
    try:
        for _ in range(100):
            with unit_of_work(bank.engine) as s:
                runs = s.exec(select(TimerRun)).all()
            if runs:
                break
            clock.sleep(0.1)
        assert [r.trigger for r in runs] == ["timer"]
        app.test_client().get("/login")
        assert app.extensions["mianze.timer"] is thread  # one timer per process
    finally:
        thread.stop()
        thread.join(10)
