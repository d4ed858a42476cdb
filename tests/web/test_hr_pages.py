"""The HR feed in the browser UI and the API: the referral form, the sanctions recorded back on the
accountability page, and the monthly HR list exported by POST with a reason (access-logged)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from openpyxl import load_workbook
from sqlmodel import Session, select

from tests.factories import TODAY, decide_appeal_by_panel, drive, liable_officer
from tests.web.support import login, post, set_passwords, version_of
from workflow.db import unit_of_work
from workflow.models import AccessLog, Appeal, AuditEvent, Case, Referral, Respondent, Sanction
from workflow.services import cases, tokens

DECIDED = TODAY + timedelta(days=34)
MONTH = f"{DECIDED.year:04d}-{DECIDED.month:02d}"


def _client(bank, app_for, username):
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def _officer_id(bank, case_id):
    with Session(bank.engine) as s:
        return s.exec(select(Respondent.id).where(Respondent.case_id == case_id,
                                                  Respondent.user_id == bank.users["officer"])).one()


def test_an_appeal_that_improves_a_liable_outcome_after_a_deduction_entered_on_the_page_is_refunded_in_the_export(
        bank, app_for):
    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    set_passwords(bank.engine)
    admin = _client(bank, app_for, "admin")
    page = admin.get(f"/cases/{case_id}/accountability").get_data(as_text=True)
    assert 'id="sanction-form"' in page and "录入问责结果" in page
    response = post(admin, f"/cases/{case_id}/sanctions", {
        "respondent_id": _officer_id(bank, case_id), "points": "6", "sanction_type": "demerit",
        "amount": "2,000.00", "month": "2026-01", "note": "人力资源部问责决定"})
    assert response.status_code == 302
    page = admin.get(f"/cases/{case_id}/accountability").get_data(as_text=True)
    assert "记过" in page and "2,000.00 元" in page and "2026-01" in page
    with unit_of_work(bank.engine) as s:  # the appeal panel alters the outcome to exempt
        case = s.get(Case, case_id)
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()
        decide_appeal_by_panel(bank, s, case, appeal.id, "altered", "exempt", "新证据表明已核实借款用途", today=DECIDED)
    page = admin.get(f"/cases/{case_id}/accountability").get_data(as_text=True)
    assert 'id="refund-list"' in page and "申诉复核决定" in page

    auditor = _client(bank, app_for, "auditor")
    listing = auditor.get(f"/hr/?month={MONTH}").get_data(as_text=True)
    assert "返还" in listing and "张三" in listing and "E1000" in listing
    # Following a link changes nothing and logs nothing: it returns to the page.
    assert auditor.get("/hr/export").status_code == 302
    refused = post(auditor, "/hr/export", {"month": MONTH, "format": "csv", "reason": ""})
    assert refused.status_code == 400 and "请说明导出人力资源清单的原因" in refused.get_data(as_text=True)
    with Session(bank.engine) as s:
        assert s.exec(select(AccessLog).where(AccessLog.action == "export")).all() == []
    response = post(auditor, "/hr/export", {"month": MONTH, "format": "csv", "reason": "月度薪酬核算"})
    assert response.status_code == 200 and response.headers["Content-Disposition"].endswith(f'-{MONTH}.csv"')
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    refund = next(r for r in rows if r["类型"] == "返还")
    assert (refund["姓名"], refund["员工编号"], refund["返还金额（元）"], refund["原扣发金额（元）"],
            refund["原扣发月份"], refund["改善决定"], refund["决定日期"], refund["认定结果"]) == \
        ("张三", "E1000", "2000.00", "2000.00", "2026-01", "申诉复核决定", DECIDED.isoformat(), "免责")
    with Session(bank.engine) as s:
        entry = s.exec(select(AccessLog).where(AccessLog.action == "export")).one()
        assert entry.details["reason"] == "月度薪酬核算" and entry.target == f"hr:{MONTH}"
        assert s.exec(select(AuditEvent).where(AuditEvent.event == "export_hr")).one().payload["month"] == MONTH
    xlsx = post(auditor, "/hr/export", {"month": "2026-01", "format": "xlsx", "reason": "月度薪酬核算"})
    ws = load_workbook(io.BytesIO(xlsx.get_data())).worksheets[0]
    assert ws.cell(1, 9).value == "扣发金额（元）" and ws.cell(2, 9).value == 2000
    assert ws.cell(2, 9).number_format == "#,##0.00"


def test_the_referral_form_records_recipient_reference_and_respondents(bank, app_for):
    case_id = drive(bank, "final", facts_for=liable_officer, appeal=False)
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    page = chair.get(f"/cases/{case_id}/accountability").get_data(as_text=True)
    assert 'id="refer"' in page and "人力资源部（问责部门）" in page
    form = {"recipient": "纪检监察部", "reference": "郑分人〔2026〕7号", "matters": "贷前调查未核实借款用途",
            "respondents": str(_officer_id(bank, case_id)), "expected_version": version_of(bank.engine, case_id)}
    confirm = post(chair, f"/cases/{case_id}/refer", form)
    assert confirm.status_code == 200 and 'id="confirm-step"' in confirm.get_data(as_text=True)
    assert post(chair, f"/cases/{case_id}/refer", {**form, "confirm": "1"}).status_code == 302
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "referred"
        ref = s.exec(select(Referral)).one()
        assert (ref.recipient, ref.reference) == ("纪检监察部", "郑分人〔2026〕7号")
    page = chair.get(f"/cases/{case_id}/accountability").get_data(as_text=True)
    assert "郑分人〔2026〕7号" in page and "贷前调查未核实借款用途" in page and "张三" in page


def test_a_chair_may_not_record_sanctions_nor_open_the_hr_list(bank, app_for):
    case_id = drive(bank, "final", facts_for=liable_officer, appeal=False)
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    assert post(chair, f"/cases/{case_id}/sanctions", {"respondent_id": _officer_id(bank, case_id),
                                                       "points": "3"}).status_code == 403
    assert chair.get("/hr/").status_code == 403
    with Session(bank.engine) as s:
        assert s.exec(select(Sanction)).all() == []


def test_the_api_records_a_sanction_and_exports_the_hr_list(bank, app_for):
    case_id = drive(bank, "final", facts_for=liable_officer, appeal=False)
    app = app_for(bank.engine)
    with unit_of_work(bank.engine) as s:
        admin_token = tokens.create(s, None, bank.users["admin"], "hr")[1]
        cases.refer_for_accountability(s, s.get(Case, case_id), bank.user(s, "chair"), reference="郑分人〔2026〕8号")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {admin_token}"}
    response = client.post(f"/api/v1/cases/{case_id}/sanctions", headers=headers,
                           json={"respondent_id": _officer_id(bank, case_id), "points": 4, "sanction_type": "warning",
                                 "amount": "800.50", "month": "2026-02"})
    assert response.status_code == 201, response.json
    got = client.get(f"/api/v1/cases/{case_id}/accountability", headers=headers).json
    assert got["referral"]["reference"] == "郑分人〔2026〕8号"
    assert [(x["name"], x["amount"], x["month"]) for x in got["sanctions"]] == [("张三", "800.50", "2026-02")]
    refused = client.post("/api/v1/hr/exports", headers=headers, json={"month": "2026-02", "format": "csv"})
    assert refused.status_code == 400
    export = client.post("/api/v1/hr/exports", headers=headers,
                         json={"month": "2026-02", "format": "csv", "reason": "月度核算"})
    assert export.status_code == 200 and "800.50" in export.get_data().decode("utf-8-sig")
