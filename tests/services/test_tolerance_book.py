"""NPL tolerance from the loan book matches a hand computation, per branch and its whole subtree."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from tests.factories import add_branch
from workflow import demo
from workflow.db import unit_of_work
from workflow.domain.errors import ValidationFailed
from workflow.models import NPL_CLASSES, AuditEvent, Branch, Enterprise, Loan, User
from workflow.services import audit, tolerance

PERIOD = date(2025, 12, 31)
SEQ = iter(range(1, 10_000))


def _loan(s: Session, ent: Enterprise, branch: Branch, product: str, balance: str, classification: str = "normal",
          start: date = date(2024, 6, 1), written_off: bool = False) -> None:
    s.add(Loan(loan_no=f"T{next(SEQ):06d}", enterprise_id=ent.id, branch_id=branch.id, product_class=product,
               credit_total=Decimal(balance), amount=Decimal(balance), balance=Decimal(balance),
               start_date=start, maturity_date=date(2027, 6, 1), classification=classification,
               written_off=written_off))


@pytest.fixture
def book(engine):
    """Head office → T1 → SB → OU, and T2, with balances chosen so the figures are easy to check by hand.

    T1 subtree: all loans 1,000,000,000, of which NPL 20,000,000 (2.00 %); inclusive SME 200,000,000, of which
    NPL 10,000,000 (5.00 %): a gap of exactly 3.00 pp. T2: the same but SME NPL 10,020,000 (5.01 %): 3.01 pp.
    """
    with unit_of_work(engine) as s:
        ho = add_branch(s, "HO", "总行", 0, None)
        t1 = add_branch(s, "T1", "一分行", 1, ho)
        sb = add_branch(s, "SB", "一支行", 2, t1)
        ou = add_branch(s, "OU", "一网点", 3, sb)
        t2 = add_branch(s, "T2", "二分行", 1, ho)
        admin = User(username="admin", name="管理员", employee_no="E1", branch_id=ho.id, roles="admin")
        ent = Enterprise(name="示范小微制造有限公司", uscc="91410100MA0000001X", kind="small")
        s.add_all([admin, ent])
        s.flush()
        # OU: SME 150,000,000 performing (5,000,000 of it special mention, which is not an NPL) + 6,000,000 NPL
        _loan(s, ent, ou, "inclusive_sme", "145000000.00")
        _loan(s, ent, ou, "inclusive_sme", "5000000.00", "special_mention")
        _loan(s, ent, ou, "inclusive_sme", "6000000.00", "substandard")
        # …and two loans that do not count: one written off, one started after the period end.
        _loan(s, ent, ou, "inclusive_sme", "3000000.00", "loss", written_off=True)
        _loan(s, ent, ou, "inclusive_sme", "1000000.00", "loss", start=date(2026, 1, 15))
        # SB: SME 40,000,000 performing + 4,000,000 NPL
        _loan(s, ent, sb, "inclusive_sme", "40000000.00")
        _loan(s, ent, sb, "inclusive_sme", "4000000.00", "doubtful")
        # T1: corporate 790,000,000 performing + 10,000,000 NPL
        _loan(s, ent, t1, "corporate", "790000000.00")
        _loan(s, ent, t1, "corporate", "10000000.00", "loss")
        # T2: SME 189,980,000 + 10,020,000 NPL; corporate 790,020,000 + 9,980,000 NPL
        _loan(s, ent, t2, "inclusive_sme", "189980000.00")
        _loan(s, ent, t2, "inclusive_sme", "10020000.00", "substandard")
        _loan(s, ent, t2, "corporate", "790020000.00")
        _loan(s, ent, t2, "corporate", "9980000.00", "doubtful")
        ids = {b.code: b.id for b in (ho, t1, sb, ou, t2)}
        ids["admin"] = admin.id
    return ids


@pytest.mark.parametrize(("code", "figures", "gap_pp", "within"), [
    # (all, all NPL, SME, SME NPL) in yuan, by hand from the fixture's loans
    ("OU", ("156000000", "6000000", "156000000", "6000000"), "0", True),
    ("SB", ("200000000", "10000000", "200000000", "10000000"), "0", True),
    ("T1", ("1000000000", "20000000", "200000000", "10000000"), "3.00", True),   # exactly +3.00 pp: within
    ("T2", ("1000000000", "20000000", "200000000", "10020000"), "3.01", False),  # +3.01 pp: outside
    # the whole bank: SME 20,020,000 / 400,000,000 = 5.005 %, all 2.00 %: +3.005 pp, outside (shown as 3.01)
    ("HO", ("2000000000", "40000000", "400000000", "20020000"), "3.005", False),
])
def test_a_branch_with_its_subtree_has_the_tolerance_computed_by_hand(engine, book, code, figures, gap_pp, within):
    with Session(engine) as s:
        snapshot = tolerance.for_branch(s, book[code], PERIOD)
        everyone = tolerance.all_branches(s, PERIOD)
    names = ("all_balance", "all_npl_balance", "sme_balance", "sme_npl_balance")
    assert tuple(Decimal(snapshot[n]) for n in names) == tuple(Decimal(f) for f in figures)
    assert Decimal(snapshot["gap_pp"]) == Decimal(gap_pp)
    assert snapshot["within"] is within and snapshot["source"] == "computed"
    result = everyone[book[code]]
    assert (result.all_balance, result.all_npl_balance, result.sme_balance, result.sme_npl_balance) == \
        tuple(Decimal(f) for f in figures)
    assert result.within is within


def test_the_whole_bank_shows_its_unrounded_gap_rounded_for_people(engine, book):
    with Session(engine) as s:
        snapshot = tolerance.for_branch(s, book["HO"], PERIOD)
    assert snapshot["display"] == {"all_ratio": "2.00%", "sme_ratio": "5.01%", "gap_pp": "3.01", "margin_pp": "3.00",
                                   "target": "—"}
    assert snapshot["within"] is False


def test_an_imported_figure_replaces_the_computed_one_and_is_audited(engine, book):
    with unit_of_work(engine) as s:
        admin = s.get(User, book["admin"])
        tolerance.import_figure(s, admin, book["T2"], PERIOD, "0.0500", "0.0200", "监管报送口径（1104报表）")
    with Session(engine) as s:
        snapshot = tolerance.for_branch(s, book["T2"], PERIOD)
        other_period = tolerance.for_branch(s, book["T2"], date(2024, 12, 31))
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "import_tolerance")).one()
        assert audit.verify(s) >= 1
    assert snapshot["source"] == "imported" and snapshot["reason"] == "监管报送口径（1104报表）"
    assert snapshot["imported_by_id"] == book["admin"]
    assert Decimal(snapshot["gap_pp"]) == Decimal("3.00") and snapshot["within"] is True
    assert other_period["source"] == "computed"
    assert event.actor == "admin"
    assert event.payload == {"branch_id": book["T2"], "period": "2025-12-31", "sme_ratio": "0.0500",
                             "all_ratio": "0.0200", "reason": "监管报送口径（1104报表）"}


def test_importing_a_figure_without_a_reason_is_refused(engine, book):
    with unit_of_work(engine) as s, pytest.raises(ValidationFailed, match="why"):
        tolerance.import_figure(s, s.get(User, book["admin"]), book["T2"], PERIOD, "0.05", "0.02", " ")


def test_the_demo_book_tolerance_of_xinxiang_and_its_subtree_matches_a_hand_computation(sqlite_engine):
    demo.load_book(sqlite_engine, today=date(2026, 11, 25))
    with Session(sqlite_engine) as s:
        xinxiang = s.exec(select(Branch).where(Branch.code == "XX")).one()
        subtree = {b.id for b in s.exec(select(Branch).where(Branch.path.startswith(xinxiang.path)))}
        sums = [Decimal(0)] * 4
        for lo in s.exec(select(Loan).where(Loan.branch_id.in_(subtree))):
            npl, sme = lo.classification in NPL_CLASSES, lo.product_class == "inclusive_sme"
            for i, counts in enumerate((True, npl, sme, npl and sme)):
                sums[i] += lo.balance if counts else 0
        snapshot = tolerance.for_branch(s, xinxiang.id, PERIOD)
    # Seed 20261125: 新乡分行 (2 sub-branches, 4 outlets).
    assert sums == [Decimal("4018991632.00"), Decimal("83864685.00"), Decimal("934856348.00"), Decimal("50081900.00")]
    assert [Decimal(snapshot[n]) for n in ("all_balance", "all_npl_balance", "sme_balance", "sme_npl_balance")] == sums
    # SME 50,081,900 / 934,856,348 = 5.3572 %; all 83,864,685 / 4,018,991,632 = 2.0867 %; gap 3.27 pp > 3.00
    assert snapshot["display"]["sme_ratio"] == "5.36%" and snapshot["display"]["all_ratio"] == "2.09%"
    assert snapshot["display"]["gap_pp"] == "3.27" and snapshot["within"] is False
