"""The what-if page: a credit officer sets a stage's facts and reads the outcome, why, and similar precedents."""

from __future__ import annotations

from tests.web.support import login, set_passwords


def test_a_credit_officer_evaluates_facts_and_nothing_is_stored(bank, app_for):
    from sqlmodel import Session

    from workflow.models import AuditHead

    set_passwords(bank.engine)
    officer = app_for(bank.engine).test_client()
    login(officer, "officer")
    form = officer.get("/whatif/?stage=pre_loan").get_data(as_text=True)
    assert 'id="whatif-form"' in form and 'name="unperformed" value="PL03"' in form and 'id="nav-whatif"' in form
    with Session(bank.engine) as s:
        head = s.get(AuditHead, 1)
        before = head.seq if head else 0
    liable = officer.get("/whatif/?stage=pre_loan&unperformed=PL03&causal_PL03=1&violation=1&evaluate=1")
    page = liable.get_data(as_text=True)
    assert liable.status_code == 200 and 'data-outcome="liable"' in page and "✔" in page and "PL03" in page
    assert 'id="whatif-precedents"' in page
    clean = officer.get("/whatif/?stage=pre_loan&tolerance=within&evaluate=1").get_data(as_text=True)
    assert 'data-outcome="exempt"' in clean
    with Session(bank.engine) as s:
        head = s.get(AuditHead, 1)
        assert (head.seq if head else 0) == before  # a simulation: nothing recorded
    assert officer.get("/whatif/?stage=nonsense&evaluate=1").status_code == 200  # an unknown stage: the first one
