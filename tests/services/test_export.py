"""Exports for internal audit: XLSX and CSV compared with the database, filters, masking, access log,
the CLI and the auditor pages, and retention (nothing is ever deleted; a held case cannot be withdrawn)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from tests.factories import TODAY, Bank, drive, open_case
from workflow.chain import verify_events
from workflow.db import read_session, unit_of_work
from workflow.domain.errors import GuardFailed, PermissionDenied, ValidationFailed
from workflow.domain.states import STATE_LABELS
from workflow.models import (
    AccessLog,
    AuditEvent,
    AuditHead,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Loan,
    LoanStage,
    Respondent,
    User,
)
from workflow.services import access_log, cases, export


def with_own_loan(bank: Bank, tag: int, branch: str = "OU") -> Bank:
    """The bank with a new enterprise and one non-performing loan handled by the officer alone."""
    with unit_of_work(bank.engine) as s:
        ent = Enterprise(name=f"导出测试企业{tag}", uscc=f"9111000000{tag:07d}Y", kind="small")
        s.add(ent)
        s.flush()
        loan = Loan(loan_no=f"LX-{tag:05d}", enterprise_id=ent.id, branch_id=bank.branches[branch],
                    product_class="inclusive_sme", credit_total=Decimal("500000"), amount=Decimal("500000"),
                    balance=Decimal("123456.78"), start_date=date(2024, 9, 1), maturity_date=date(2025, 9, 1),
                    classification="doubtful")
        s.add(loan)
        s.flush()
        s.add(LoanStage(loan_id=loan.id, stage="pre_loan", user_id=bank.users["officer"],
                        performed_on=date(2024, 8, 20)))
    return dataclasses.replace(bank, loans=[loan.id], enterprise_id=ent.id)


@pytest.fixture
def several(bank):
    """Three cases: determined (exempt), under review, and registered in branch T2."""
    closed = drive(bank, "determined")
    reviewing = drive(with_own_loan(bank, 1), "under_review")
    elsewhere = open_case(with_own_loan(bank, 2, branch="T2"))
    return {"closed": closed, "under_review": reviewing, "registered": elsewhere}


def auditor(s: Session, bank: Bank) -> User:
    return bank.user(s, "auditor")


def export_file(bank, tmp_path, kind, fmt, name, **kw):
    from workflow.services.jobs import run_export

    out = str(tmp_path / name)
    counts = run_export(bank.engine, kind=kind, fmt=fmt, out=out, username="auditor",
                        filters=kw.pop("filters", {}), full=kw.pop("full", False),
                        reason=kw.pop("reason", "年度审计抽查"), **kw)
    return out, counts


def test_the_xlsx_has_one_sheet_per_record_type_with_frozen_headers_dates_and_amounts_as_the_database(
        bank, several, tmp_path):
    out, counts = export_file(bank, tmp_path, "cases", "xlsx", "cases.xlsx")
    wb = load_workbook(out)
    assert wb.sheetnames == [export.RECORD_TYPES[n].title for n in export.CASE_RECORDS]
    ws = wb[export.RECORD_TYPES["cases"].title]
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["B"].width >= 20
    header = [c.value for c in ws[1]]
    assert header[:4] == ["ID", "案件编号 case no.", "状态 state", "状态代码 state code"]
    got = {row[1]: row for row in ws.iter_rows(min_row=2, values_only=True)}
    with Session(bank.engine) as s:
        db_cases = s.exec(select(Case)).all()
        assert set(got) == {c.number for c in db_cases}
        for c in db_cases:
            row = dict(zip([col.name for col in export.RECORD_TYPES["cases"].columns], got[c.number], strict=True))
            balance = sum((s.get(Loan, cl.loan_id).balance for cl in s.exec(select(CaseLoan)
                                                                             .where(CaseLoan.case_id == c.id))),
                          Decimal(0))
            assert row["state"] == c.state
            assert row["state_label"] == STATE_LABELS[c.state]["zh"]
            assert row["branch_code"] == s.get(Branch, c.branch_id).code
            assert isinstance(row["balance"], int | float) and Decimal(str(row["balance"])) == balance
            assert isinstance(row["opened_at"], datetime)
            # in the bank's time zone (UTC+8; the heading says so): the stored UTC time eight hours on
            assert abs(row["opened_at"] - (c.opened_at.replace(tzinfo=None) + timedelta(hours=8))) < timedelta(seconds=1)
    loans = export.RECORD_TYPES["loans"].title
    first_loan = next(wb[loans].iter_rows(min_row=2, values_only=True))
    assert isinstance(first_loan[8], datetime) and first_loan[8].date() == date(2024, 9, 1)  # a date cell
    assert wb[loans].cell(row=2, column=8).number_format == "#,##0.00"
    assert counts["votes"] == wb[export.RECORD_TYPES["votes"].title].max_row - 1 == 9


def test_the_csv_opens_with_the_csv_module_and_matches_the_database_with_masked_numbers(bank, several, tmp_path):
    out, _ = export_file(bank, tmp_path, "cases", "csv", "respondents.csv", records=("respondents",))
    raw = Path(out).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese correctly
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    col = {c.name: i for i, c in enumerate(export.RECORD_TYPES["respondents"].columns)}
    assert header[col["id_number"]] == "身份证号 identity no."
    with Session(bank.engine) as s:
        db = s.exec(select(Respondent, User, Case).join(User, User.id == Respondent.user_id)
                    .join(Case, Case.id == Respondent.case_id).order_by(Respondent.id)).all()
        assert len(body) == len(db)
        for row, (r, u, c) in zip(body, db, strict=True):
            assert row[col["id"]] == str(r.id)
            assert row[col["case_number"]] == c.number
            assert row[col["name"]] == u.name
            assert row[col["final_outcome"]] == (r.final_outcome or "")
            assert row[col["id_number"]] == u.id_number[:6] + "********" + u.id_number[-4:]
            assert row[col["phone"]] == u.phone[:3] + "****" + u.phone[-4:]


def test_csv_of_several_record_types_needs_a_zip_and_then_holds_one_csv_each(bank, several, tmp_path):
    with pytest.raises(ValidationFailed, match="zip"):
        export_file(bank, tmp_path, "cases", "csv", "all.csv")
    out, counts = export_file(bank, tmp_path, "cases", "csv", "all.zip")
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(f"{n}.csv" for n in export.CASE_RECORDS)
        votes = list(csv.reader(io.StringIO(zf.read("votes.csv").decode("utf-8-sig"))))
    assert len(votes) - 1 == counts["votes"] == 9


def test_json_lines_hold_one_object_per_record_with_exact_amounts(bank, several, tmp_path):
    out, counts = export_file(bank, tmp_path, "cases", "jsonl", "loans.jsonl", records=("loans",))
    lines = Path(out).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == counts["loans"] == 4
    assert {r["balance"] for r in records} >= {"800000.50", "123456.78"}
    assert all(r["start_date"] == "2024-09-01" for r in records)


def numbers(bank, f: export.ExportFilter) -> set[str]:
    with read_session(bank.engine) as s:
        return {row[1] for row in export.rows(s, "cases", f)}


def test_filters_select_cases_by_branch_subtree_state_outcome_and_period(bank, several):
    with Session(bank.engine) as s:
        number = {k: s.get(Case, v).number for k, v in several.items()}
    assert numbers(bank, export.ExportFilter.parse(state="determined")) == {number["closed"]}
    assert numbers(bank, export.ExportFilter()) == set(number.values())
    assert numbers(bank, export.ExportFilter.parse(branch="T1")) == {number["closed"], number["under_review"]}
    assert numbers(bank, export.ExportFilter.parse(branch="HO")) == set(number.values())
    assert numbers(bank, export.ExportFilter.parse(branch="T2")) == {number["registered"]}
    assert numbers(bank, export.ExportFilter.parse(state="under_review")) == {number["under_review"]}
    assert numbers(bank, export.ExportFilter.parse(outcome="exempt")) == {number["closed"]}
    assert numbers(bank, export.ExportFilter.parse(outcome="liable")) == set()
    assert numbers(bank, export.ExportFilter.parse(date_from=TODAY - timedelta(days=1),
                                                   date_to=TODAY + timedelta(days=1))) == set(number.values())
    assert numbers(bank, export.ExportFilter.parse(date_to=TODAY - timedelta(days=2))) == set()
    with read_session(bank.engine) as s:
        votes = list(export.rows(s, "votes", export.ExportFilter.parse(branch="T2")))
    assert votes == []  # every record type follows the selected cases
    with pytest.raises(ValidationFailed):
        export.ExportFilter.parse(state="nonsense")
    with pytest.raises(ValidationFailed):
        export.ExportFilter.parse(date_from="2026-02-30")


def test_every_export_needs_a_reason_and_full_values_are_also_recorded_in_the_audit_chain(bank, several):
    f = export.ExportFilter()
    for full in (True, False):
        with pytest.raises(ValidationFailed, match="reason"):
            with unit_of_work(bank.engine) as s:
                export.authorize(s, auditor(s, bank), kind="cases", fmt="csv", f=f, full=full, reason="  ")
    with read_session(bank.engine) as s:
        assert s.exec(select(AccessLog)).all() == []
    with unit_of_work(bank.engine) as s:
        export.authorize(s, auditor(s, bank), kind="cases", fmt="csv", f=f, full=True, reason="纪检调查需核对身份")
    with read_session(bank.engine) as s:
        entry = s.exec(select(AccessLog).order_by(AccessLog.id.desc())).first()
        assert (entry.username, entry.action) == ("auditor", "export")
        assert entry.details["full_values"] is True and entry.details["reason"] == "纪检调查需核对身份"
        event = s.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert event.event == "export_full_values" and event.payload["reason"] == "纪检调查需核对身份"
        full = list(export.rows(s, "respondents", f, full=True))
        masked = list(export.rows(s, "respondents", f))
        ids = {u.id_number for u in s.exec(select(User))}
    assert {row[5] for row in full} <= ids
    assert not {row[5] for row in masked} & ids
    assert all("****" in row[6] for row in masked)


def test_free_text_is_scrubbed_of_identity_and_mobile_numbers():
    text = "联系电话13812345678，身份证110101199003071234，贷款LX-00001"
    assert export.scrub(text) == "联系电话138****5678，身份证110101********1234，贷款LX-00001"
    assert export.scrub({"a": [text]}) == {"a": [export.scrub(text)]}
    assert export.mask_id_number("11010119900307123X") == "110101********123X"
    assert export.mask_phone("13812345678") == "138****5678"


def test_only_auditors_may_export(bank):
    with pytest.raises(PermissionDenied):
        with unit_of_work(bank.engine) as s:
            export.authorize(s, bank.user(s, "admin"), kind="cases", fmt="csv", f=export.ExportFilter(),
                             reason="查看")
    with Session(bank.engine) as s:
        assert s.exec(select(AccessLog)).all() == []


def test_the_audit_export_without_filters_is_the_whole_verifiable_chain(bank, several, tmp_path):
    out, counts = export_file(bank, tmp_path, "audit", "jsonl", "audit.jsonl")
    events = [json.loads(line) for line in Path(out).read_text(encoding="utf-8").splitlines()]
    with Session(bank.engine) as s:
        head = s.get(AuditHead, 1)
        assert counts["audit"] == len(events) == head.seq
        assert verify_events(events, {"seq": head.seq, "hash": head.hash}) == head.seq


def test_case_views_are_logged_and_auditors_list_and_export_the_access_log(bank, several, tmp_path):
    with unit_of_work(bank.engine) as s:
        access_log.record(s, bank.user(s, "member1"), "view_case", "case:1", several["closed"], {"tab": "facts"})
        access_log.record(s, bank.user(s, "chair"), "download_letter", "letter:1", several["closed"])
    with pytest.raises(ValidationFailed):
        with unit_of_work(bank.engine) as s:
            access_log.record(s, None, "peek", "")
    with read_session(bank.engine) as s:
        page = access_log.entries(s, case_id=several["closed"])
        assert [e.action for e in page.entries] == ["download_letter", "view_case"]
        assert access_log.entries(s, username="member1").total == 1
    out, counts = export_file(bank, tmp_path, "access-log", "csv", "access.csv")
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the export itself is logged before it runs, so it lists itself too
    assert [r["操作代码 action code"] for r in rows] == ["view_case", "download_letter", "export"]
    assert [r["操作 action"] for r in rows] == ["查看案件", "下载文书", "导出"]
    assert rows[2]["理由 reason"] == "年度审计抽查"
    assert json.loads(rows[0]["详情 details"]) == {"tab": "facts"}


def test_the_cli_exports_with_the_acting_auditor_and_refuses_others(bank, several, tmp_path, db_url):
    from workflow import create_app

    app = create_app({"DATABASE_URL": db_url, "EVIDENCE_DIR": str(tmp_path / "evidence")})
    runner = app.test_cli_runner()
    out = tmp_path / "cases.xlsx"
    result = runner.invoke(args=["export", "cases", "--format", "xlsx", "--out", str(out), "--as", "auditor",
                                 "--branch", "T1", "--state", "determined", "--reason", "专项审计"])
    assert result.exit_code == 0, result.output
    assert "cases 1" in result.output
    assert load_workbook(out)[export.RECORD_TYPES["cases"].title].max_row == 2
    refused = runner.invoke(args=["export", "audit", "--format", "csv", "--out", str(tmp_path / "a.csv"),
                                  "--as", "admin", "--reason", "查看"])
    assert refused.exit_code == 2 and "auditor" in refused.output
    no_reason = runner.invoke(args=["export", "cases", "--format", "xlsx", "--out", str(out), "--as", "auditor"])
    assert no_reason.exit_code == 2 and "reason" in no_reason.output
    app.extensions["mianze.engine"].dispose()


# --- the auditor pages ------------------------------------------------------------------------------------

def post(client, url, data):
    from tests.web import support

    return support.post(client, url, data)


@pytest.fixture
def web(sqlite_engine, tmp_path):
    """The whole app (web UI with the audit blueprint) on SQLite with the small bank, passwords set."""
    from tests.factories import make_bank
    from tests.web.support import make_app, set_passwords
    from workflow.web.audit import bp

    bank = make_bank(sqlite_engine)
    set_passwords(sqlite_engine)
    app = make_app(sqlite_engine, tmp_path)
    if "audit" not in app.blueprints:
        app.register_blueprint(bp)
    yield app, bank
    app.extensions["mianze.engine"].dispose()


def signed_in(app, bank, username):
    from tests.web.support import login

    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def test_audit_pages_are_for_auditors_only(web):
    app, bank = web
    assert app.test_client().get("/audit/").status_code in (302, 401)  # to the sign-in page
    assert signed_in(app, bank, "admin").get("/audit/access-log").status_code == 403
    assert signed_in(app, bank, "admin").get("/audit/export?kind=audit&format=csv").status_code == 403
    page = signed_in(app, bank, "auditor").get("/audit/")
    assert page.status_code == 200 and "证据包" in page.get_data(as_text=True)


def _access_log_count(bank) -> int:
    with Session(bank.engine) as s:
        return len(s.exec(select(AccessLog).where(AccessLog.action == "export")).all())


def test_an_auditor_downloads_a_streamed_csv_and_sees_the_download_in_the_access_log(web):
    app, bank = web
    client = signed_in(app, bank, "auditor")
    before = _access_log_count(bank)
    link = client.get("/audit/export?kind=audit&format=csv")  # following a link exports nothing, logs nothing
    assert link.status_code == 302 and _access_log_count(bank) == before
    response = post(client, "/audit/export", data={"kind": "audit", "format": "csv", "reason": "年度审计"})
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Disposition"].startswith('attachment; filename="mianze-audit-')
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    with Session(bank.engine) as s:
        assert len(rows) - 1 == s.get(AuditHead, 1).seq
    # A workbook is written by a background job (here the app's worker thread); its page offers the download.
    started = post(client, "/audit/export", data={"kind": "cases", "format": "xlsx", "reason": "年度审计"})
    assert started.status_code == 302 and "/jobs/" in started.headers["Location"]
    job_page = started.headers["Location"]
    for _ in range(600):
        page = client.get(job_page).get_data(as_text=True)
        if 'data-status="done"' in page or 'data-status="failed"' in page:
            break
        time.sleep(0.2)
    assert 'id="job-download"' in page, page
    with client.get(job_page + "/download") as xlsx:
        assert xlsx.status_code == 200 and xlsx.headers["Content-Disposition"].startswith("attachment;")
        assert load_workbook(io.BytesIO(xlsx.get_data())).sheetnames[0] == export.RECORD_TYPES["cases"].title
    other = signed_in(app, bank, "chair")
    assert other.get(job_page + "/download").status_code == 403  # the auditor's file, not the chair's
    page = client.get("/audit/access-log").get_data(as_text=True)
    assert page.count("auditor") >= 2 and "export:audit" in page and "export:cases" in page
    assert "download:job-" in page


def test_an_evidence_bundle_is_prepared_by_a_background_job_and_downloaded_from_its_page(web):
    from tests.factories import drive

    app, bank = web
    drive(bank, "final")
    client = signed_in(app, bank, "auditor")
    started = post(client, "/audit/bundle", data={"reason": "移交外部审计"})
    assert started.status_code == 302
    for _ in range(600):
        page = client.get(started.headers["Location"]).get_data(as_text=True)
        if 'data-status="done"' in page or 'data-status="failed"' in page:
            break
        time.sleep(0.2)
    assert 'id="job-download"' in page and "证据包" in page, page
    with client.get(started.headers["Location"] + "/download") as bundle:
        assert bundle.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(bundle.get_data())).namelist()
    assert "manifest.json" in names and any(n.endswith(".pdf") for n in names)


def test_an_export_without_a_reason_gives_the_form_back_with_a_translated_error_and_logs_nothing(web):
    app, bank = web
    client = signed_in(app, bank, "auditor")
    for url, data in (("/audit/export", {"kind": "cases", "format": "xlsx", "full": "1", "branch": "T1"}),
                      ("/audit/export", {"kind": "audit", "format": "csv", "reason": "  "}),
                      ("/audit/bundle", {"state": "final"})):
        response = post(client, url, data=data)
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and 'id="export-form"' in page and 'id="bundle-form"' in page
        assert 'id="error-reason"' in page and "每次导出都须说明理由" in page, page
    with Session(bank.engine) as s:
        assert s.exec(select(AccessLog).where(AccessLog.action == "export")).all() == []


# --- retention ---------------------------------------------------------------------------------------------

# Every place that deletes anything, with why it is not a case record. A new one fails this test until it
# is reviewed here: cases, respondents, facts, votes, appeals, letters, evidence, the audit chain and the
# access log are never deleted by the application.
ALLOWED_DELETES = {
    "services/accounts.py": "a working-day calendar override (configuration; the removal is audited)",
    "services/imports.py": "loan handlers re-synchronised from the loan book (reference data)",
    "web/throttle.py": "a sign-in throttle counter in Redis",
    "name_search.py": "the trigram index's copy of a name, by the trigger that follows the enterprise row",
}


def test_no_part_of_the_application_deletes_case_records():
    root = Path(__file__).resolve().parents[2] / "workflow"
    pattern = re.compile(r"\.delete\(|(?<![\w.])delete\(|DELETE\s+FROM|TRUNCATE\s+TABLE", re.IGNORECASE)
    sites = {str(p.relative_to(root)) for p in root.rglob("*.py") if "migrations" not in p.parts
             and pattern.search(p.read_text(encoding="utf-8"))}
    assert sites <= set(ALLOWED_DELETES), sites - set(ALLOWED_DELETES)


@pytest.mark.parametrize("state", ["registered", "investigating", "under_review"])
def test_a_case_under_legal_hold_cannot_be_withdrawn_from_any_withdrawable_state(bank, state):
    case_id = drive(bank, state)
    with unit_of_work(bank.engine) as s:
        cases.set_legal_hold(s, s.get(Case, case_id), bank.user(s, "auditor"), True, "审计冻结")
    with pytest.raises(GuardFailed, match="legal hold"):
        with unit_of_work(bank.engine) as s:
            cases.withdraw(s, s.get(Case, case_id), bank.user(s, "admin"), "贷款已收回")
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == state


def test_exported_times_are_in_the_banks_time_zone_with_their_offset(bank):
    from tests.factories import drive

    drive(bank, "under_review")
    with Session(bank.engine) as s:
        opened = s.exec(select(Case.opened_at)).first()
        csv_text = b"".join(export.chunks("csv", "cases", export.rows(s, "cases", export.ExportFilter()))).decode("utf-8-sig")
        jsonl = b"".join(export.chunks("jsonl", "cases", export.rows(s, "cases", export.ExportFilter()))).decode()
    row = next(csv.DictReader(io.StringIO(csv_text)))
    local = (opened if opened.tzinfo else opened.replace(tzinfo=UTC)).astimezone(export.CST)
    assert row["立案时间 opened (北京时间 UTC+8)"] == local.strftime("%Y-%m-%d %H:%M:%S+0800")
    assert json.loads(jsonl.splitlines()[0])["opened_at"].endswith("+08:00")
