"""NPL intake: a loan import that moves loans into 次级/可疑/损失 puts them on the intake list, grouped by
enterprise with their handlers and the scope check's verdict; a chair registers one group as one case, or
records why no case is opened; the loan picker finds a loan by number and by enterprise name."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, ValidationFailed
from workflow.models import AuditEvent, CaseLoan, Respondent
from workflow.services import imports, intake

ENTERPRISES = {"A": ("91110000MA00000A1X", "甲小微科技有限公司"), "B": ("91110000MA00000B2X", "乙小微贸易有限公司")}


def _row(no: str, ent: str, classification: str, officer: str = "E1000") -> dict:
    uscc, name = ENTERPRISES[ent]
    return {"loan_no": no, "enterprise": {"uscc": uscc, "name": name, "kind": "small", "owner_name": "某某"},
            "branch": "OU", "product_class": "inclusive_sme", "credit_total": "2000000", "amount": "500000",
            "balance": "400000", "start_date": "2024-09-01", "maturity_date": "2025-09-01",
            "classification": classification, "written_off": False,
            "stages": [{"stage": "pre_loan", "employee_no": officer, "performed_on": "2024-08-20"},
                       {"stage": "approval", "employee_no": "E1002", "performed_on": "2024-08-25"}]}


def _book(classes: dict[str, tuple[str, str]]) -> list[tuple[int, dict]]:
    return [(n, _row(no, ent, cls)) for n, (no, (ent, cls)) in enumerate(classes.items(), start=1)]


@pytest.fixture
def imported(bank):
    """The loan book before and after: five loans of two enterprises turn non-performing, one stays normal."""
    performing = {"N-A1": ("A", "normal"), "N-A2": ("A", "normal"), "N-A3": ("A", "special_mention"),
                  "N-B1": ("B", "normal"), "N-B2": ("B", "normal"), "N-B3": ("B", "normal")}
    with unit_of_work(bank.engine) as s:
        first = imports.import_loans(s, bank.user(s, "admin"), _book(performing))
    later = {**performing, "N-A1": ("A", "substandard"), "N-A2": ("A", "doubtful"), "N-A3": ("A", "loss"),
             "N-B1": ("B", "substandard"), "N-B2": ("B", "loss")}
    with unit_of_work(bank.engine) as s:
        second = imports.import_loans(s, bank.user(s, "admin"), _book(later))
    return first, second


def _ours(groups):
    return {g.enterprise: g for g in groups if g.enterprise in {n for _, n in ENTERPRISES.values()}}


def test_five_loans_of_two_enterprises_turning_npl_list_two_groups_and_one_registers_as_one_case(bank, imported):
    first, second = imported
    assert (first.new_npls, second.new_npls) == (0, 5)
    with Session(bank.engine) as s:
        groups, _total = intake.groups(s, bank.user(s, "chair"))
    ours = _ours(groups)
    assert set(ours) == {"甲小微科技有限公司", "乙小微贸易有限公司"}
    a, b = ours["甲小微科技有限公司"], ours["乙小微贸易有限公司"]
    assert [lo.loan_no for lo in a.loans] == ["N-A1", "N-A2", "N-A3"] and [lo.loan_no for lo in b.loans] == ["N-B1", "N-B2"]
    assert a.in_scope and b.in_scope and a.open_case is None
    assert [(h.name, h.stages) for h in a.handlers] == [("张三", ["pre_loan"]), ("王五", ["approval"])]
    # Merged consideration: the same staff handled B's NPLs and those of the test bank's own enterprise too.
    assert [h.other_groups for h in a.handlers] == [2, 2]

    with unit_of_work(bank.engine) as s:
        case = intake.register(s, bank.user(s, "chair"), a.enterprise_id)
        case_id = case.id
    with Session(bank.engine) as s:
        loans = s.exec(select(CaseLoan.loan_no).where(CaseLoan.case_id == case_id).order_by(CaseLoan.loan_no)).all()
        people = s.exec(select(Respondent.user_id).where(Respondent.case_id == case_id)).all()
        groups, _total = intake.groups(s, bank.user(s, "chair"))
    assert loans == ["N-A1", "N-A2", "N-A3"]
    assert sorted(people) == sorted([bank.users["officer"], bank.users["approver"]])
    assert set(_ours(groups)) == {"乙小微贸易有限公司"}  # the registered group left the list


def test_recording_why_no_case_is_opened_takes_the_group_off_the_list_and_is_audited(bank, imported):
    with Session(bank.engine) as s:
        b = _ours(intake.groups(s, bank.user(s, "chair"))[0])["乙小微贸易有限公司"]
    with pytest.raises(ValidationFailed, match="say why"):
        with unit_of_work(bank.engine) as s:
            intake.dismiss(s, bank.user(s, "chair"), b.enterprise_id, "other")
    with pytest.raises(ValidationFailed, match="unknown reason"):
        with unit_of_work(bank.engine) as s:
            intake.dismiss(s, bank.user(s, "chair"), b.enterprise_id, "forgotten")
    with pytest.raises(PermissionDenied):  # a credit officer does not work the intake list
        with unit_of_work(bank.engine) as s:
            intake.dismiss(s, bank.user(s, "officer"), b.enterprise_id, "recovered")
    with pytest.raises(PermissionDenied):  # nor a chair of another tier-1 branch (out of scope)
        with unit_of_work(bank.engine) as s:
            from workflow.models import User

            other = User(username="t2chair", name="冯主任", employee_no="E9001", branch_id=bank.branches["T2"],
                         roles="committee_chair")
            s.add(other)
            s.flush()
            intake.dismiss(s, other, b.enterprise_id, "recovered")
    with unit_of_work(bank.engine) as s:
        assert intake.dismiss(s, bank.user(s, "chair"), b.enterprise_id, "recovered", "借款人已全额还款") == 2
    with Session(bank.engine) as s:
        assert "乙小微贸易有限公司" not in _ours(intake.groups(s, bank.user(s, "chair"))[0])
        ev = s.exec(select(AuditEvent).where(AuditEvent.event == "intake_dismissed")).one()
    assert ev.payload == {"enterprise_id": b.enterprise_id, "loans": ["N-B1", "N-B2"], "reason": "recovered",
                          "note": "借款人已全额还款"}


def test_the_loan_picker_finds_a_loan_by_number_and_by_enterprise_name(bank, imported):
    with Session(bank.engine) as s:
        chair = bank.user(s, "chair")
        by_number = intake.search_loans(s, chair, "N-A2")
        by_name = intake.search_loans(s, chair, "乙小微")
        assert intake.search_loans(s, chair, "N-") != [] and intake.search_loans(s, chair, "N") == []  # two characters at least
    assert [(lo.loan_no, lo.enterprise, lo.awaiting) for lo in by_number] == [("N-A2", "甲小微科技有限公司", True)]
    # awaiting a case first: the two NPLs, then the performing loan (shown, not selectable)
    assert [(lo.loan_no, lo.awaiting) for lo in by_name] == [("N-B1", True), ("N-B2", True), ("N-B3", False)]
