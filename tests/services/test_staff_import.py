"""Staff at scale: the HR file import (all or nothing, bad rows by line, the policy on every row) and the users
list in natural order, filtered and paged."""

from __future__ import annotations

import io

import pytest
from sqlmodel import Session, func, select

from workflow.db import unit_of_work
from workflow.domain.errors import ValidationFailed
from workflow.models import AuditEvent, User
from workflow.services import staff

HEADER = "employee_no,username,name,branch,roles,active\n"


def _csv(lines: list[str]) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode("utf-8")


def _five_thousand() -> bytes:
    branches = ("T1", "SB", "OU", "T2")
    roles = ("credit_officer", "investigator", "committee_member", "credit_officer|appeal_reviewer")
    return _csv([f"H{n},staff{n},员工{n},{branches[n % 4]},{roles[n % 4]},{'no' if n % 10 == 0 else 'yes'}"
                 for n in range(1, 5001)])


def _import(bank, data: bytes, filename: str = "hr.csv", who: str = "admin"):
    with unit_of_work(bank.engine) as s:
        return staff.import_staff(s, bank.user(s, who), staff.read_hr_file(data, filename))


def _count(bank) -> int:
    with Session(bank.engine) as s:
        return s.exec(select(func.count()).select_from(User)).one()


def test_five_thousand_staff_from_an_hr_file_are_paged_in_natural_order_and_filtered_by_branch_and_role(bank):
    before = _count(bank)
    result = _import(bank, _five_thousand())
    assert (result.created, result.updated) == (5000, 0)
    assert _count(bank) == before + 5000
    with Session(bank.engine) as s:
        first = staff.list_staff(s, "/", q="staff", sort="username")
        assert first.total == 5000 and first.pages == 100 and len(first.users) == 50
        assert [u.username for u in first.users[:12]] == [f"staff{n}" for n in range(1, 13)]
        second = staff.list_staff(s, "/", q="staff", sort="username", page=2)
        assert second.users[0].username == "staff51"
        last = staff.list_staff(s, "/", q="staff", sort="employee_no", descending=True)
        assert [u.employee_no for u in last.users[:2]] == ["H5000", "H4999"]
        t2 = bank.branches["T2"]
        reviewers = staff.list_staff(s, "/", branch_id=t2, role="appeal_reviewer", per_page=20)
        assert reviewers.total == 1250 and reviewers.pages == 63
        assert {u.branch_id for u in reviewers.users} == {t2}
        assert all("appeal_reviewer" in u.role_set for u in reviewers.users)
        # T1 holds its sub-branch and outlet: the file's investigators at SB (n % 4 == 2) and the factory's one
        below_t1 = staff.list_staff(s, "/", branch_id=bank.branches["T1"], role="investigator")
        assert below_t1.total == 1250 + 1
        inactive = staff.list_staff(s, "/", q="staff", status="inactive")
        assert inactive.total == 500 and not any(u.active for u in inactive.users)
        events = s.exec(select(AuditEvent).where(AuditEvent.event == "import_staff")).all()
        assert len(events) == 1 and events[0].payload["created"] == 5000


def test_a_bad_row_writes_nothing_and_is_reported_with_its_line(bank):
    lines = [f"H{n},staff{n},员工{n},SB,credit_officer,yes" for n in range(1, 11)]
    lines[6] = "H7,staff7,员工7,NOPE,credit_officer,yes"  # line 8 of the file (the header is line 1)
    lines[8] = "H9,staff9,员工9,SB,committee_member|auditor,yes"  # an auditor who judges: line 10
    before = _count(bank)
    with pytest.raises(staff.StaffImportRejected) as caught:
        _import(bank, _csv(lines))
    errors = caught.value.details["errors"]
    assert [(e["line"], e["employee_no"], e["code"]) for e in errors] == [(8, "H7", "unknown_branch"),
                                                                          (10, "H9", "refused")]
    assert "NOPE" in errors[0]["reason"]
    assert errors[1]["values"]["rule"] == "audit_independence"
    assert _count(bank) == before
    with Session(bank.engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.event == "import_staff")).first() is None


def test_a_branch_administrator_imports_only_into_their_subtree_and_never_grants_the_auditor_role(bank):
    with unit_of_work(bank.engine) as s:
        t1_admin = User(username="t1_admin", name="分行管理员", employee_no="E9001", branch_id=bank.branches["T1"],
                        roles="admin")
        s.add(t1_admin)
        s.flush()
        bank.users["t1_admin"] = t1_admin.id
    with pytest.raises(staff.StaffImportRejected) as caught:
        _import(bank, _csv(["H1,a1,甲,SB,credit_officer,yes", "H2,a2,乙,T2,credit_officer,yes",
                            "H3,a3,丙,SB,auditor,yes", "E1000,officer,张三,HO,credit_officer,yes"]), who="t1_admin")
    assert [(e["line"], e["values"].get("rule")) for e in caught.value.details["errors"]] == [
        (3, "outside_subtree"), (4, "bank_wide_role"), (5, "outside_subtree")]


def test_a_second_file_updates_the_staff_it_names_and_repeats_change_nothing(bank):
    _import(bank, _csv(["H1,a1,甲,SB,credit_officer,yes", "H2,a2,乙,SB,investigator,yes"]))
    again = _import(bank, _csv(["H1,a1,甲,SB,credit_officer,yes", "H2,a2,乙二,T1,investigator committee_member,no"]))
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    with Session(bank.engine) as s:
        h2 = s.exec(select(User).where(User.employee_no == "H2")).one()
        assert (h2.name, h2.branch_id, h2.roles, h2.active) == ("乙二", bank.branches["T1"],
                                                                "investigator committee_member", False)
        assert h2.password_hash == ""  # nobody typed a password for them
    same = _import(bank, _csv(["H1,a1,甲,SB,credit_officer,yes"]))
    assert (same.created, same.updated, same.unchanged) == (0, 0, 1)


def test_repeated_people_in_the_file_and_taken_usernames_are_refused_by_line(bank):
    with pytest.raises(staff.StaffImportRejected) as caught:
        _import(bank, _csv(["H1,a1,甲,SB,,yes", "H1,a2,乙,SB,,yes", "H3,a1,丙,SB,,yes", "H4,officer,丁,SB,,yes",
                            "H5,a5,,SB,,maybe", "H6,a6,戊,SB,judge,yes"]))
    assert [(e["line"], e["code"]) for e in caught.value.details["errors"]] == [
        (3, "repeated_employee_no"), (4, "repeated_username"), (5, "username_taken"), (6, "required"),
        (6, "active"), (7, "unknown_role")]


def test_an_xlsx_hr_file_imports_like_the_csv_and_a_wrong_header_is_line_one(bank):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["employee_no", "username", "name", "branch", "roles"])
    ws.append([20001, "x1", "甲", "SB", "credit_officer"])
    ws.append(["H20002", "x2", "乙", "OU", "credit_officer"])
    out = io.BytesIO()
    wb.save(out)
    result = _import(bank, out.getvalue(), "hr.xlsx")
    assert result.created == 2
    with Session(bank.engine) as s:
        assert s.exec(select(User).where(User.employee_no == "20001")).one().username == "x1"
    with pytest.raises(staff.StaffImportRejected) as caught:
        _import(bank, b"employee_no,login,name\nH1,a,b\n")
    assert caught.value.details["errors"][0]["line"] == 1
    assert "login" in caught.value.details["errors"][0]["reason"]
    with pytest.raises(ValidationFailed):
        _import(bank, b"anything", "hr.txt")
