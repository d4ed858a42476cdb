"""Administrators record the NPL figures a branch reported to the regulator, in the browser."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from tests.factories import drive
from tests.web.support import login, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import AuditEvent, Case, ToleranceFigure, User

PERIOD = date(date.today().year - 1, 12, 31)  # the period a case determined this year looks at


def _admin(bank, app_for, username="admin"):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def _figures(bank):
    with Session(bank.engine) as s:
        return s.exec(select(ToleranceFigure)).all()


def _form(bank, **over):
    return {"branch": str(bank.branches["T1"]), "period": PERIOD.isoformat(), "sme_ratio": "5.01",
            "all_ratio": "2.00", "reason": "2025年度1104报表", **over}


def test_an_administrator_records_reported_percentages_and_cases_are_judged_on_them(bank, app_for):
    client = _admin(bank, app_for)
    response = post(client, "/admin/tolerance", _form(bank))
    assert response.status_code == 302
    [figure] = _figures(bank)
    assert (figure.sme_ratio, figure.all_ratio, figure.period) == ("0.0501", "0.02", PERIOD)
    page = client.get("/admin/tolerance").get_data(as_text=True)
    assert "5.01 %" in page and "3.01 pp" in page and "超出容忍度" in page and "2025年度1104报表" in page
    with Session(bank.engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "import_tolerance")).one()
    assert event.payload["sme_ratio"] == "0.0501" and event.actor == "admin"

    case_id = drive(bank, "under_review")
    with Session(bank.engine) as s:
        frozen = s.get(Case, case_id).tolerance
    assert frozen["source"] == "imported" and frozen["within"] is False
    case_page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="tolerance-source"' in case_page and "2025年度1104报表" in case_page


def test_bad_input_is_shown_next_to_its_field_and_nothing_is_recorded(bank, app_for):
    client = _admin(bank, app_for)
    for field, value in (("sme_ratio", "五"), ("all_ratio", "120"), ("period", "2025-13-40"), ("reason", " ")):
        response = post(client, "/admin/tolerance", _form(bank, **{field: value}))
        assert response.status_code == 400, field
        assert f'id="error-{field}"' in response.get_data(as_text=True), field
    assert _figures(bank) == []


def test_figures_already_recorded_for_a_branch_and_period_are_not_replaced(bank, app_for):
    client = _admin(bank, app_for)
    assert post(client, "/admin/tolerance", _form(bank)).status_code == 302
    again = post(client, "/admin/tolerance", _form(bank, sme_ratio="1.00"))
    assert again.status_code == 400
    [figure] = _figures(bank)
    assert figure.sme_ratio == "0.0501"


def test_a_branch_administrator_records_only_for_their_own_subtree(bank, app_for):
    with unit_of_work(bank.engine) as s:
        s.add(User(username="t2_admin", name="二分行管理员", employee_no="T2A", branch_id=bank.branches["T2"],
                   roles="admin"))
    client = _admin(bank, app_for, "t2_admin")
    response = post(client, "/admin/tolerance", _form(bank))
    assert response.status_code == 400 and 'id="error-branch"' in response.get_data(as_text=True)
    assert _figures(bank) == []
    page = client.get("/admin/tolerance").get_data(as_text=True)
    assert f'value="{bank.branches["T1"]}"' not in page and f'value="{bank.branches["T2"]}"' in page
