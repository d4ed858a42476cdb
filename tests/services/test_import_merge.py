"""The set-wise checks and merge of the loan import (staging tables; COPY on PostgreSQL): what needs every
row (a loan twice, an enterprise named two ways, a loan of a case), and the differences it writes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from tests.api.test_imports import counts, loan_record, run_import, to_csv
from tests.factories import open_case
from workflow.db import read_session, unit_of_work
from workflow.models import Enterprise, Loan, LoanStage, User
from workflow.services import imports


def test_a_loan_twice_and_an_enterprise_named_two_ways_are_refused_by_line_and_nothing_is_written(bank):
    records = [loan_record(n) for n in range(6)]
    records[3]["loan_no"] = records[1]["loan_no"]                # line 5 repeats line 3
    records[4]["enterprise_uscc"] = records[0]["enterprise_uscc"]  # line 6 names line 2's enterprise otherwise
    before = counts(bank.engine)
    with pytest.raises(imports.ImportRejected) as rejected:
        run_import(bank.engine, to_csv(records))
    details = rejected.value.details
    assert [(e["line"], e["loan_no"], e["reason"]) for e in details["errors"]] == [
        (5, "IMP0000001", "loan_no IMP0000001 is already on line 3"),
        (6, "IMP0000004", "enterprise 91110000MA00000000 is named '企业0' on line 2")]
    assert details["error_counts"] == {"duplicate": 1, "enterprise_name": 1} and details["error_total"] == 2
    assert counts(bank.engine) == before


def _stored_record(bank, loan_no: str) -> dict:
    """The CSV record of a loan as it is stored (so re-importing it changes nothing)."""
    with read_session(bank.engine) as s:
        loan = s.exec(select(Loan).where(Loan.loan_no == loan_no)).one()
        ent = s.get(Enterprise, loan.enterprise_id)
        rec = {"loan_no": loan.loan_no, "enterprise_uscc": ent.uscc, "enterprise_name": ent.name,
               "enterprise_kind": ent.kind, "owner_name": ent.owner_name, "industry": ent.industry, "branch": "OU",
               "product_class": loan.product_class, "credit_total": f"{loan.credit_total:.2f}",
               "amount": f"{loan.amount:.2f}", "balance": f"{loan.balance:.2f}",
               "start_date": loan.start_date.isoformat(), "maturity_date": loan.maturity_date.isoformat(),
               "classification": loan.classification, "written_off": "false"}
        for ls in s.exec(select(LoanStage).where(LoanStage.loan_id == loan.id)):
            who = s.get(User, ls.user_id).employee_no
            rec[ls.stage] = f"{rec[ls.stage]}|{who}" if rec.get(ls.stage) else who
            rec[f"{ls.stage}_date"] = ls.performed_on.isoformat()
        return rec


def test_a_loan_of_a_case_takes_a_new_balance_but_not_new_handlers(bank):
    open_case(bank)
    rec = _stored_record(bank, "L2024-0002")
    result = run_import(bank.engine, to_csv([{**rec, "balance": "123.45"}]))
    assert (result.updated, result.handlers_added, result.handlers_removed) == (1, 0, 0)
    with read_session(bank.engine) as s:
        assert str(s.exec(select(Loan).where(Loan.loan_no == "L2024-0002")).one().balance) == "123.45"
    before = counts(bank.engine)
    with pytest.raises(imports.ImportRejected) as rejected:
        run_import(bank.engine, to_csv([{**rec, "pre_loan": "E1009"}]))
    [error] = rejected.value.details["errors"]
    assert error["line"] == 2 and error["reason"].startswith("loan is part of case ")
    assert error["reason"].endswith(": its stages cannot change")
    assert counts(bank.engine) == before


def test_a_later_snapshot_counts_the_same_in_a_dry_run_as_it_writes(bank):
    first = [loan_record(n) for n in range(4)]
    run_import(bank.engine, to_csv(first))
    later = [dict(r) for r in first] + [loan_record(4)]
    later[0]["enterprise_kind"] = "micro"      # the enterprise changes, the loan does not
    later[1]["approval"] = "E1002"             # E1003 no longer handled approval
    later[2]["review_date"] = "2024-08-17"     # the same reviewer, another day
    data = to_csv(later)
    before = counts(bank.engine)
    with unit_of_work(bank.engine) as s:
        dry = imports.import_loans(s, None, imports.read_file(data, "csv"), dry_run=True)
    assert counts(bank.engine) == before
    real = run_import(bank.engine, data)
    assert replace(dry, dry_run=False) == real
    assert (real.created, real.updated, real.unchanged) == (1, 0, 4)
    assert (real.enterprises_created, real.enterprises_updated) == (1, 1)
    assert (real.handlers_added, real.handlers_removed) == (1 + 4, 2)
    with read_session(bank.engine) as s:
        loan = s.exec(select(Loan).where(Loan.loan_no == "IMP0000001")).one()
        approvers = s.exec(select(User.employee_no).join(LoanStage, LoanStage.user_id == User.id)
                           .where(LoanStage.loan_id == loan.id, LoanStage.stage == "approval")).all()
        assert approvers == ["E1002"]
        assert s.exec(select(Enterprise.kind).where(Enterprise.uscc == "91110000MA00000000")).one() == "micro"
    assert run_import(bank.engine, data).unchanged == 5


def _validated(monkeypatch) -> list[str]:
    """The loan numbers of the rows the import validates (LoanRow.model_validate, still doing its work)."""
    seen: list[str] = []
    real = imports.LoanRow.model_validate

    def validate(raw, *args, **kwargs):
        seen.append(raw.get("loan_no"))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(imports.LoanRow, "model_validate", validate)
    return seen


def test_a_re_import_validates_only_the_rows_that_changed_since_the_last_import(bank, monkeypatch):
    records = [loan_record(n) for n in range(6)]
    run_import(bank.engine, to_csv(records))
    validated = _validated(monkeypatch)
    before = counts(bank.engine)
    again = run_import(bank.engine, to_csv(records))
    assert validated == [] and (again.unchanged, again.updated, again.created) == (6, 0, 0)
    assert counts(bank.engine) == before  # nothing written, not even an audit event
    records[2] = {**records[2], "balance": "1.00"}
    changed = run_import(bank.engine, to_csv(records + [loan_record(6)]))
    assert validated == ["IMP0000002", "IMP0000006"]
    assert (changed.unchanged, changed.updated, changed.created) == (5, 1, 1)
    with read_session(bank.engine) as s:
        assert str(s.exec(select(Loan).where(Loan.loan_no == "IMP0000002")).one().balance) == "1.00"


def test_a_known_row_still_counts_in_the_checks_across_rows(bank, monkeypatch):
    records = [loan_record(n) for n in range(3)]
    run_import(bank.engine, to_csv(records))
    twice = records + [records[1]]                              # line 5: the known loan of line 3 again
    other = {**loan_record(7), "enterprise_uscc": records[0]["enterprise_uscc"]}  # line 6: line 2's borrower
    validated = _validated(monkeypatch)
    before = counts(bank.engine)
    with pytest.raises(imports.ImportRejected) as rejected:
        run_import(bank.engine, to_csv(twice + [other]))
    assert validated == ["IMP0000007"]
    assert [(e["line"], e["reason"]) for e in rejected.value.details["errors"]] == [
        (5, "loan_no IMP0000001 is already on line 3"),
        (6, "enterprise 91110000MA00000000 is named '企业0' on line 2")]
    assert counts(bank.engine) == before


def test_a_row_is_checked_again_once_its_loan_or_borrower_changed_otherwise(bank):
    records = [loan_record(n) for n in range(3)]
    run_import(bank.engine, to_csv(records))
    # A JSON import moves a handler (the loan's own columns stay): the CSV row no longer describes the loan.
    with unit_of_work(bank.engine) as s:
        [(_, row)] = list(imports.read_file(to_csv([{**records[0], "approval": "E1002"}]), "csv"))
        imports.import_loans(s, None, imports.read_json({"loans": [row]}))
    # Another loan's row renames the borrower of IMP0000001.
    renamed = {**loan_record(9), "enterprise_uscc": records[1]["enterprise_uscc"], "enterprise_name": "改名企业"}
    assert run_import(bank.engine, to_csv([renamed])).enterprises_updated == 1
    again = run_import(bank.engine, to_csv(records))
    assert (again.handlers_added, again.enterprises_updated, again.unchanged) == (1, 1, 3)
    with read_session(bank.engine) as s:
        loan = s.exec(select(Loan).where(Loan.loan_no == "IMP0000001")).one()
        assert s.get(Enterprise, loan.enterprise_id).name == "企业1"


def test_a_row_naming_an_employee_number_that_changed_hands_is_checked_again(bank):
    records = [loan_record(0)]
    run_import(bank.engine, to_csv(records))
    with unit_of_work(bank.engine) as s:
        old = s.exec(select(User).where(User.employee_no == "E1000")).one()
        old.employee_no = "E1000-OLD"
        s.add(old)
    before = counts(bank.engine)
    with pytest.raises(imports.ImportRejected) as rejected:
        run_import(bank.engine, to_csv(records))
    assert "unknown employee number(s) E1000" in rejected.value.details["errors"][0]["reason"]
    assert counts(bank.engine) == before
    with unit_of_work(bank.engine) as s:
        heir = s.exec(select(User).where(User.employee_no == "E1004")).one()
        heir.employee_no = "E1000"
        s.add(heir)
        heir_id = heir.id
    again = run_import(bank.engine, to_csv(records))
    assert (again.handlers_added, again.handlers_removed) == (1, 1)
    with read_session(bank.engine) as s:
        loan = s.exec(select(Loan).where(Loan.loan_no == "IMP0000000")).one()
        pre_loan = s.exec(select(LoanStage).where(LoanStage.loan_id == loan.id, LoanStage.stage == "pre_loan")).one()
        assert pre_loan.user_id == heir_id


def test_a_workbook_of_the_same_rows_is_known_and_a_reordered_header_is_checked_again(bank, monkeypatch):
    from io import BytesIO

    from openpyxl import Workbook

    records = [loan_record(n) for n in range(3)]
    run_import(bank.engine, to_csv(records))
    wb = Workbook()
    wb.active.append(list(imports.COLUMNS))
    for rec in records:
        wb.active.append([rec.get(h, "") for h in imports.COLUMNS])
    buf = BytesIO()
    wb.save(buf)
    validated = _validated(monkeypatch)
    # The workbook's header has every column (the CSV's too): its cells read alike, so its rows are known.
    assert run_import(bank.engine, buf.getvalue(), "xlsx").unchanged == 3 and validated == []
    reordered = to_csv(records).decode().splitlines()
    header = reordered[0].split(",")
    # Columns in another order: another header, so the rows are validated again (and still change nothing).
    swapped = [",".join([h for h in header if h != "loan_no"] + ["loan_no"])] + [
        ",".join(r.split(",")[1:] + [r.split(",")[0]]) for r in reordered[1:]]
    assert run_import(bank.engine, "\n".join(swapped).encode()).unchanged == 3
    assert validated == ["IMP0000000", "IMP0000001", "IMP0000002"]
