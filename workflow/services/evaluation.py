"""What-if evaluation (domain.md §9): a hypothetical case judged by a published rule set and the loan book."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from ..domain import rules
from ..domain.errors import ValidationFailed
from ..domain.tolerance import ToleranceResult
from ..models import Branch, RuleSetVersion
from . import rulesets, tolerance


def evaluate(session: Session, request) -> dict:
    """The what-if evaluation (domain.md §9) with the current rule set and the loan book for tolerance."""
    current = rulesets.version_in_force(session, date.today())

    def load(name: str) -> rules.RuleSet:
        if name == "current":
            return rulesets.parsed(current)
        for row in session.exec(select(RuleSetVersion).where(RuleSetVersion.status == "published")):
            if str(row.version) == name or row.data.get("version") == name:
                return rulesets.parsed(row)
        raise ValidationFailed(f"rule_set: unknown rule set {name!r}", field="rule_set")

    def resolver(code: str, period: date):
        branch = session.exec(select(Branch).where(Branch.code == code)).first()
        if branch is None:
            raise ValidationFailed(f"tolerance.branch: unknown branch {code!r}", field="tolerance.branch")
        snap = tolerance.for_branch(session, branch.id, period)
        return ToleranceResult.from_dict(snap)

    return rules.evaluate(request, load, resolver)
