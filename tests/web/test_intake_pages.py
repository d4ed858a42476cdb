"""The intake list and the loan picker in the browser's pages (no JavaScript needed)."""

from __future__ import annotations

from sqlmodel import Session, select

from tests.web.support import login, post, set_passwords
from workflow.models import Case, CaseLoan


def test_a_chair_registers_from_the_intake_list_and_picks_loans_on_the_registration_form(bank, app_for):
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    chair = app.test_client()
    login(chair, "chair")
    page = chair.get("/intake/").get_data(as_text=True)
    assert "新增不良待立案" in page and "示范小微制造有限公司" in page and "L2024-0001" in page
    assert 'data-scope="in"' in page and "张三" in page and "贷前调查" in page
    r = post(chair, f"/intake/{bank.enterprise_id}/register")
    assert r.status_code == 302 and "/cases/" in r.headers["Location"]
    with Session(bank.engine) as s:
        case = s.exec(select(Case)).one()
        assert sorted(s.exec(select(CaseLoan.loan_id).where(CaseLoan.case_id == case.id)).all()) == sorted(bank.loans)
    assert "示范小微制造有限公司" not in chair.get("/intake/").get_data(as_text=True)

    # The loan picker finds loans by number and by enterprise name; a loan in a case is shown but not selectable.
    found = chair.get("/cases/new?q=L2024-0001").get_data(as_text=True)
    assert 'id="picker-results"' in found and "L2024-0001" in found and "（不在待立案范围）" in found
    assert chair.get("/cases/new?q=示范小微").get_data(as_text=True).count('name="loan_ids"') == 2

    officer = app.test_client()
    login(officer, "officer")
    assert officer.get("/intake/").status_code == 403
    assert 'id="nav-intake"' not in officer.get("/inbox").get_data(as_text=True)


def test_registering_by_ticking_loans_in_the_picker(bank, app_for):
    set_passwords(bank.engine)
    chair = app_for(bank.engine).test_client()
    login(chair, "chair")
    r = post(chair, "/cases/new", {"loans": "", "loan_ids": [str(i) for i in bank.loans]})
    assert r.status_code == 302, r.get_data(as_text=True)
    with Session(bank.engine) as s:
        assert len(s.exec(select(CaseLoan)).all()) == 2
