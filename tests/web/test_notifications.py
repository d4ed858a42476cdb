"""In-app notifications: overdue work reaches the people concerned and shows in their navigation."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import TODAY, drive
from tests.web.support import login, post, set_passwords
from workflow.services import jobs


def test_an_overdue_investigation_notifies_the_investigator_who_can_read_and_dismiss_it(sqlite_engine, app_for):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    drive(bank, "investigating")
    jobs.tick(bank.engine, today=TODAY + timedelta(days=60))
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, "investigator")
    page = client.get("/notifications").get_data(as_text=True)
    assert "已逾期" in page and "您被指派调查案件" in page  # told when assigned, and when overdue
    assert 'id="nav-unread">2<' in page
    assert post(client, "/notifications/read").status_code == 302
    assert 'id="nav-unread">0<' in client.get("/notifications").get_data(as_text=True)
    other = app_for(bank.engine).test_client()
    login(other, "officer")
    assert "已逾期" not in other.get("/notifications").get_data(as_text=True)


def test_the_case_page_shows_the_current_deadline_with_working_days_left_and_its_basis(sqlite_engine, app_for):
    from sqlmodel import Session

    from tests.factories import make_bank
    from workflow.models import Case

    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "investigating")
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, "investigator")
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    with Session(bank.engine) as s:
        due = s.get(Case, case_id).due_date
    assert f"{due.year}年{due.month}月{due.day}日" in page
    assert "剩余 20 个工作日" in page
    assert "银行内部政策默认期限" in page


def test_sign_ins_failed_attempts_and_sign_outs_are_in_the_access_log(sqlite_engine, app_for):
    from sqlmodel import Session, select

    from tests.factories import make_bank
    from workflow.models import AccessLog

    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    assert login(client, "chair", "wrong-password").status_code == 401
    assert login(client, "chair").status_code == 302
    assert post(client, "/logout").status_code == 302
    with Session(bank.engine) as s:
        rows = [(a.action, a.target, a.username) for a in s.exec(select(AccessLog).order_by(AccessLog.id))]
    assert rows == [("sign_in_failed", "chair", "system"), ("sign_in", "chair", "chair"), ("sign_out", "chair", "chair")]
