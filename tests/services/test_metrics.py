"""Dashboard figures against a hand computation over a fixture of nine cases.

The cases are driven through the services (tests.factories.drive), then given explicit dates and outcomes
so the expected numbers can be worked out by hand (see `expected` below). Period 2025-10-01 .. 2026-10-31,
counted on 2026-11-25, for the subtree of the tier-1 branch T1 (T1 → SB → OU).

| case | state | opened | determined (days) | final | respondents: recommended → decided → final | appeal |
|---|---|---|---|---|---|---|
| A | final | 2025-10-20 | 2025-12-19 (60) | 2026-11-02 (late) | exempt→exempt→exempt; exempt→reduced→reduced | — |
| B | final | 2026-02-01 | 2026-03-13 (40) | 2026-04-20 | liable→liable→reduced; exempt→exempt→exempt | altered |
| C | final | 2026-03-02 | 2026-03-12 (10) | 2026-04-01 | exempt→exempt→exempt; exempt→exempt→exempt | upheld |
| D | determined | 2026-04-01 | 2026-04-21 (20) | — | exempt→liable; exempt→exempt | — |
| E | under_review | 2026-05-04 | — | — | exempt→(none); exempt→(none) | — |
| G | investigating | 2025-10-15 | — | — (limit 2026-10-15 passed) | — | — |
| W | withdrawn | 2025-10-10 | — | — | — | — |
| X | determined | 2025-06-01 (before the period) | 2025-07-01 | — | liable→liable ×2 | — |
| F | registered, at T2 (outside T1's subtree) | 2026-05-01 | — | — | — | — |
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from tests.factories import Bank, decide_appeal_by_panel, drive, liable_officer
from workflow.db import unit_of_work
from workflow.models import Appeal, Case, Enterprise, Loan, LoanStage, Respondent
from workflow.services import cases, metrics

PERIOD = (date(2025, 10, 1), date(2026, 10, 31))
TODAY = date(2026, 11, 25)


@pytest.fixture(autouse=True)
def letters_without_weasyprint(monkeypatch):
    """Letters are still prepared, checked and stored, but not typeset: their PDFs are not under test here."""
    from workflow import pdf

    monkeypatch.setattr(pdf, "_write_pdf", lambda html, *args: b"%PDF-1.7 stub " + hashlib.sha256(html.encode()).digest())
    monkeypatch.setattr(pdf, "_sign_pdf", lambda data, signer: data)


def with_own_loan(bank: Bank, tag: int, branch: str = "OU") -> Bank:
    """The bank with a new enterprise and one NPL: pre-loan by the officer, review by the reviewer."""
    with unit_of_work(bank.engine) as s:
        ent = Enterprise(name=f"指标企业{tag}", uscc=f"9122000000{tag:07d}X", kind="small")
        s.add(ent)
        s.flush()
        loan = Loan(loan_no=f"LM-{tag:05d}", enterprise_id=ent.id, branch_id=bank.branches[branch],
                    product_class="inclusive_sme", credit_total=Decimal("500000"), amount=Decimal("500000"),
                    balance=Decimal("400000.00"), start_date=date(2024, 9, 1), maturity_date=date(2025, 9, 1),
                    classification="substandard")
        s.add(loan)
        s.flush()
        for stage, who in (("pre_loan", "officer"), ("review", "reviewer")):
            s.add(LoanStage(loan_id=loan.id, stage=stage, user_id=bank.users[who], performed_on=date(2024, 8, 20)))
    return dataclasses.replace(bank, loans=[loan.id], enterprise_id=ent.id)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC)


def settle(bank: Bank, case_id: int, *, opened: date, determined: date | None = None, final: date | None = None,
           outcomes: dict[str, tuple[str | None, str | None, str | None]] | None = None) -> None:
    """Give a case explicit dates and, per respondent (by username), (recommended, decided, final)."""
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        case.opened_at = at(opened)
        case.determined_at = at(determined) if determined else None
        case.final_at = at(final) if final else None
        s.add(case)
        for username, (recommended, decided, final_outcome) in (outcomes or {}).items():
            r = s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                                Respondent.user_id == bank.users[username])).one()
            r.recommended_outcome, r.decided_outcome, r.final_outcome = recommended, decided, final_outcome
            r.deviation_reason = "委员会认为情节有所不同" if decided and decided != recommended else None
            s.add(r)


@pytest.fixture
def nine_cases(bank) -> Bank:
    with unit_of_work(bank.engine) as s:
        # A performing corporate loan at the sub-branch pushes SB and T1 outside tolerance; OU stays inside.
        s.add(Loan(loan_no="CORP-1", enterprise_id=bank.enterprise_id, branch_id=bank.branches["SB"],
                   product_class="corporate", credit_total=Decimal("50000000"), amount=Decimal("20000000"),
                   balance=Decimal("20000000.00"), start_date=date(2024, 1, 10), maturity_date=date(2027, 1, 10),
                   classification="normal"))

    a = drive(with_own_loan(bank, 1), "final", appeal=False)
    settle(bank, a, opened=date(2025, 10, 20), determined=date(2025, 12, 19), final=date(2026, 11, 2),
           outcomes={"officer": ("exempt", "exempt", "exempt"), "reviewer": ("exempt", "reduced", "reduced")})

    b = drive(with_own_loan(bank, 2), "appeal_review", facts_for=liable_officer)
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, b)
        [appeal] = s.exec(select(Appeal).where(Appeal.case_id == b)).all()
        decide_appeal_by_panel(bank, s, case, appeal.id, "altered", "reduced", "损失与违规无直接因果关系")
        cases.conclude_appeals(s, case, bank.user(s, "appeal"))
    settle(bank, b, opened=date(2026, 2, 1), determined=date(2026, 3, 13), final=date(2026, 4, 20),
           outcomes={"officer": ("liable", "liable", "reduced"), "reviewer": ("exempt", "exempt", "exempt")})

    c = drive(with_own_loan(bank, 3), "final")  # the officer appeals; the appeal is upheld
    settle(bank, c, opened=date(2026, 3, 2), determined=date(2026, 3, 12), final=date(2026, 4, 1),
           outcomes={"officer": ("exempt", "exempt", "exempt"), "reviewer": ("exempt", "exempt", "exempt")})

    d = drive(with_own_loan(bank, 4), "determined")
    settle(bank, d, opened=date(2026, 4, 1), determined=date(2026, 4, 21),
           outcomes={"officer": ("exempt", "liable", None), "reviewer": ("exempt", "exempt", None)})

    e = drive(with_own_loan(bank, 5), "under_review")
    settle(bank, e, opened=date(2026, 5, 4),
           outcomes={"officer": ("exempt", None, None), "reviewer": ("exempt", None, None)})

    g = drive(with_own_loan(bank, 6), "investigating")
    settle(bank, g, opened=date(2025, 10, 15))

    w = drive(with_own_loan(bank, 7), "registered")
    with unit_of_work(bank.engine) as s:
        cases.withdraw(s, s.get(Case, w), bank.user(s, "admin"), "贷款已全额收回")
    settle(bank, w, opened=date(2025, 10, 10))

    x = drive(with_own_loan(bank, 8), "determined")
    settle(bank, x, opened=date(2025, 6, 1), determined=date(2025, 7, 1),
           outcomes={"officer": ("liable", "liable", None), "reviewer": ("liable", "liable", None)})

    f = drive(with_own_loan(bank, 9, branch="T2"), "registered")
    settle(bank, f, opened=date(2026, 5, 1))
    return bank


def figures_for(bank: Bank, branch: str) -> dict:
    with Session(bank.engine) as s:
        return metrics.dashboard_figures(s, bank.branches[branch], *PERIOD, today=TODAY)


def test_the_dashboard_figures_of_a_branch_subtree_match_the_hand_computation(nine_cases):
    fig = figures_for(nine_cases, "T1")

    # Cohort: A B C D E G W (X opened before the period; F belongs to T2).
    assert fig["cases"] == 7
    assert {k: v for k, v in fig["by_state"].items() if v} == {
        "final": 3, "determined": 1, "under_review": 1, "investigating": 1, "withdrawn": 1}
    assert sum(fig["by_state"].values()) == 7
    # Respondents with an outcome: A2 B2 C2 D2 = 8; exempt A1 B1 C2 D1 = 5, reduced A1 B1 = 2, liable D1 = 1.
    assert fig["outcomes"] == {"respondents": 8, "exempt": 5, "reduced": 2, "liable": 1,
                               "exemption_ratio": Decimal("0.6250"), "reduced_ratio": Decimal("0.2500")}
    # Days to determination 60, 40, 10, 20 → sorted 10 20 40 60: median (20+40)/2 = 30; p90 rank ⌈3.6⌉ = 4 → 60.
    assert fig["determination_days"] == {"cases": 4, "median": Decimal(30), "p90": 60}
    # Counted: A (final, late), B and C (final in time), G (limit 2026-10-15 passed); D, E still running; W withdrawn.
    assert fig["within_one_year"] == {"counted": 4, "within": 2, "share": Decimal("0.5000")}
    assert fig["appeals"] == {"filed": 2, "decided": 2, "altered": 1, "altered_share": Decimal("0.5000")}
    # Deviations: A's reviewer (exempt → reduced) and D's officer (exempt → liable), of 8 decided respondents.
    assert fig["deviations"] == {"decided": 8, "deviated": 2, "share": Decimal("0.2500")}


def test_the_tolerance_of_each_branch_of_the_subtree_is_listed(nine_cases):
    fig = figures_for(nine_cases, "T1")

    rows = {row["code"]: row for row in fig["tolerance"]}
    assert list(rows) == ["T1", "SB", "OU"]
    assert (rows["T1"]["within"], rows["SB"]["within"], rows["OU"]["within"]) == (False, False, True)
    # OU holds only non-performing inclusive SME loans: both ratios are 100 %, the gap 0.
    assert (rows["OU"]["sme_ratio"], rows["OU"]["all_ratio"], rows["OU"]["gap_pp"]) == (1, 1, 0)


def test_the_head_office_sees_the_whole_bank_and_a_sub_branch_sees_no_cases(nine_cases):
    bank_wide = figures_for(nine_cases, "HO")
    sub_branch = figures_for(nine_cases, "SB")

    assert bank_wide["cases"] == 8 and bank_wide["by_state"]["registered"] == 1  # F at T2
    assert [row["code"] for row in bank_wide["tolerance"]][:2] == ["HO", "T1"]
    assert sub_branch["cases"] == 0
    assert sub_branch["outcomes"]["exemption_ratio"] is None
    assert sub_branch["determination_days"] == {"cases": 0, "median": None, "p90": None}


def test_the_xlsx_download_holds_the_same_figures(nine_cases):
    fig = figures_for(nine_cases, "T1")

    workbook = load_workbook(BytesIO(metrics.metrics_xlsx(fig)))

    summary = {row[1]: row[2] for row in workbook["Summary"].iter_rows(values_only=True) if len(row) > 2}
    assert summary["Cases"] == 7
    assert summary["Exemption ratio"] == pytest.approx(0.625)
    assert summary["Median days to determination"] == 30
    assert summary["Share of decided appeals altered"] == pytest.approx(0.5)
    states = {row[0]: row[3] for row in workbook["Cases by state"].iter_rows(min_row=2, values_only=True)}
    assert states["final"] == 3 and states["closed"] == 0
    tolerance = [row[0] for row in workbook["Tolerance"].iter_rows(min_row=2, values_only=True)]
    assert tolerance == ["T1", "SB", "OU"]


def test_a_period_that_ends_before_it_starts_is_refused(bank):
    from workflow.domain.errors import ValidationFailed

    with Session(bank.engine) as s, pytest.raises(ValidationFailed):
        metrics.dashboard_figures(s, bank.branches["T1"], date(2026, 5, 1), date(2026, 4, 1))


# --- the web page (/dashboard) ------------------------------------------------------------------------------

@pytest.fixture
def dashboard_app(bank, tmp_path):
    """The Flask app on the test database, staff with passwords; its own engine is disposed afterwards."""
    from tests.web.support import make_app, set_passwords
    from workflow import engine_of
    from workflow.web import dashboard as web_dashboard

    set_passwords(bank.engine)
    app = make_app(bank.engine, tmp_path)
    if "dashboard" not in app.blueprints:  # the application registers it; a bare app needs it here
        app.register_blueprint(web_dashboard.bp)
    yield app
    engine_of(app).dispose()


def test_the_dashboard_page_shows_the_figures_as_tiles_and_charts_and_offers_the_same_xlsx(nine_cases, dashboard_app):
    from tests.web.support import login, post
    from workflow import engine_of
    from workflow.db import read_session
    from workflow.models import AccessLog

    client = dashboard_app.test_client()
    login(client, "chair")
    query = f"branch={nine_cases.branches['T1']}&start=2025-10-01&end=2026-10-31"
    fields = {"branch": str(nine_cases.branches["T1"]), "start": "2025-10-01", "end": "2026-10-31"}

    page = client.get(f"/dashboard/?{query}")
    # An export is a POST with a stated reason: a GET, or a POST without a reason, returns to the page and
    # logs nothing.
    assert client.get(f"/dashboard/export.xlsx?{query}").status_code == 302
    refused = post(client, "/dashboard/export.xlsx", fields, follow_redirects=True)
    assert "dashboard-export" in refused.get_data(as_text=True) and 'class="flash error"' in refused.get_data(as_text=True)
    with read_session(engine_of(dashboard_app)) as s:
        assert s.exec(select(AccessLog).where(AccessLog.action == "export")).all() == []
    xlsx = post(client, "/dashboard/export.xlsx", {**fields, "reason": "季度尽职免责工作通报"})
    with read_session(engine_of(dashboard_app)) as s:
        entry = s.exec(select(AccessLog).where(AccessLog.action == "export")).one()
        assert entry.target == "dashboard.xlsx" and entry.details["reason"] == "季度尽职免责工作通报"

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'data-figure="Cases">7<' in html
    assert 'data-figure="Exemption ratio">62.50%<' in html
    assert 'data-figure="Median days to determination">30<' in html
    assert '<svg id="chart-outcomes"' in html and 'id="outcomes-legend"' in html  # the legend is text, not SVG
    for chart in ("chart-states", "chart-tolerance"):  # bar charts whose labels wrap instead of being clipped
        assert '<table class="bars' in html and f'id="{chart}"' in html
    tiles = re.findall(r'<div class="tile" data-kpi="([a-z_]+)">\s*<div class="tile-value">([^<]*)</div>', html)
    assert dict(tiles)["cases"] == "7" and dict(tiles)["exemption_ratio"] == "62.50%"
    assert html.count('class="tile-definition"') == len(tiles) == 6  # every tile says what it counts
    assert "<script" not in html and "https://" not in html
    assert xlsx.status_code == 200 and xlsx.mimetype.endswith("spreadsheetml.sheet")
    summary = {row[1]: row[2] for row in load_workbook(BytesIO(xlsx.data))["Summary"].iter_rows(values_only=True)
               if len(row) > 2}
    assert (summary["Cases"], summary["Appeals filed"]) == (7, 2)
    book = load_workbook(BytesIO(xlsx.data))
    tol = book["Tolerance"]
    assert tol.freeze_panes == "A2" and tol.auto_filter.ref and book["Cases by state"].freeze_panes == "A2"
    assert {tol.cell(r, 6).number_format for r in range(2, tol.max_row + 1)} == {"0.00"}  # no float noise shown
    assert all(tol.cell(r, 8).value for r in range(2, tol.max_row + 1))  # each row says which test decided


def test_the_dashboard_is_for_supervising_roles_within_their_own_subtree(bank, dashboard_app):
    from tests.web.support import login, post

    anonymous, officer, chair, auditor = (dashboard_app.test_client() for _ in range(4))
    login(officer, "officer")
    login(chair, "chair")
    login(auditor, "auditor")

    assert anonymous.get("/dashboard/").status_code in (302, 401)
    assert officer.get("/dashboard/").status_code == 403
    assert chair.get("/dashboard/").status_code == 200
    assert chair.get(f"/dashboard/?branch={bank.branches['SB']}").status_code == 200
    assert chair.get(f"/dashboard/?branch={bank.branches['HO']}").status_code == 403
    assert chair.get(f"/dashboard/export.xlsx?branch={bank.branches['T2']}").status_code == 403
    assert post(chair, "/dashboard/export.xlsx", {"branch": str(bank.branches["T2"]), "reason": "核查"}).status_code == 403
    assert auditor.get(f"/dashboard/?branch={bank.branches['T2']}").status_code == 200
    assert chair.get("/dashboard/?branch=99999").status_code == 404
