"""The demo bank: loaded through the real services, deterministic, complete enough to show every feature."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, func, select

from tests.conftest import demo_copy, demo_summary
from workflow import demo
from workflow.db import unit_of_work
from workflow.domain.errors import ValidationFailed
from workflow.domain.states import SEVERITY, STATE_CODES
from workflow.models import (
    NPL_CLASSES,
    ROLES,
    Appeal,
    AuditEvent,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Letter,
    Loan,
    LoanStage,
    Respondent,
    User,
)
from workflow.services import accounts, audit

pytestmark = pytest.mark.xdist_group("demo")  # the demo bank is loaded once per worker: keep its users on one


@pytest.fixture(scope="module")
def demo_bank(demo_template, audit_key, tmp_path_factory):
    """One copy of the demo bank (loaded once for the run: loading it renders ~70 letters) for the module, its
    audit chain checkpointed as the app does it (signed, outside the database)."""
    engine = demo_copy(demo_template, tmp_path_factory.mktemp("demo"), audit_key)
    yield engine, demo_summary(demo_template)
    engine.dispose()


def _count(s: Session, model, *where) -> int:
    query = select(func.count()).select_from(model)
    for w in where:
        query = query.where(w)
    return s.exec(query).one()


def test_the_demo_bank_has_a_three_level_branch_tree_below_head_office(demo_bank):
    engine, summary = demo_bank
    with Session(engine) as s:
        branches = s.exec(select(Branch)).all()
        by_id = {b.id: b for b in branches}
        assert {b.level for b in branches} == {0, 1, 2, 3}
        for b in branches:
            parent = by_id.get(b.parent_id)
            assert b.path == (parent.path if parent else "/") + f"{b.id}/"
            assert parent is None or parent.level == b.level - 1
    assert summary["branches"] == {"head_office": 1, "tier1_branch": 4, "sub_branch": 8, "outlet": 16}


def test_the_demo_bank_has_at_least_forty_staff_covering_every_role_who_sign_in_with_the_demo_password(demo_bank):
    engine, summary = demo_bank
    assert summary["users"] >= 40
    assert all(summary["users_by_role"][role] >= 1 for role in ROLES)
    with Session(engine) as s:
        for username in ("admin", "officer1", "investigator1", "member1", "chair1", "appeal1", "auditor1"):
            assert accounts.authenticate(s, username, demo.DEMO_PASSWORD) is not None, username
        assert accounts.authenticate(s, "officer1", "wrong-password") is None
        chairs = s.exec(select(User).where(User.roles == "committee_chair")).all()
        assert {s.get(Branch, u.branch_id).level for u in chairs} == {1}
        reviewers = s.exec(select(User).where(User.roles == "appeal_reviewer")).all()
        assert {s.get(Branch, u.branch_id).level for u in reviewers} == {0}


def test_the_demo_book_has_two_hundred_npls_over_sixty_enterprises_in_scope_with_every_stage_recorded(demo_bank):
    engine, summary = demo_bank
    assert summary["npl_sme_loans"] >= 200
    assert summary["npl_enterprises"] >= 60
    with Session(engine) as s:
        npls = s.exec(select(Loan).where(Loan.product_class == "inclusive_sme",
                                         Loan.classification.in_(NPL_CLASSES))).all()
        assert all(lo.credit_total <= 10_000_000 for lo in npls)
        kinds = set(s.exec(select(Enterprise.kind).where(Enterprise.id.in_({lo.enterprise_id for lo in npls}))))
        assert kinds <= {"small", "micro", "individual_business", "owner"}
        stages = s.exec(select(LoanStage).where(LoanStage.loan_id.in_([lo.id for lo in npls]))).all()
        per_loan: dict[int, dict[str, date]] = {}
        for st in stages:
            per_loan.setdefault(st.loan_id, {})[st.stage] = st.performed_on
        for lo in npls:
            done = per_loan[lo.id]
            assert set(done) == {"pre_loan", "review", "approval", "disbursement", "post_loan"}
            assert done["pre_loan"] < done["review"] < done["approval"] < done["disbursement"] < lo.start_date
            assert done["post_loan"] > lo.start_date
        # A performing book of other classes beside the NPLs, so that the tolerance is meaningful.
        assert _count(s, Loan, Loan.product_class == "corporate") > 0
        assert _count(s, Loan, Loan.classification.in_(("normal", "special_mention"))) > len(npls)


def _uscc_is_valid(code: str) -> bool:
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    if len(code) != 18 or any(c not in chars for c in code):
        return False
    return chars[(31 - sum(chars.index(c) * w for c, w in zip(code, weights, strict=False)) % 31) % 31] == code[17]


def test_every_demo_borrower_has_a_unified_social_credit_code_with_a_correct_check_character(demo_bank):
    engine, _ = demo_bank
    with Session(engine) as s:
        codes = s.exec(select(Enterprise.uscc, Enterprise.kind)).all()
    assert len(codes) >= 60
    assert all(_uscc_is_valid(code) for code, _ in codes)
    assert all(code.startswith("92") for code, kind in codes if kind == "individual_business")


def test_the_demo_has_cases_in_every_state_and_its_audit_chain_verifies(demo_bank):
    engine, summary = demo_bank
    assert all(summary["cases"][state] >= 1 for state in STATE_CODES)
    with Session(engine) as s:
        assert audit.verify(s) == summary["audit_events"]
        every_case_audited = s.exec(select(func.count(func.distinct(AuditEvent.case_id)))
                                    .where(AuditEvent.case_id.is_not(None))).one()
        assert every_case_audited == _count(s, Case)
        # The history is replayed in the order it happened (after the rule set seeded when the database was made).
        first = s.exec(select(AuditEvent.seq).where(AuditEvent.event == "import_master_data")).one()
        stamps = list(s.exec(select(AuditEvent.at).where(AuditEvent.seq >= first).order_by(AuditEvent.seq)))
        assert stamps == sorted(stamps)


def test_the_demo_verifies_against_its_signed_checkpoints_and_its_tables_agree_with_its_events(demo_bank):
    """No false alarm over every path of the demo (reopenings, voided votes, altered appeals, corrections)."""
    from workflow.services import anchor, integrity

    engine, summary = demo_bank
    anchor.checkpoint(engine)
    with Session(engine) as s:
        found = integrity.verify(s, anchor.of(engine))
    assert found.problems == []
    assert found.events == summary["audit_events"] and found.checkpoint["seq"] == summary["audit_events"]
    assert found.rows > summary["letters"]


def test_the_demo_shows_the_notable_paths_of_the_lifecycle(demo_bank):
    engine, _ = demo_bank
    with Session(engine) as s:
        events = {e for e in s.exec(select(AuditEvent.event))}
        assert {"return_for_investigation", "reopen", "withdraw", "refer_for_accountability", "legal_hold",
                "votes_invalidated", "file_statement", "add_evidence"} <= events
        altered = s.exec(select(Appeal).where(Appeal.decision == "altered")).all()
        assert altered and all(SEVERITY[a.new_outcome] < SEVERITY[a.appealed_outcome] for a in altered)
        assert s.exec(select(Respondent).where(Respondent.deviation_reason.is_not(None))).first() is not None
        assert s.exec(select(Case).where(Case.legal_hold.is_(True))).first() is not None
        # Merged consideration: one respondent, several NPLs of one enterprise, one case.
        loans_per_case = s.exec(select(CaseLoan.case_id, func.count()).group_by(CaseLoan.case_id)).all()
        assert max(n for _, n in loans_per_case) >= 3
        corrected = s.exec(select(Letter).where(Letter.version > 1)).all()
        assert corrected and all(lt.supersedes_id is not None for lt in corrected)


def test_every_document_of_the_demo_is_fit_to_send_and_its_letters_are_served(demo_bank):
    """The deny-list over the real output: the text of every document of every kind the demo issued holds no
    step id, verification note, product name or English word (tests/letters_text.py)."""
    from tests.letters_text import pdf_text, problems
    from workflow.models import AppealWaiver, LetterService

    engine, _ = demo_bank
    with Session(engine) as s:
        docs = s.exec(select(Letter).order_by(Letter.id)).all()
        assert {lt.kind for lt in docs} >= {"investigation_report", "minutes", "determination", "publicity_notice",
                                           "service_record", "appeal_record", "appeal_decision", "referral"}
        found = {f"{lt.doc_number} ({lt.kind})": problems(pdf_text(lt.pdf)) for lt in docs}
        assert all(lt.data.get("checkpoint") for lt in docs)  # each prints the chain's latest checkpoint
        assert set(s.exec(select(LetterService.method).distinct())) == {"in_person", "in_app"}
        assert s.exec(select(AppealWaiver)).first() is not None
        assert all(lt.doc_number.startswith(("郑分", "洛分", "新分", "济分", "总行")) for lt in docs)
    assert {doc: p for doc, p in found.items() if p} == {}


def test_the_demo_book_puts_some_branches_within_tolerance_and_some_outside(demo_bank):
    _, summary = demo_bank
    verdicts = {code: b["within"] for code, b in summary["tolerance"]["branches"].items()}
    tier1 = {code: verdicts[code] for code in ("ZZ", "LY", "XX", "JY")}
    assert tier1 == {"ZZ": True, "LY": False, "XX": False, "JY": True}
    assert verdicts["XX01"] is False and verdicts["XX02"] is True


def test_loading_the_demo_into_a_database_that_already_holds_a_bank_is_refused(sqlite_engine, tmp_path):
    with unit_of_work(sqlite_engine) as s:
        s.add(Branch(code="HQ", name="总行", level=0, path="/1/"))
    with pytest.raises(ValidationFailed, match="already holds a bank"):
        demo.load(sqlite_engine, progress=False, evidence_dir=tmp_path)
    with Session(sqlite_engine) as s:
        assert _count(s, User) == 0 and _count(s, Loan) == 0
