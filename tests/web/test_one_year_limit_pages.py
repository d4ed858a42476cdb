"""The one-year limit and 督办 in the browser's pages and the API: the case page's days left, the inbox's
and the dashboard's lists of cases near or past the limit, the urge form, and POST /cases/{id}/urges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import select

from tests.api.conftest import build_api
from tests.factories import TODAY, drive, make_bank
from tests.web.support import login, post, set_passwords, version_of
from workflow import engine_of
from workflow.db import unit_of_work
from workflow.models import AuditEvent, Case, Notification, User


@pytest.fixture
def bank(sqlite_engine):
    bank = make_bank(sqlite_engine, n_loans=2, loans_per_enterprise=1)
    set_passwords(sqlite_engine)
    return bank


def opened_days_ago(bank, case_id: int, days: int, **values) -> None:
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        case.opened_at = datetime.combine(TODAY - timedelta(days=days), time(9, 0), UTC)
        for name, value in values.items():
            setattr(case, name, value)
        s.add(case)


def signed_in(app, username: str):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def test_the_case_page_shows_the_days_left_to_the_one_year_limit(bank, app_for):
    app = app_for(bank.engine)
    fresh = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    old = drive(bank, "investigating", loan_ids=[bank.loans[1]])
    opened_days_ago(bank, old, 398)
    client = signed_in(app, "chair")
    page = client.get(f"/cases/{fresh}").get_data(as_text=True)
    assert "一年办理时限" in page and "剩余 365 天" in page
    page = client.get(f"/cases/{old}").get_data(as_text=True)
    assert "已超过 33 天" in page and 'id="one-year" class="overdue"' in page


def test_the_inbox_and_the_dashboard_list_the_cases_past_the_limit(bank, app_for):
    app = app_for(bank.engine)
    past = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    fresh = drive(bank, "investigating", loan_ids=[bank.loans[1]])
    opened_days_ago(bank, past, 398)
    with unit_of_work(bank.engine) as s:
        number, fresh_number = s.get(Case, past).number, s.get(Case, fresh).number
    chair = signed_in(app, "chair")
    inbox = chair.get("/inbox?tab=limit").get_data(as_text=True)
    assert number in inbox and fresh_number not in inbox and "已超过 33 天" in inbox
    dashboard = chair.get("/dashboard/").get_data(as_text=True)
    section = dashboard[dashboard.index('id="one-year-limit"'):]
    assert number in section and fresh_number not in section and "已超过 33 天" in section
    other = signed_in(app, "other_member")  # another tier-1 branch: not in its scope
    assert number not in other.get("/inbox?tab=limit").get_data(as_text=True)
    english = signed_in(app, "auditor")
    with unit_of_work(bank.engine) as s:
        s.get(User, bank.users["auditor"]).locale = "en"
    assert "past by 33 days" in english.get("/inbox?tab=limit").get_data(as_text=True)


def test_the_chair_urges_an_overdue_step_and_the_investigator_reads_it(bank, app_for):
    app = app_for(bank.engine)
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    opened_days_ago(bank, case_id, 30, due_date=TODAY - timedelta(days=3))
    chair = signed_in(app, "chair")
    assert 'id="action-urge"' in chair.get(f"/cases/{case_id}").get_data(as_text=True)
    form = chair.get(f"/cases/{case_id}/urge").get_data(as_text=True)
    assert "赵六" in form  # sent to the investigator, whose step it is
    version = version_of(bank.engine, case_id)
    empty = post(chair, f"/cases/{case_id}/urge", {"message": " ", "version": version})
    assert empty.status_code == 400 and "请填写督办意见" in empty.get_data(as_text=True)
    done = post(chair, f"/cases/{case_id}/urge", {"message": "请本周内提交调查报告。", "version": version})
    assert done.status_code == 302
    page = chair.get(done.headers["Location"]).get_data(as_text=True)
    assert "督办意见：请本周内提交调查报告。" in re.sub(r"<[^>]+>", "", page).replace(": ", "：")
    assert version_of(bank.engine, case_id) == version
    investigator = signed_in(app, "investigator")
    inbox = investigator.get("/notifications").get_data(as_text=True)
    assert "请本周内提交调查报告。" in inbox and "督办" in inbox


def test_the_urge_form_refuses_who_may_not_urge_and_what_cannot_be_urged(bank, app_for):
    app = app_for(bank.engine)
    case_id = drive(bank, "investigating", loan_ids=[bank.loans[0]])
    member = signed_in(app, "member1")
    refused = member.get(f"/cases/{case_id}/urge")
    assert refused.status_code == 403 and "督办" in refused.get_data(as_text=True)
    chair = signed_in(app, "chair")
    assert 'id="action-urge"' not in chair.get(f"/cases/{case_id}").get_data(as_text=True)
    early = chair.get(f"/cases/{case_id}/urge")  # on time and far from the limit
    assert early.status_code == 409 and "只能督办已逾期的环节" in early.get_data(as_text=True)
    with unit_of_work(bank.engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.event == "urge")).all() == []


@pytest.fixture
def api(sqlite_url):
    built = build_api(sqlite_url)
    yield built
    engine_of(built.app).dispose()


def test_the_api_urges_and_refuses_like_the_browser(api):
    bank = api.bank
    case_id = drive(bank, "investigating")
    opened_days_ago(bank, case_id, 30, due_date=TODAY - timedelta(days=3))
    case = api.get("chair", f"/api/v1/cases/{case_id}").get_json()
    assert case["one_year_limit"] == (TODAY - timedelta(days=30) + timedelta(days=365)).isoformat()
    refused = api.post("member1", f"/api/v1/cases/{case_id}/urges", json={"message": "请尽快办理。"})
    assert refused.status_code == 403 and refused.get_json()["details"]["reason"] == "not_supervisor"
    empty = api.post("chair", f"/api/v1/cases/{case_id}/urges", json={"message": ""})
    assert empty.status_code == 400
    made = api.post("admin", f"/api/v1/cases/{case_id}/urges", json={"message": "请尽快办理。"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["to"] == ["investigator"] and body["message"] == "请尽快办理。"
    with unit_of_work(bank.engine) as s:
        told = s.exec(select(Notification).where(Notification.kind == "urge")).all()
        assert [s.get(User, n.user_id).username for n in told] == ["investigator"]
