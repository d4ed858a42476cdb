"""NPL tolerance (不良容忍度) from the loan book, per branch and its whole subtree, or as imported figures."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from sqlalchemy import BigInteger, and_, case, func, select, type_coerce
from sqlmodel import Session

from ..domain.errors import NotFound, ValidationFailed
from ..domain.tolerance import ToleranceResult, compute_tolerance, from_ratios
from ..models import NPL_CLASSES, Branch, Loan, ToleranceFigure
from . import audit, rulesets

SME_CLASSES = ("inclusive_sme",)


def _options(rs) -> dict:
    tol = rulesets.tolerance_rules(rs)
    return {"period_basis": tol["period_basis"], "add_back_written_off": tol["add_back_written_off"]}


def _sums_by_branch(session: Session, period: date, add_back_written_off: bool, branch_filter=None):
    """{branch_id: [all, all_npl, sme, sme_npl]} in integer fen, for loans on the book at `period`."""
    loan = Loan.__table__
    is_sme = loan.c.product_class.in_(SME_CLASSES)
    is_npl = loan.c.classification.in_(NPL_CLASSES)
    # Money is stored in integer fen, so these sums are exact on every database.
    # Raw fen: without the coercion the Money type would convert each sum to yuan on the way out.
    bal = type_coerce(loan.c.balance, BigInteger)
    query = select(
        loan.c.branch_id,
        func.sum(bal),
        func.sum(case((is_npl, bal), else_=0)),
        func.sum(case((is_sme, bal), else_=0)),
        func.sum(case((and_(is_sme, is_npl), bal), else_=0)),
    ).where(loan.c.start_date <= period)
    if not add_back_written_off:
        query = query.where(loan.c.written_off.is_(False))
    if branch_filter is not None:
        query = query.where(branch_filter)
    rows = session.connection().execute(query.group_by(loan.c.branch_id)).all()
    return {r[0]: [int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)] for r in rows}


def _result(sums, rs, target=None) -> ToleranceResult:
    tol = rulesets.tolerance_rules(rs)
    fen = [Decimal(v) / 100 for v in sums]
    return compute_tolerance(fen[0], fen[1], fen[2], fen[3], tol["margin"], target, options=_options(rs))


def all_branches(session: Session, period: date, rs=None) -> dict[int, ToleranceResult]:
    """Tolerance of every branch with its whole subtree, computed from the loan book in one pass."""
    rs = rs or rulesets.parsed(rulesets.version_in_force(session, period))
    per_branch = _sums_by_branch(session, period, rulesets.tolerance_rules(rs)["add_back_written_off"])
    branches = session.connection().execute(select(Branch.__table__.c.id, Branch.__table__.c.path)).all()
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for branch_id, path in branches:
        sums = per_branch.get(branch_id)
        if not sums:
            continue
        for ancestor in path.strip("/").split("/"):
            t = totals[int(ancestor)]
            for i in range(4):
                t[i] += sums[i]
    return {branch_id: _result(totals[branch_id], rs) for branch_id, _ in branches}


def for_branch(session: Session, branch_id: int, period: date, rs=None) -> dict:
    """The figure to use for a branch and period: an imported one if recorded, else computed.

    Returns the frozen-snapshot dict: the ToleranceResult's fields plus branch, period and source.
    """
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotFound(f"branch {branch_id} does not exist")
    rs = rs or rulesets.parsed(rulesets.version_in_force(session, period))
    imported = session.exec(select(ToleranceFigure).where(ToleranceFigure.branch_id == branch_id,
                                                          ToleranceFigure.period == period)).first()
    if imported:
        imported = imported[0]
        result = judge_reported(imported, rs)
        source = {"source": "imported", "reason": imported.reason, "imported_by_id": imported.imported_by_id,
                  "imported_at": imported.imported_at.isoformat()}
    else:
        subtree = Loan.__table__.c.branch_id.in_(
            select(Branch.__table__.c.id).where(Branch.__table__.c.path.startswith(branch.path)))
        sums = [0, 0, 0, 0]
        for s in _sums_by_branch(session, period, rulesets.tolerance_rules(rs)["add_back_written_off"],
                                 subtree).values():
            sums = [a + b for a, b in zip(sums, s, strict=True)]
        result = _result(sums, rs)
        source = {"source": "computed"}
    return {**result.to_dict(), "branch": branch.code, "branch_name": branch.name,
            "branch_name_en": branch.name_en or branch.name, "period": period.isoformat(),
            **source}


def judge_reported(figure: ToleranceFigure, rs) -> ToleranceResult:
    """The tolerance test of reported figures under rule set `rs` (the one in force for their period)."""
    return from_ratios(figure.sme_ratio, figure.all_ratio, rulesets.tolerance_rules(rs)["margin"],
                       options=_options(rs))


def margin_in_force(session: Session, day: date) -> Decimal:
    """The tolerance margin (a fraction) of the rule set in force on `day`."""
    return rulesets.tolerance_rules(rulesets.parsed(rulesets.version_in_force(session, day)))["margin"]


def reported_figures(session: Session, branch_ids) -> list[tuple[ToleranceFigure, ToleranceResult]]:
    """The figures recorded for these branches, newest period first, each judged under the rule set in
    force for its period (looked up once per period)."""
    figures = session.scalars(select(ToleranceFigure).where(ToleranceFigure.branch_id.in_(list(branch_ids)))
                              .order_by(ToleranceFigure.period.desc(), ToleranceFigure.branch_id)).all()
    rules_of: dict[date, object] = {}
    out = []
    for figure in figures:
        if figure.period not in rules_of:
            rules_of[figure.period] = rulesets.parsed(rulesets.version_in_force(session, figure.period))
        out.append((figure, judge_reported(figure, rules_of[figure.period])))
    return out


def period_end(day: date, basis: str = "annual") -> date:
    """The period a determination looks at: the last year end (annual) or quarter end before `day`."""
    if basis == "quarterly":
        return _quarter_end_before(day)
    return date(day.year - 1, 12, 31)


def _quarter_end_before(day: date) -> date:
    ends = [date(day.year, 3, 31), date(day.year, 6, 30), date(day.year, 9, 30), date(day.year, 12, 31)]
    before = [e for e in ends if e < day]
    return before[-1] if before else date(day.year - 1, 12, 31)


def import_figure(session: Session, actor, branch_id: int, period: date, sme_ratio: str, all_ratio: str,
                  reason: str) -> ToleranceFigure:
    """Record the figures reported to the regulator for a branch and period (used instead of computing)."""
    if not (reason or "").strip():
        raise ValidationFailed("say why the reported figures are imported", field="reason")
    if session.get(Branch, branch_id) is None:
        raise NotFound(f"branch {branch_id} does not exist")
    from_ratios(sme_ratio, all_ratio, "0.03")  # validates both ratios
    existing = session.exec(select(ToleranceFigure).where(ToleranceFigure.branch_id == branch_id,
                                                          ToleranceFigure.period == period)).first()
    if existing:
        raise ValidationFailed(f"figures for this branch and period {period} were already imported")
    fig = ToleranceFigure(branch_id=branch_id, period=period, sme_ratio=str(sme_ratio), all_ratio=str(all_ratio),
                          reason=reason.strip(), imported_by_id=actor.id)
    session.add(fig)
    session.flush()
    audit.record(session, event="import_tolerance", actor=actor,
                 payload={"branch_id": branch_id, "period": period.isoformat(), "sme_ratio": str(sme_ratio),
                          "all_ratio": str(all_ratio), "reason": fig.reason})
    return fig
