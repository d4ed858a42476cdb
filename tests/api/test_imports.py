"""Bulk import of loans: validated in full, every bad row reported, all or nothing, idempotent."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func
from sqlmodel import select

from workflow import engine_of
from workflow.db import read_session, unit_of_work
from workflow.models import AuditEvent, Enterprise, Loan, LoanStage
from workflow.services import imports

HEADER = list(imports.COLUMNS)


def loan_record(n: int) -> dict:
    return {"loan_no": f"IMP{n:07d}", "enterprise_uscc": f"91110000MA{n:08d}", "enterprise_name": f"企业{n}",
            "enterprise_kind": "small", "branch": "OU", "product_class": "inclusive_sme",
            "credit_total": "3000000", "amount": "1000000.00", "balance": f"{500000 + n}.50",
            "start_date": "2024-09-01", "maturity_date": "2025-09-01",
            "classification": "substandard" if n % 7 == 0 else "normal", "written_off": "false",
            "pre_loan": "E1000", "pre_loan_date": "2024-08-11", "review": "E1001", "review_date": "2024-08-16",
            "approval": "E1002|E1003", "approval_date": "2024-08-21"}


def to_csv(records: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


def counts(engine) -> tuple[int, int, int, int]:
    with read_session(engine) as s:
        return tuple(s.exec(select(func.count()).select_from(t)).one()
                     for t in (Loan, LoanStage, Enterprise, AuditEvent))


def run_import(engine, data: bytes, fmt: str = "csv"):
    with unit_of_work(engine) as s:
        return imports.import_loans(s, None, imports.read_file(data, fmt))


def test_three_bad_rows_of_ten_thousand_are_reported_and_nothing_is_written_then_the_fix_imports_all(bank):
    engine = bank.engine
    records = [loan_record(n) for n in range(10_000)]
    bad = [dict(r) for r in records]
    bad[17]["balance"] = "12a"                # line 19: not an amount
    bad[4242]["branch"] = "NOPE"              # line 4244: unknown branch
    bad[9998]["pre_loan"] = "E9999"           # line 10000: unknown employee
    before = counts(engine)
    with pytest.raises(imports.ImportRejected) as rejected:
        run_import(engine, to_csv(bad))
    errors = rejected.value.details["errors"]
    assert [(e["line"], e["loan_no"]) for e in errors] == [(19, "IMP0000017"), (4244, "IMP0004242"),
                                                           (10000, "IMP0009998")]
    assert "balance" in errors[0]["reason"] and "NOPE" in errors[1]["reason"] and "E9999" in errors[2]["reason"]
    assert counts(engine) == before

    result = run_import(engine, to_csv(records))
    assert (result.created, result.updated, result.unchanged) == (10_000, 0, 0)
    assert result.handlers_added == 40_000
    after_first = counts(engine)
    assert after_first[0] == before[0] + 10_000

    again = run_import(engine, to_csv(records))
    assert (again.created, again.updated, again.unchanged, again.handlers_added) == (0, 0, 10_000, 0)
    assert counts(engine) == after_first, "a second import of the same file changes nothing, not even the audit"


def test_a_later_snapshot_updates_balances_and_classifications_of_the_loans_it_names(sqlite_engine):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    first = [loan_record(n) for n in range(3)]
    run_import(bank.engine, to_csv(first))
    later = [dict(r) for r in first]
    later[1].update(balance="1.00", classification="loss")
    result = run_import(bank.engine, to_csv(later))
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    with read_session(bank.engine) as s:
        loan = s.exec(select(Loan).where(Loan.loan_no == "IMP0000001")).one()
        assert (str(loan.balance), loan.classification) == ("1.00", "loss")


def test_an_xlsx_workbook_imports_like_the_csv(sqlite_engine):
    from openpyxl import Workbook

    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(5):
        rec = loan_record(n)
        ws.append([rec.get(h, "") for h in HEADER])
    buf = io.BytesIO()
    wb.save(buf)
    result = run_import(bank.engine, buf.getvalue(), "xlsx")
    assert result.created == 5


def test_the_api_imports_json_and_reports_bad_rows_with_422(api):
    rows = [{"loan_no": "J1", "enterprise": {"uscc": "91110000MA00000099", "name": "甲公司"}, "branch": "OU",
             "product_class": "inclusive_sme", "credit_total": "100000", "amount": 100000, "balance": "100.00",
             "start_date": "2024-01-01", "maturity_date": "2025-01-01", "classification": "doubtful",
             "stages": [{"stage": "pre_loan", "employee_no": "E1000", "performed_on": "2023-12-20"}]}]
    bad = rows + [{**rows[0], "loan_no": "J2", "maturity_date": "2020-01-01"}]
    r = api.post("admin", "/api/v1/imports/loans", json={"loans": bad})
    assert r.status_code == 422 and r.json["code"] == "import_rejected"
    assert r.json["details"]["errors"] == [{"line": 2, "loan_no": "J2",
                                            "reason": "maturity_date is before start_date"}]
    r = api.post("admin", "/api/v1/imports/loans", json={"loans": rows})
    assert r.status_code == 200 and r.json["created"] == 1
    r = api.post("officer", "/api/v1/imports/loans", json={"loans": rows})
    assert r.status_code == 403


def test_the_api_imports_a_csv_upload(sqlite_api):
    data = to_csv([loan_record(n) for n in range(3)])
    r = sqlite_api.post("admin", "/api/v1/imports/loans?dry_run=true", data=data, content_type="text/csv")
    assert r.status_code == 200 and r.json["created"] == 3 and r.json["dry_run"] is True
    assert r.json["encoding"] == "UTF-8"
    r = sqlite_api.post("admin", "/api/v1/imports/loans", data={"file": (io.BytesIO(data), "loans.csv")},
                        content_type="multipart/form-data")
    assert r.status_code == 200 and r.json["created"] == 3


def test_the_api_reads_an_xlsx_body_and_a_multipart_xlsx_from_their_spooled_files(sqlite_api):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(4):
        rec = loan_record(n)
        ws.append([rec.get(h, "") for h in HEADER])
    buf = io.BytesIO()
    wb.save(buf)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    r = sqlite_api.post("admin", "/api/v1/imports/loans?dry_run=true", data=buf.getvalue(), content_type=xlsx)
    assert r.status_code == 200 and r.json["created"] == 4 and r.json["encoding"] is None
    r = sqlite_api.post("admin", "/api/v1/imports/loans", data={"file": (io.BytesIO(buf.getvalue()), "book.xlsx")},
                        content_type="multipart/form-data")
    assert r.status_code == 200 and r.json["created"] == 4 and len(r.json["sha256"]) == 64


def test_the_api_refuses_a_file_beyond_the_row_cap_and_lists_only_the_first_bad_rows(sqlite_api):
    sqlite_api.app.config.update(IMPORT_MAX_ROWS=50, IMPORT_MAX_ERRORS=5)
    data = to_csv([loan_record(n) for n in range(51)])
    r = sqlite_api.post("admin", "/api/v1/imports/loans", data=data, content_type="text/csv")
    assert r.status_code == 422, r.json
    assert "more rows than an import accepts: at most 50 rows" in r.json["message"]
    bad = [{**loan_record(n), "branch": "NOPE"} for n in range(40)]
    r = sqlite_api.post("admin", "/api/v1/imports/loans", data=to_csv(bad), content_type="text/csv")
    assert r.status_code == 422
    details = r.json["details"]
    assert [e["line"] for e in details["errors"]] == [2, 3, 4, 5, 6]
    assert (details["error_total"], details["error_counts"]) == (40, {"branch": 40})


def _finished(api, job_id: int, user: str = "admin") -> dict:
    import time

    for _ in range(300):
        job = api.get(user, f"/api/v1/jobs/{job_id}").json
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_a_loan_book_sent_to_the_jobs_endpoint_is_imported_in_the_background_all_or_nothing(sqlite_api):
    engine = engine_of(sqlite_api.app)
    before = counts(engine)
    refused = sqlite_api.post("officer", "/api/v1/jobs/loan-import", data=to_csv([loan_record(1)]),
                              content_type="text/csv")
    assert refused.status_code == 403 and refused.json["details"]["reason"] == "loan_import_admins"
    assert sqlite_api.post("officer", "/api/v1/imports/loans", data=to_csv([loan_record(1)]),
                           content_type="text/csv").json["details"]["reason"] == "loan_import_admins"  # one rule

    bad = [loan_record(n) for n in range(50)]
    bad[7]["amount"] = "1e6"
    started = sqlite_api.post("admin", "/api/v1/jobs/loan-import", data=to_csv(bad), content_type="text/csv")
    assert started.status_code == 202 and started.json["kind"] == "loan_import"
    job = _finished(sqlite_api, started.json["id"])
    assert job["status"] == "done" and job["result"]["imported"] is False
    assert job["result"]["error_total"] == 1 and job["result"]["errors"][0]["line"] == 9
    assert counts(engine) == before  # nothing written

    good = [loan_record(n) for n in range(50)]
    started = sqlite_api.post("admin", "/api/v1/jobs/loan-import",
                              data={"file": (io.BytesIO(to_csv(good)), "book.csv")}, content_type="multipart/form-data")
    job = _finished(sqlite_api, started.json["id"])
    assert job["result"]["imported"] is True and job["result"]["created"] == 50 and job["done"] == 50
    assert counts(engine)[0] == before[0] + 50
    assert sqlite_api.post("admin", "/api/v1/jobs/loan-import", json={"loans": []}).status_code == 415
