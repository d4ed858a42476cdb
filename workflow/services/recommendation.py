"""Recommendations per respondent, from their recorded facts, with the tolerance frozen into the case."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from ..domain import rules
from ..domain.tolerance import ToleranceResult
from ..models import Branch, Loan, Respondent, RuleSetVersion, StageFact
from . import rulesets, tolerance


def tolerance_branch_id(session: Session, case) -> int:
    """The branch whose NPL tolerance a case is judged by: the tier-1 branch of the loans (as before delegated
    authority), whichever committee decides the case; the deciding branch for cases registered before."""
    if case.origin_branch_id is None:
        return case.branch_id
    branch = session.get(Branch, case.origin_branch_id)
    while branch.level > 1 and branch.parent_id is not None:
        branch = session.get(Branch, branch.parent_id)
    return branch.id


def freeze_tolerance(session: Session, case, today: date | None = None) -> dict:
    """Compute (or take the imported) tolerance for the case's branch and period and freeze it into the case."""
    today = today or date.today()
    rs = rulesets.procedure_rules(session, case)
    period = tolerance.period_end(today, rs.tolerance.period_basis)
    snapshot = tolerance.for_branch(session, tolerance_branch_id(session, case), period, rs)
    snapshot["explanation"] = rules.tolerance_explanation(ToleranceResult.from_dict(snapshot), rs)
    case.tolerance = snapshot
    session.add(case)
    return snapshot


def recommend_case(session: Session, case, actor=None, today: date | None = None,
                   refreeze: bool = True) -> dict:
    """Recommend every respondent's outcome; each stage is judged by the rule-set version it was recorded
    against (the version in force on the stage's date). Returns a summary for the audit event."""
    snapshot = freeze_tolerance(session, case, today) if (refreeze or not case.tolerance) else case.tolerance
    within = bool(snapshot["within"])
    versions: dict[int, rules.RuleSet] = {}
    loans = {lo.id: lo.loan_no for lo in session.exec(select(Loan).join(
        StageFact, StageFact.loan_id == Loan.id).join(Respondent, Respondent.id == StageFact.respondent_id)
        .where(Respondent.case_id == case.id))}
    summary = {}
    procedure = rulesets.procedure_rules(session, case)
    for r in session.exec(select(Respondent).where(Respondent.case_id == case.id).order_by(Respondent.id)):
        facts = list(session.exec(select(StageFact).where(StageFact.respondent_id == r.id)
                                  .order_by(StageFact.loan_id, StageFact.stage)))
        if not facts:
            continue
        stage_rules = {}
        stages = []
        for f in facts:
            if f.rule_set_version_id not in versions:
                versions[f.rule_set_version_id] = rulesets.parsed(session.get(RuleSetVersion, f.rule_set_version_id))
            stage = {**f.facts, "stage": f.stage, "loan": loans.get(f.loan_id, str(f.loan_id))}
            stages.append(stage)
            stage_rules[(f.stage, stage["loan"])] = versions[f.rule_set_version_id]
        result = rules.recommend_respondent(
            stages, lambda sf, table=stage_rules: table[(sf.stage, sf.loan)], within,
            respondent_id=str(r.id), sanctions_from=procedure)
        r.recommendation = {**result.to_dict(), "rule_set_versions": result.rule_set_versions,
                            "tolerance_within": within}
        r.recommended_outcome = result.outcome
        session.add(r)
        summary[str(r.id)] = result.outcome
    session.flush()
    return {"outcomes": summary, "tolerance": {k: snapshot.get(k) for k in ("branch", "period", "within", "gap_pp",
                                                                            "source")}}
