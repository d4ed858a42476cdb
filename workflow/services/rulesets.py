"""Rule-set versions in the database: seeding, the version in force on a date, publishing, evaluation."""

from __future__ import annotations

import hashlib
from datetime import date

from sqlmodel import Session, select

from ..chain import canonical
from ..domain import rules
from ..domain.errors import NotFound, ValidationFailed
from ..models import Branch, Enterprise, RuleSetVersion, utcnow
from . import audit


def ensure_default(session: Session) -> RuleSetVersion:
    """Seed version 1 (the default rule set of domain.md §8) into an empty database."""
    row = session.exec(select(RuleSetVersion).order_by(RuleSetVersion.version)).first()
    if row is not None:
        return row
    default = rules.load_default_rule_set()
    row = RuleSetVersion(version=1, status="published", effective_from=default.effective_from,
                         data=default.model_dump(mode="json"), note="seeded from the default rule set",
                         published_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, event="publish_rule_set", payload={"version": 1, "label": default.version,
                                                              "effective_from": default.effective_from.isoformat()})
    return row


def version_in_force(session: Session, day: date) -> RuleSetVersion:
    """The published version with the latest effective date on or before `day` (the earliest if none)."""
    published = select(RuleSetVersion).where(RuleSetVersion.status == "published")
    row = session.exec(published.where(RuleSetVersion.effective_from <= day)
                       .order_by(RuleSetVersion.effective_from.desc(), RuleSetVersion.version.desc())).first()
    row = row or session.exec(published.order_by(RuleSetVersion.effective_from, RuleSetVersion.version)).first()
    if row is None:
        raise NotFound("no rule set has been published; run `flask --app wsgi db upgrade` to seed the default")
    return row


_PARSED: dict[str, rules.RuleSet] = {}


def parsed(row: RuleSetVersion) -> rules.RuleSet:
    """The validated RuleSet of a version row (each published version is parsed once per process).

    Published versions never change, so they are cached by identity; drafts are keyed by content.
    """
    if row.status == "published":
        key = f"{row.id}:{row.version}:{row.effective_from}:{row.data.get('version')}"
    else:
        key = hashlib.sha256(canonical(row.data)).hexdigest()
    rs = _PARSED.get(key)
    if rs is None:
        rs = _PARSED[key] = rules.parse_rule_set(row.data)
    return rs


def procedure_rules(session: Session, case) -> rules.RuleSet:
    """The rules that govern a case's procedure: the version in force when it was opened."""
    return parsed(session.get(RuleSetVersion, case.rule_set_version_id))


def quorum(rs: rules.RuleSet) -> str:
    return rs.committee.quorum


def time_limit(rs: rules.RuleSet, key: str) -> int:
    """The number of days of a named time limit (working days unless the rule set says calendar days)."""
    return rs.time_limits[key].days


def tolerance_rules(rs: rules.RuleSet) -> dict:
    return {"margin": rs.tolerance.margin, "period_basis": rs.tolerance.period_basis,
            "add_back_written_off": rs.tolerance.add_back_written_off}


def check_scope(session: Session, loan, rs: rules.RuleSet) -> None:
    """Raise OutOfScope when the loan is outside the exemption rules' scope."""
    enterprise = session.get(Enterprise, loan.enterprise_id)
    rules.check_scope({"product_class": loan.product_class, "credit_total": loan.credit_total,
                       "borrower_kind": enterprise.kind if enterprise else None}, rs)


def validate_stage_facts(rs: rules.RuleSet, stage: str, facts: dict) -> dict:
    """Validate one stage's facts against a rule set; the canonical JSON-ready form."""
    if not isinstance(facts, dict):
        raise ValidationFailed("facts must be an object")
    clean = rules.validate_facts({**facts, "stage": stage}, rs)
    out = clean.model_dump(mode="json", exclude={"loan"})
    out.pop("stage", None)
    return out


def publish(session: Session, actor, data: dict, effective_from: date, note: str = "") -> RuleSetVersion:
    """Publish a new rule-set version effective from a date (validated first; audited)."""
    rs = rules.parse_rule_set({**data, "effective_from": effective_from.isoformat()})
    last = session.exec(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())).first()
    row = RuleSetVersion(version=(last.version if last else 0) + 1, status="published", effective_from=effective_from,
                         data=rs.model_dump(mode="json"), note=note, created_by_id=actor.id,
                         published_by_id=actor.id, published_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, event="publish_rule_set", actor=actor,
                 payload={"version": row.version, "label": rs.version, "effective_from": effective_from.isoformat(),
                          "note": note})
    return row


def evaluate(session: Session, request) -> dict:
    """The what-if evaluation (domain.md §9) with the current rule set and the loan book for tolerance."""
    from . import tolerance

    current = version_in_force(session, date.today())

    def load(name: str) -> rules.RuleSet:
        if name == "current":
            return parsed(current)
        for row in session.exec(select(RuleSetVersion).where(RuleSetVersion.status == "published")):
            if str(row.version) == name or row.data.get("version") == name:
                return parsed(row)
        raise ValidationFailed(f"rule_set: unknown rule set {name!r}", field="rule_set")

    def resolver(code: str, period: date):
        branch = session.exec(select(Branch).where(Branch.code == code)).first()
        if branch is None:
            raise ValidationFailed(f"tolerance.branch: unknown branch {code!r}", field="tolerance.branch")
        from ..domain.tolerance import ToleranceResult

        snap = tolerance.for_branch(session, branch.id, period)
        return ToleranceResult.from_dict(snap)

    return rules.evaluate(request, load, resolver)
