"""The HR feed: the referral record, the sanctions recorded back, refunds after an improving decision and the
monthly list of deductions and refunds (CSV, XLSX)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from tests.factories import TODAY, decide_appeal_by_panel, drive, liable_officer, make_bank
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, TransitionNotAllowed, ValidationFailed
from workflow.models import AccessLog, Appeal, AuditEvent, Case, Referral, Refund, Respondent
from workflow.services import cases, hr

LATER = TODAY + timedelta(days=14)
DECIDED = LATER + timedelta(days=20)


def _officer(s, bank, case_id):
    return s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                           Respondent.user_id == bank.users["officer"])).one()


def _deduct(bank, case_id, amount="3000.00", month="2026-01"):
    with unit_of_work(bank.engine) as s:
        return hr.record_sanction(s, s.get(Case, case_id), bank.user(s, "admin"), _officer(s, bank, case_id).id,
                                  points=6, sanction_type="warning", amount=amount, month=month,
                                  note="人力资源部问责决定").id


def _decide(bank, case_id, new_outcome, day=DECIDED):
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()
        decide_appeal_by_panel(bank, s, case, appeal.id, "altered", new_outcome, "新证据表明已核实借款用途",
                               today=day)
        cases.conclude_appeals(s, case, bank.user(s, "appeal_chair"), today=day)


def test_an_appeal_that_improves_a_liable_outcome_after_a_recorded_deduction_puts_a_refund_line_in_the_next_hr_export(
        engine):
    bank = make_bank(engine)
    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    _deduct(bank, case_id, amount="3000.00", month="2026-01")
    _decide(bank, case_id, "exempt", day=DECIDED)
    month = f"{DECIDED.year:04d}-{DECIDED.month:02d}"
    with unit_of_work(engine) as s:
        lines = hr.month_lines(s, month)
        refund = next(x for x in lines if x["kind"] == "refund")
        assert (refund["name"], refund["employee_no"], refund["refund"], refund["deducted"],
                refund["deducted_month"], refund["decision"], refund["decided_on"], refund["outcome"]) == \
            ("张三", "E1000", Decimal("3000.00"), Decimal("3000.00"), "2026-01", "appeal_decision", DECIDED, "exempt")
        assert refund["decision_ref"].startswith("总") or "〔" in refund["decision_ref"]
        events = [e.event for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id))]
        assert "record_sanction" in events and "refund_due" in events
        hr.authorize_export(s, bank.user(s, "auditor"), month=month, fmt="csv", reason="月度薪酬核算")
        body = hr.render("csv", month, lines).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["类型", "姓名", "员工编号"]
    line = dict(zip(rows[0], rows[1], strict=True))
    assert (line["类型"], line["姓名"], line["返还金额（元）"], line["原扣发金额（元）"], line["改善决定"],
            line["认定结果"]) == ("返还", "张三", "3000.00", "3000.00", "申诉复核决定", "免责")
    # The deduction itself is in its own month's list.
    with unit_of_work(engine) as s:
        jan = hr.month_lines(s, "2026-01")
    assert [(x["kind"], x["amount"], x["points"]) for x in jan] == [("deduction", Decimal("3000.00"), 6)]


def test_an_appeal_to_reduced_refunds_the_part_the_reduced_outcome_no_longer_carries(engine):
    bank = make_bank(engine)
    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    _deduct(bank, case_id, amount="3000.00")
    _decide(bank, case_id, "reduced")
    with unit_of_work(engine) as s:
        refunds = s.exec(select(Refund)).all()
    # The rule set's economic penalty: liable 1, reduced 0.5.
    assert [(r.amount, r.new_outcome) for r in refunds] == [(Decimal("1500.00"), "reduced")]


def test_an_upheld_appeal_makes_no_refund(engine):
    bank = make_bank(engine)
    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    _deduct(bank, case_id)
    with unit_of_work(engine) as s:
        case = s.get(Case, case_id)
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()
        decide_appeal_by_panel(bank, s, case, appeal.id, "upheld", None, "事实清楚", today=DECIDED)
    with unit_of_work(engine) as s:
        assert s.exec(select(Refund)).all() == []


def test_the_referral_records_recipient_reference_and_what_is_referred_and_audits_it(sqlite_engine):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "final", facts_for=liable_officer, appeal=False)
    with unit_of_work(sqlite_engine) as s:
        officer = _officer(s, bank, case_id)
        cases.refer_for_accountability(s, s.get(Case, case_id), bank.user(s, "chair"), recipient="纪检监察部",
                                       reference="郑分人〔2026〕7号", respondent_ids=[officer.id],
                                       matters="贷前调查未核实借款用途")
    with unit_of_work(sqlite_engine) as s:
        ref = s.exec(select(Referral).where(Referral.case_id == case_id)).one()
        assert (ref.recipient, ref.reference, ref.matters) == ("纪检监察部", "郑分人〔2026〕7号", "贷前调查未核实借款用途")
        assert [x["respondent_id"] for x in ref.respondents] == [officer.id]
        assert ref.respondents[0]["outcome"] == "liable" and ref.respondents[0]["determination"]
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "refer_for_accountability")).one()
        assert event.payload["recipient"] == "纪检监察部" and event.payload["reference"] == "郑分人〔2026〕7号"


def test_a_referral_without_a_reference_takes_the_referral_letters_number(sqlite_engine):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "referred")
    with unit_of_work(sqlite_engine) as s:
        ref = s.exec(select(Referral).where(Referral.case_id == case_id)).one()
        assert "〔" in ref.reference and ref.recipient == "人力资源部（问责部门）"


def test_an_exempt_respondent_cannot_be_referred(sqlite_engine):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "final", facts_for=liable_officer, appeal=False)
    with unit_of_work(sqlite_engine) as s:
        exempt = s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                                 Respondent.final_outcome == "exempt")).first()
        with pytest.raises(ValidationFailed):
            cases.refer_for_accountability(s, s.get(Case, case_id), bank.user(s, "chair"), respondent_ids=[exempt.id])


def test_only_an_administrator_of_the_case_records_sanctions_and_only_once_it_is_determined(sqlite_engine):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "under_review", facts_for=liable_officer)
    with unit_of_work(sqlite_engine) as s:
        rid = _officer(s, bank, case_id).id
        with pytest.raises(PermissionDenied):
            hr.record_sanction(s, s.get(Case, case_id), bank.user(s, "chair"), rid, points=1)
        with pytest.raises(TransitionNotAllowed):
            hr.record_sanction(s, s.get(Case, case_id), bank.user(s, "admin"), rid, points=1)


@pytest.mark.parametrize("fields", [
    {"points": -1}, {"points": 101}, {"sanction_type": "flogging", "points": 1}, {"amount": "1e5", "month": "2026-01"},
    {"amount": "12.345", "month": "2026-01"}, {"amount": "100"}, {"amount": "100", "month": "2026-13"}, {},
])
def test_a_bad_sanction_is_refused_and_writes_nothing(sqlite_engine, fields):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "final", facts_for=liable_officer, appeal=False)
    with unit_of_work(sqlite_engine) as s:
        with pytest.raises(ValidationFailed):
            hr.record_sanction(s, s.get(Case, case_id), bank.user(s, "admin"), _officer(s, bank, case_id).id,
                               **fields)
    with unit_of_work(sqlite_engine) as s:
        assert hr.month_lines(s, "2026-01") == []


def test_the_hr_export_needs_a_reason_and_the_right_role_and_is_logged(sqlite_engine):
    bank = make_bank(sqlite_engine)
    with unit_of_work(sqlite_engine) as s:
        with pytest.raises(PermissionDenied):
            hr.authorize_export(s, bank.user(s, "chair"), month="2026-01", fmt="csv", reason="核算")
        with pytest.raises(ValidationFailed):
            hr.authorize_export(s, bank.user(s, "admin"), month="2026-01", fmt="csv", reason=" ")
        hr.authorize_export(s, bank.user(s, "admin"), month="2026-01", fmt="xlsx", reason="月度核算")
    with unit_of_work(sqlite_engine) as s:
        entry = s.exec(select(AccessLog).where(AccessLog.action == "export")).one()
        assert entry.target == "hr:2026-01" and entry.details["reason"] == "月度核算"


def test_the_xlsx_list_has_chinese_headings_number_formats_and_a_sheet_per_person(sqlite_engine):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    _deduct(bank, case_id, amount="1234.56", month="2026-01")
    with unit_of_work(sqlite_engine) as s:
        body = hr.render("xlsx", "2026-01", hr.month_lines(s, "2026-01"))
    wb = load_workbook(io.BytesIO(body))
    ws = wb.worksheets[0]
    assert ws.cell(1, 1).value == "类型" and ws.freeze_panes == "A2" and ws.auto_filter.ref
    amount = ws.cell(2, 9)
    assert amount.value == 1234.56 and amount.number_format == "#,##0.00"
    summary = wb["按人员汇总"]
    assert [c.value for c in summary[2]] == ["张三", "E1000", "一网点", 1234.56, 0, 1234.56]
