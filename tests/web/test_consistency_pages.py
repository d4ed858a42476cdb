"""Consistency across branches: two tier-1 branches that decided identical facts differently are listed for
an auditor (and head office), hidden from those the need-to-know policy keeps out; the figures per branch
beside the bank's, with their dispersion, on the page and in the Chinese XLSX."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from sqlmodel import Session, select

from tests.factories import drive, liable_officer, make_bank
from tests.web.support import login, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import AccessLog, Case, Enterprise, Loan, LoanStage, Respondent, User
from workflow.services import cases, consistency


def _second_branch(bank):
    """Staff and one NPL of an enterprise at T2, with T2's own committee; the bank as T2 would drive it."""
    users = dict(bank.users)
    with unit_of_work(bank.engine) as s:
        t2 = bank.branches["T2"]
        for n, (key, roles) in enumerate((("officer", "credit_officer"), ("reviewer", "credit_officer"),
                                          ("approver", "credit_officer"), ("investigator", "investigator"),
                                          ("member1", "committee_member"), ("chair", "committee_chair"))):
            u = User(username=f"t2_{key}", name=f"二行{key}", employee_no=f"T2E{n}", branch_id=t2, roles=roles)
            s.add(u)
            s.flush()
            users[key] = u.id
        users["member2"] = bank.users["other_member"]
        ent = Enterprise(name="二号示范企业", uscc="91110000MC0000002X", kind="small")
        s.add(ent)
        s.flush()
        lo = Loan(loan_no="L2024-T2-01", enterprise_id=ent.id, branch_id=t2, product_class="inclusive_sme",
                  credit_total=Decimal("3000000"), amount=Decimal("1000000"), balance=Decimal("800000"),
                  start_date=date(2024, 9, 1), maturity_date=date(2025, 9, 1), classification="substandard")
        s.add(lo)
        s.flush()
        for stage, who, day in (("pre_loan", "officer", 10), ("review", "reviewer", 15),
                                ("approval", "approver", 20), ("post_loan", "officer", 60)):
            s.add(LoanStage(loan_id=lo.id, stage=stage, user_id=users[who],
                            performed_on=date(2024, 8, 1) + timedelta(days=day)))
        loan_id = lo.id
    return replace(bank, users=users, loans=[loan_id])


def test_two_branches_that_decided_identical_facts_differently_are_listed_for_an_auditor_only(sqlite_engine,
                                                                                             app_for):
    bank = make_bank(sqlite_engine, n_loans=1)
    t1_case = drive(bank, "determined", facts_for=liable_officer)  # the officer: liable, as recommended
    t2 = _second_branch(bank)
    t2_case = drive(t2, "under_review", facts_for=liable_officer)
    with unit_of_work(sqlite_engine) as s:  # T2's committee reduces the officer's liability, with a reason
        case = s.get(Case, t2_case)
        officer = s.exec(select(Respondent).where(Respondent.case_id == t2_case,
                                                  Respondent.user_id == t2.users["officer"])).one()
        for member in ("member1", "member2", "chair"):
            for r in s.exec(select(Respondent).where(Respondent.case_id == t2_case)):
                outcome = "reduced" if r.id == officer.id else r.recommended_outcome
                cases.record_vote(s, case, t2.user(s, member), r.id, outcome)
        cases.determine(s, case, t2.user(s, "chair"), {officer.id: "情节较轻"})
    with unit_of_work(sqlite_engine) as s:
        start, end = date.today() - timedelta(days=1), date.today()
        groups = consistency.like_cases_decided_differently(s, start, end)
        assert len(groups) == 1
        members = {(m.case_id, m.outcome) for m in groups[0]["members"]}
        assert members == {(t1_case, "liable"), (t2_case, "reduced")} and "PL03" in groups[0]["codes"]
        report = consistency.branch_figures(s, start, end)
        by_code = {r["branch"].code: r for r in report["branches"]}
        assert by_code["T1"]["liable_share"] == Decimal("0.3333") and by_code["T2"]["liable_share"] == Decimal(0)
        assert by_code["T2"]["deviation_rate"] == Decimal("0.3333") and report["bank"]["deviation_rate"] == Decimal(
            "0.1667")
        assert report["dispersion"]["liable_share"]["range"] == Decimal("0.3333")

    set_passwords(sqlite_engine)
    auditor = app_for(sqlite_engine).test_client()
    assert login(auditor, "auditor").status_code == 302
    page = auditor.get("/dashboard/consistency").get_data(as_text=True)
    assert f'class="like-case" data-case="{t1_case}"' in page and f'class="like-case" data-case="{t2_case}"' in page
    assert 'data-branch="T1"' in page and 'data-branch="T2"' in page and 'id="consistency-bank"' in page
    assert auditor.get("/dashboard/consistency.xlsx").status_code == 302  # a GET only returns to the report
    workbook = post(auditor, "/dashboard/consistency.xlsx", {"reason": "同案不同判专项检查"})
    with Session(sqlite_engine) as s:
        [entry] = s.exec(select(AccessLog).where(AccessLog.action == "export")).all()
    assert (entry.target, entry.details["reason"], entry.details["like_cases"]) == (
        "consistency.xlsx", "同案不同判专项检查", True)
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(workbook.data))
    assert wb.sheetnames == ["分行对比", "同案不同判"]
    assert {row[6] for row in wb["同案不同判"].iter_rows(min_row=2, values_only=True)} == {"一分行", "二分行"}

    for name in ("officer", "chair"):  # a credit officer has no dashboard; a tier-1 chair sees no like cases
        client = app_for(sqlite_engine).test_client()
        assert login(client, name).status_code == 302
        response = client.get("/dashboard/consistency")
        text = response.get_data(as_text=True)
        assert 'class="like-case"' not in text and 'id="like-cases"' not in text
        assert response.status_code == (403 if name == "officer" else 200)
        if name == "chair":
            assert 'data-branch="T1"' in text and 'data-branch="T2"' not in text
            wb = load_workbook(io.BytesIO(post(client, "/dashboard/consistency.xlsx", {"reason": "分行对比"}).data))
            assert wb.sheetnames == ["分行对比"]
