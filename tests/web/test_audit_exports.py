"""Audit-ready exports as an auditor sees them (issue 21): the CSV and the workbook opened as an audit department
opens them, with local times, Chinese labels beside the codes, people by name and employee number, amounts as
exact numbers; a branch chosen from a list of the auditor's scope; a reason for every export, kept in the
access log; and following an export link (a GET) changes nothing."""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from tests.factories import drive, make_bank
from tests.web.support import login, make_app, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import AccessLog, AuditEvent, Case, CaseLoan, Loan, User, Vote
from workflow.services import export

REASON = "2026年度内部审计抽查"


@pytest.fixture
def audited(sqlite_engine, tmp_path):
    """The app on SQLite with the small bank and one determined case (outcomes and votes recorded)."""
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "determined")
    set_passwords(sqlite_engine)
    app = make_app(sqlite_engine, tmp_path)
    yield app, bank, case_id
    app.extensions["mianze.engine"].dispose()


def auditor_client(app, locale: str = "zh"):
    engine = app.extensions["mianze.engine"]
    with unit_of_work(engine) as s:
        user = s.exec(select(User).where(User.username == "auditor")).one()
        user.locale = locale
        s.add(user)
    client = app.test_client()
    assert login(client, "auditor").status_code == 302
    return client


def person(s: Session, user_id: int) -> str:
    u = s.get(User, user_id)
    return f"{u.name}（{u.employee_no}）"


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def export_entries(engine) -> list[AccessLog]:
    with Session(engine) as s:
        return list(s.exec(select(AccessLog).where(AccessLog.action == "export").order_by(AccessLog.id)))


def test_an_auditors_csv_has_local_times_chinese_labels_beside_codes_and_people_by_name(audited):
    app, bank, case_id = audited
    client = auditor_client(app)
    cases_csv = csv_rows(post(client, "/audit/export", {"kind": "cases", "records": "cases", "format": "csv",
                                                         "reason": REASON}))
    votes_csv = csv_rows(post(client, "/audit/export", {"kind": "cases", "records": "votes", "format": "csv",
                                                         "reason": REASON}))
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        row = next(r for r in cases_csv if r["案件编号 case no."] == case.number)
        assert (row["状态 state"], row["状态代码 state code"]) == ("已认定", "determined")
        assert row["立案人（工号） opened by"] == person(s, case.opened_by_id) == "管理员（E1011）"
        assert row["调查人（工号） investigator"] == person(s, case.investigator_id) == "赵六（E1003）"
        opened = case.opened_at.replace(tzinfo=UTC).astimezone(export.CST)
        assert row["立案时间 opened (北京时间 UTC+8)"] == opened.strftime("%Y-%m-%d %H:%M:%S+0800")
        votes = s.exec(select(Vote).where(Vote.case_id == case_id).order_by(Vote.id)).all()
        assert len(votes_csv) == len(votes) > 0
        for vote, got in zip(votes, votes_csv, strict=True):
            assert got["委员（工号） member"] == person(s, vote.member_id)
            assert got["表决代码 outcome code"] == vote.outcome
            assert got["表决 outcome"] == {"exempt": "免责", "reduced": "减责", "liable": "不予免责"}[vote.outcome]
            assert got["表决时间 cast (北京时间 UTC+8)"].endswith("+0800")
    # no username stands alone for a person in these files
    assert not any(value in ("admin", "investigator", "member1", "member2", "chair")
                   for r in cases_csv + votes_csv for value in r.values())


def test_the_access_log_holds_the_reason_of_every_export_masked_or_not(audited):
    app, bank, _ = audited
    client = auditor_client(app)
    csv_rows(post(client, "/audit/export", {"kind": "audit", "format": "csv", "reason": REASON}))
    csv_rows(post(client, "/audit/export", {"kind": "cases", "records": "respondents", "format": "csv",
                                            "full": "1", "reason": "纪检调查核对身份"}))
    entries = export_entries(bank.engine)
    assert [(e.username, e.details["full_values"], e.details["reason"]) for e in entries] == [
        ("auditor", False, REASON), ("auditor", True, "纪检调查核对身份")]
    with Session(bank.engine) as s:
        full = s.exec(select(AuditEvent).where(AuditEvent.event == "export_full_values")).one()
        assert full.payload["reason"] == "纪检调查核对身份" and full.actor == "auditor"
    # the access log's own export shows each entry's reason in a column of its own, with who in name
    log = csv_rows(post(client, "/audit/export", {"kind": "access-log", "format": "csv", "reason": REASON}))
    exports = [r for r in log if r["操作代码 action code"] == "export"]
    assert [r["理由 reason"] for r in exports] == [REASON, "纪检调查核对身份", REASON]
    assert {r["操作 action"] for r in exports} == {"导出"} and {r["用户（工号） user"] for r in exports} == {"郑审（E1010）"}


def test_an_english_auditor_gets_english_labels_and_the_same_codes(audited):
    app, _, _ = audited
    rows = csv_rows(post(auditor_client(app, "en"), "/audit/export",
                         {"kind": "cases", "records": "determinations", "format": "csv", "reason": "annual audit"}))
    assert rows and all(r["认定结果 decided"] == "Exempt" and r["认定结果代码 decided code"] == "exempt" for r in rows)
    assert all(r["案件状态 case state"] == "Determined" for r in rows)


def test_following_an_export_link_changes_nothing(audited):
    app, bank, _ = audited
    client = auditor_client(app)
    with Session(bank.engine) as s:
        before = (len(s.exec(select(AccessLog)).all()), len(s.exec(select(AuditEvent)).all()))
    for url in ("/audit/export?kind=cases&format=csv&records=cases&reason=x&full=1",
                "/audit/bundle?reason=x&full=1"):
        response = client.get(url)
        assert response.status_code == 302 and response.headers["Location"].endswith("/audit/")
    with Session(bank.engine) as s:
        assert (len(s.exec(select(AccessLog)).all()), len(s.exec(select(AuditEvent)).all())) == before


def test_the_branch_is_picked_from_the_branches_in_scope_and_a_bad_one_gives_the_form_back(audited):
    app, bank, case_id = audited
    client = auditor_client(app)
    page = client.get("/audit/").get_data(as_text=True)
    assert '<select name="branch"' in page
    for code, name in (("HO", "总行"), ("T1", "一分行"), ("SB", "一支行"), ("T2", "二分行")):
        assert f'<option value="{code}">' in page and name in page
    # a Chinese name typed instead of a code (or any value not in the list): the form again, translated
    refused = post(client, "/audit/export", {"kind": "cases", "records": "cases", "format": "csv",
                                             "branch": "一分行", "reason": REASON})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'id="export-form"' in html
    assert 'id="error-branch"' in html and "该机构不在您的权限范围内" in html
    assert f'value="{REASON}"' in html and '<option value="csv" selected>' in html  # what was entered is kept
    assert export_entries(bank.engine) == []
    # a branch from the list filters by its subtree
    with Session(bank.engine) as s:
        number = s.get(Case, case_id).number
    t1 = csv_rows(post(client, "/audit/export", {"kind": "cases", "records": "cases", "format": "csv",
                                                 "branch": "T1", "reason": REASON}))
    t2 = csv_rows(post(client, "/audit/export", {"kind": "cases", "records": "cases", "format": "csv",
                                                 "branch": "T2", "reason": REASON}))
    assert [r["案件编号 case no."] for r in t1] == [number] and t2 == []
    assert [e.details["filters"]["branch"] for e in export_entries(bank.engine)] == ["T1", "T2"]


def test_an_export_or_a_bundle_without_a_reason_is_refused_with_the_form_back(audited):
    app, bank, _ = audited
    client = auditor_client(app)
    for url, data in (("/audit/export", {"kind": "cases", "records": "cases", "format": "csv"}),
                      ("/audit/export", {"kind": "cases", "format": "xlsx"}),
                      ("/audit/bundle", {"reason": "   "})):
        response = post(client, url, data)
        html = response.get_data(as_text=True)
        assert response.status_code == 400 and 'id="error-reason"' in html, url
        assert "每次导出都须说明理由" in html
    assert export_entries(bank.engine) == []


def _job_download(client, started) -> bytes:
    assert started.status_code == 302 and "/jobs/" in started.headers["Location"], started.get_data(as_text=True)
    job_page = started.headers["Location"]
    for _ in range(600):
        page = client.get(job_page).get_data(as_text=True)
        if 'data-status="done"' in page or 'data-status="failed"' in page:
            break
        time.sleep(0.2)
    assert 'id="job-download"' in page, page
    with client.get(job_page + "/download") as response:
        assert response.status_code == 200
        return response.get_data()


def test_the_workbook_has_exact_amounts_with_number_formats_a_frozen_header_and_filters(audited):
    app, bank, case_id = audited
    client = auditor_client(app)
    body = _job_download(client, post(client, "/audit/export", {"kind": "cases", "format": "xlsx",
                                                                "reason": REASON}))
    wb = load_workbook(io.BytesIO(body))
    cols = [c.name for c in export.RECORD_TYPES["cases"].columns]
    ws = wb[export.RECORD_TYPES["cases"].title]
    assert ws.freeze_panes == "A2"
    last = ws.cell(row=1, column=len(cols)).column_letter
    assert ws.auto_filter.ref == f"A1:{last}{ws.max_row}"
    row = dict(zip(cols, next(ws.iter_rows(min_row=2, max_row=2)), strict=True))
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        balance = sum((s.get(Loan, cl.loan_id).balance for cl in
                       s.exec(select(CaseLoan).where(CaseLoan.case_id == case_id))), Decimal(0))
        assert (row["state_label"].value, row["state"].value) == ("已认定", "determined")
        assert row["opened_by"].value == person(s, case.opened_by_id)
        local = case.opened_at.replace(tzinfo=None) + timedelta(hours=8)
        assert abs(row["opened_at"].value - local) < timedelta(seconds=1)
    assert row["balance"].number_format == "#,##0.00" and row["opened_at"].number_format == "yyyy-mm-dd hh:mm:ss"
    # the cell holds the amount's exact decimal text, not a binary float's
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    letter = row["balance"].column_letter
    text = re.search(rf'<c r="{letter}2"[^>]*><v>([^<]+)</v>', sheet).group(1)
    assert Decimal(text) == balance and len(text.partition(".")[2]) <= 2, text
    loans = wb[export.RECORD_TYPES["loans"].title]
    assert loans.freeze_panes == "A2" and loans.auto_filter.ref.startswith("A1:")
    assert all(loans.cell(row=r, column=8).number_format == "#,##0.00" for r in range(2, loans.max_row + 1))
    resp_cols = [c.name for c in export.RECORD_TYPES["respondents"].columns]
    resp = dict(zip(resp_cols, next(wb[export.RECORD_TYPES["respondents"].title].iter_rows(min_row=2, values_only=True)),
                    strict=True))
    assert resp["decided_outcome_label"] == "免责" and resp["decided_outcome"] == "exempt"
    assert resp["liability_kind_label"] in ("合规责任", "尽职责任", "管理责任")
