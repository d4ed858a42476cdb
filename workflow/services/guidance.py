"""The precedent library (案例引导): decided respondents made into anonymised guidance for like cases.

A committee chair whose subtree holds the case, or a head-office administrator, proposes a respondent of a
final case as a precedent; a second such person approves or rejects it (policy.why_not_decide_precedent).
Until then the proposer and the approvers may edit its texts (title, findings, reasoning) for anonymity.
The record copies nothing that identifies anyone: the names, identity, employee and phone numbers of the
people of the case, the enterprise's name, owner and credit code, the loan numbers, the case number and the
names of the branches below tier 1 are replaced in the texts when proposed, and an edit or an approval that
brings one back is refused. Each verb writes its audit event in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session, select

from ..domain import policy
from ..domain.errors import ConflictError, NotFound, TransitionNotAllowed, ValidationFailed
from ..models import (
    STAGES,
    Appeal,
    Branch,
    Case,
    Enterprise,
    Precedent,
    Respondent,
    RuleSetVersion,
    StageFact,
    User,
    Vote,
    utcnow,
)
from . import audit, queries, rulesets

# Amount bands of the case's total loan amount (yuan, upper bound inclusive); the precedent keeps the band.
AMOUNT_BANDS = ((Decimal("1000000"), "upto_1m"), (Decimal("3000000"), "1m_3m"), (Decimal("5000000"), "3m_5m"),
                (Decimal("10000000"), "5m_10m"), (None, "over_10m"))
# What replaces an identifier in a text (Chinese: the texts are the case's Chinese findings).
PERSON, ENTERPRISE, OWNER, LOAN, NUMBER, BRANCH = "某员工", "某企业", "某企业负责人", "某笔贷款", "某编号", "某支行"
EDITABLE_SCOPE = ("title", "reasoning", "findings")

def amount_band(total: Decimal) -> str:
    """The band code of a case's total loan amount."""
    for limit, code in AMOUNT_BANDS:
        if limit is None or total <= limit:
            return code
    raise AssertionError("unreachable")  # pragma: no cover

# --- what identifies the people and the enterprise of a case ------------------------------------------------

def identifiers(session: Session, case: Case) -> dict[str, str]:
    """Every identifying string of the case (what → its replacement): the people involved (respondents,
    stage handlers, investigator, voters, proposer of the case), the enterprise, the loans, the case number
    and the branches below tier 1 of its loans."""
    found: dict[str, str] = {case.number: NUMBER}
    ent = session.get(Enterprise, case.enterprise_id)
    if ent is not None:
        found.update({ent.name: ENTERPRISE, ent.uscc: NUMBER})
        if ent.owner_name:
            found[ent.owner_name] = OWNER
    loans = queries.case_loans(session, case.id)
    people: set[int] = {r.user_id for r in queries.respondents_of(session, case.id)}
    people |= {a.user_id for a in queries.stage_assignments(session, case.id)}
    people |= {v.member_id for v in session.exec(select(Vote).where(Vote.case_id == case.id))}
    people |= {a.decided_by_id for a in session.exec(select(Appeal).where(Appeal.case_id == case.id))
               if a.decided_by_id}
    people |= {uid for uid in (case.investigator_id, case.opened_by_id) if uid}
    for u in session.exec(select(User).where(User.id.in_(people))) if people else ():
        found[u.name] = PERSON
        for number in (u.employee_no, u.id_number, u.phone):
            if number:
                found.setdefault(number, NUMBER)
    for lo in loans:
        found[lo.loan_no] = LOAN
        branch = session.get(Branch, lo.branch_id)
        while branch is not None and branch.level > 1:
            found[branch.name] = BRANCH
            if branch.code:
                found.setdefault(branch.code, NUMBER)
            branch = session.get(Branch, branch.parent_id) if branch.parent_id else None
    return {k: v for k, v in found.items() if k and len(k.strip()) >= 2}

def scrub(text: str, known: dict[str, str]) -> str:
    """The text with every identifier replaced (the longest first, so a name inside another goes with it)."""
    for ident in sorted(known, key=len, reverse=True):
        text = text.replace(ident, known[ident])
    return text

def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)

def leaks(p: Precedent, known: Iterable[str]) -> list[str]:
    """The identifiers that occur in the precedent's free texts (title, reasoning, findings), which people
    write; the other fields are codes, bands and the rule set's own texts. None, for a record fit to approve."""
    texts = [p.title, p.reasoning, *(s.get("findings", "") for s in p.stages)]
    return sorted({ident for ident in known for t in texts if ident in t})

# --- building a precedent ------------------------------------------------------------------------------------

def _item(rs, code: str) -> dict:
    item = rs.item(code)
    return {"code": code, "zh": item.zh, "en": item.en}

def _deciding_rule(stage_result: dict | None) -> dict | None:
    for entry in (stage_result or {}).get("explanation", []):
        if entry.get("fired"):
            return {"rule": entry["rule"], **entry.get("text", {})}
    return None

def _stages(session: Session, case: Case, respondent: Respondent, known: dict[str, str]) -> tuple[list, int]:
    """The respondent's stages as the precedent keeps them, and the highest rule-set version they used."""
    loan_order = {lo.id: n for n, lo in enumerate(sorted(queries.case_loans(session, case.id), key=lambda x: x.id),
                                                  start=1)}
    loan_nos = {lo.id: lo.loan_no for lo in queries.case_loans(session, case.id)}
    results = {(s.get("stage"), s.get("loan")): s for s in (respondent.recommendation or {}).get("stages", [])}
    facts = sorted(session.exec(select(StageFact).where(StageFact.respondent_id == respondent.id)),
                   key=lambda f: (loan_order.get(f.loan_id, 0), STAGES.index(f.stage) if f.stage in STAGES else 99))
    out, highest = [], 0
    for f in facts:
        version = session.get(RuleSetVersion, f.rule_set_version_id)
        highest = max(highest, version.version)
        rs = rulesets.parsed(version)
        result = results.get((f.stage, loan_nos.get(f.loan_id)))
        out.append({
            "stage": f.stage,
            "loan": loan_order.get(f.loan_id, 1),
            "rule_set_version": version.version,
            "positive": [_item(rs, c) for c in f.facts.get("positive", [])],
            "mitigating": [_item(rs, c) for c in f.facts.get("mitigating", [])],
            "negative": [_item(rs, c) for c in f.facts.get("negative", [])],
            "unperformed": [{**_item(rs, u["duty"]), "causal": bool(u.get("causal"))}
                            for u in f.facts.get("unperformed", [])],
            "violation": bool(f.facts.get("violation")),
            "dissented": bool(f.facts.get("dissented")),
            "findings": scrub(f.facts.get("findings", "") or "", known),
            "outcome": (result or {}).get("outcome"),
            "decided_by": _deciding_rule(result),
        })
    return out, highest

def stage_code_set(stage: dict) -> set[str]:
    """The list items and duties of one kept stage, as a set of codes."""
    return {i["code"] for key in ("positive", "mitigating", "negative", "unperformed") for i in stage.get(key, [])}

def _framed(codes: Iterable[str]) -> str:
    return " " + " ".join(sorted(set(codes))) + " " if codes else " "

def precedent_view(session: Session, p: Precedent) -> policy.PrecedentView:
    """The policy's view of a precedent (its case's branch and respondents, its proposer)."""
    agg = queries.load(session, p.case_id)
    return policy.PrecedentView(status=p.status, case_branch_path=agg.branch_path, proposed_by_id=p.proposed_by_id,
                                respondent_user_ids=agg.respondent_user_ids)

def propose(session: Session, case: Case, actor, respondent_id: int, *,
            expected_version: int | None = None) -> Precedent:
    """Propose one respondent of a final case as a precedent, anonymised (texts scrubbed of identifiers).

    Raises PermissionDenied (policy: a curator of the case's branch, not a respondent), TransitionNotAllowed
    (the case is not final), ConflictError (a stale case version, or the respondent already proposed),
    NotFound (no such respondent of the case) and ValidationFailed (the respondent has no outcome).
    """

    agg = queries.authorize(session, case, actor, "propose_precedent")
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(f"case {case.number} was changed by someone else; reload the case and try again",
                            state=case.state, version=case.version)
    if case.state not in policy.ACTIONS["propose_precedent"][0]:
        raise TransitionNotAllowed(f"a precedent is proposed from a final case, not one {case.state}",
                                          state=case.state)
    respondent = agg.respondent(respondent_id)
    outcome = respondent.final_outcome or respondent.decided_outcome
    if outcome is None:
        raise ValidationFailed("the respondent has no final outcome", field="respondent_id")
    if session.exec(select(Precedent.id).where(Precedent.case_id == case.id,
                                               Precedent.respondent_id == respondent.id)).first():
        raise ConflictError("this respondent has already been proposed as a precedent", state=case.state)
    known = identifiers(session, case)
    stages, version = _stages(session, case, respondent, known)
    loans = queries.case_loans(session, case.id)
    total = sum((Decimal(lo.amount) for lo in loans), Decimal(0))
    products = sorted({lo.product_class for lo in loans})
    tier1 = queries.determining_branch(session, session.get(Branch, case.branch_id))
    reasons = [respondent.deviation_reason or ""]
    reasons += [a.decision_reason or "" for a in session.exec(select(Appeal).where(Appeal.respondent_id == respondent.id))]
    codes = set().union(*(stage_code_set(s) for s in stages)) if stages else set()
    p = Precedent(
        case_id=case.id, respondent_id=respondent.id, branch_id=tier1.id, rule_set_version=version or 0,
        product_class=products[0] if products else "", amount_band=amount_band(total),
        tolerance_within=(case.tolerance or {}).get("within"), outcome=outcome,
        recommended_outcome=respondent.recommended_outcome or outcome, liability_kind=respondent.liability_kind,
        title="、".join(sorted(codes)) or "—", stages=stages,
        reasoning=scrub("\n".join(r for r in reasons if r.strip()), known),
        codes=_framed(codes), stage_codes=_framed(s["stage"] for s in stages),
        proposed_by_id=actor.id)
    session.add(p)
    session.flush()
    audit.record(session, event="propose_precedent", actor=actor, case_id=case.id,
                 payload={"precedent": p.id, "respondent": respondent.id})
    return p

def get(session: Session, precedent_id: int) -> Precedent:
    """The precedent, or NotFound."""
    p = session.get(Precedent, precedent_id)
    if p is None:
        raise NotFound(f"precedent {precedent_id} does not exist")
    return p

def _open(session: Session, precedent_id: int, actor, verb: str) -> Precedent:
    p = get(session, precedent_id)
    policy.require_precedent(queries.actor_of(session, actor), precedent_view(session, p), verb)
    if p.status != "proposed":
        raise ConflictError("the precedent has already been approved or rejected", state=p.status)
    return p

def _refuse_leaks(session: Session, p: Precedent) -> None:
    found = leaks(p, identifiers(session, session.get(Case, p.case_id)))
    if found:
        raise ValidationFailed("the texts still name a person, the enterprise, a loan or a number of the case",
                               field="findings", found=len(found))

def edit(session: Session, precedent_id: int, actor, *, title: str, reasoning: str,
         findings: dict[int, str]) -> Precedent:
    """Change a proposed precedent's title, reasoning and stage findings (by stage index) for anonymity.

    Raises PermissionDenied (not a curator, or a respondent), ConflictError (no longer proposed) and
    ValidationFailed (an empty title, an unknown stage, or a text that names someone of the case).
    """
    p = _open(session, precedent_id, actor, "edit")
    title = (title or "").strip()
    if not title:
        raise ValidationFailed("give the precedent a title", field="title")
    stages = [dict(s) for s in p.stages]
    for index, text in findings.items():
        if not 0 <= index < len(stages):
            raise ValidationFailed(f"the precedent has no stage {index}", field="findings")
        stages[index]["findings"] = (text or "").strip()
    before = {"title": p.title, "reasoning": p.reasoning, "findings": [s.get("findings", "") for s in p.stages]}
    p.title, p.reasoning, p.stages = title[:200], (reasoning or "").strip(), stages
    _refuse_leaks(session, p)
    p.edited_by_id, p.edited_at = actor.id, utcnow()
    session.add(p)
    session.flush()
    audit.record(session, event="edit_precedent", actor=actor, case_id=p.case_id,
                 payload={"precedent": p.id, "changed": [k for k in ("title", "reasoning") if before[k] != getattr(p, k)]
                          + (["findings"] if before["findings"] != [s.get("findings", "") for s in stages] else [])})
    return p

def approve(session: Session, precedent_id: int, actor) -> Precedent:
    """Approve a proposed precedent (a second curator, not its proposer): it joins the library.

    Raises PermissionDenied (self-approval, not a curator, a respondent), ConflictError (no longer proposed)
    and ValidationFailed (its texts still name someone of the case).
    """
    p = _open(session, precedent_id, actor, "decide")
    _refuse_leaks(session, p)
    p.status, p.decided_by_id, p.decided_at = "approved", actor.id, utcnow()
    session.add(p)
    session.flush()
    audit.record(session, event="approve_precedent", actor=actor, case_id=p.case_id, payload={"precedent": p.id})
    return p

def reject(session: Session, precedent_id: int, actor, reason: str) -> Precedent:
    """Reject a proposed precedent with a reason (a second curator, not its proposer).

    Raises PermissionDenied, ConflictError (no longer proposed) and ValidationFailed (no reason).
    """
    p = _open(session, precedent_id, actor, "decide")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("give a reason", field="reason")
    p.status, p.decided_by_id, p.decided_at, p.reject_reason = "rejected", actor.id, utcnow(), reason[:500]
    session.add(p)
    session.flush()
    audit.record(session, event="reject_precedent", actor=actor, case_id=p.case_id,
                 payload={"precedent": p.id, "reason": p.reject_reason})
    return p

# --- finding precedents -----------------------------------------------------------------------------------

def search(session: Session, actor, *, code: str = "", stage: str = "", outcome: str = "", product: str = "",
           text: str = "", status: str = "approved") -> list[Precedent]:
    """Precedents by rule code, stage, outcome, product and text (in title, reasoning, findings and item
    texts), newest first. `status` "proposed"/"rejected" lists those the actor may see (curators, auditors)."""
    q = select(Precedent).where(Precedent.status == status)
    if code:
        q = q.where(Precedent.codes.contains(f" {code.strip().upper()} "))
    if stage:
        q = q.where(Precedent.stage_codes.contains(f" {stage} "))
    if outcome:
        q = q.where(Precedent.outcome == outcome)
    if product:
        q = q.where(Precedent.product_class == product)
    found = list(session.exec(q.order_by(Precedent.id.desc())))
    if text.strip():
        needle = text.strip().lower()
        found = [p for p in found if needle in " ".join([p.title, p.reasoning, *_strings(p.stages)]).lower()]
    if status != "approved":
        who = queries.actor_of(session, actor)
        found = [p for p in found if policy.can_view_precedent(who, precedent_view(session, p))]
    return found

@dataclass(frozen=True)
class Similar:
    """An approved precedent like the case at hand: the codes they share on the same stage."""

    precedent: Precedent
    stage: str
    shared: tuple[str, ...]
    score: float

def similar(session: Session, stage: str, codes: Iterable[str], *, exclude_case_id: int | None = None,
            limit: int = 5) -> list[Similar]:
    """Approved precedents with the same stage sharing at least one code, ranked by the overlap (shared
    codes, then their share of both sets), newest first among equals."""
    codes = set(codes)
    if not codes:
        return []
    q = select(Precedent).where(Precedent.status == "approved", Precedent.stage_codes.contains(f" {stage} "))
    if exclude_case_id is not None:
        q = q.where(Precedent.case_id != exclude_case_id)
    ranked = []
    for p in session.exec(q):
        best = None
        for s in p.stages:
            if s["stage"] != stage:
                continue
            theirs = stage_code_set(s)
            shared = codes & theirs
            if shared:
                key = (len(shared), len(shared) / len(codes | theirs))
                if best is None or key > best[0]:
                    best = (key, tuple(sorted(shared)))
        if best:
            ranked.append(Similar(p, stage, best[1], best[0][1]))
    ranked.sort(key=lambda x: (-len(x.shared), -x.score, -(x.precedent.id or 0)))
    return ranked[:limit]

def facts_codes(facts: dict | None) -> set[str]:
    """The codes of a stage's recorded facts (items established and duties unperformed)."""
    facts = facts or {}
    return set(facts.get("positive", [])) | set(facts.get("mitigating", [])) | set(facts.get("negative", [])) | {
        u["duty"] for u in facts.get("unperformed", [])}

def similar_for_respondent(session: Session, respondent: Respondent, limit: int = 5) -> list[Similar]:
    """The precedents most like a respondent's recorded stages (their best matches over all stages)."""
    best: dict[int, Similar] = {}
    for f in session.exec(select(StageFact).where(StageFact.respondent_id == respondent.id)):
        for m in similar(session, f.stage, facts_codes(f.facts), exclude_case_id=respondent.case_id, limit=limit):
            known = best.get(m.precedent.id)
            if known is None or (len(m.shared), m.score) > (len(known.shared), known.score):
                best[m.precedent.id] = m
    return sorted(best.values(), key=lambda x: (-len(x.shared), -x.score, -(x.precedent.id or 0)))[:limit]

def public_dict(p: Precedent, tier1_name: str = "") -> dict:
    """The precedent as the API and exports give it (no link back to the case or the people)."""
    return {
        "id": p.id, "status": p.status, "title": p.title, "branch": tier1_name, "rule_set_version": p.rule_set_version,
        "product_class": p.product_class, "amount_band": p.amount_band, "tolerance_within": p.tolerance_within,
        "outcome": p.outcome, "recommended_outcome": p.recommended_outcome, "liability_kind": p.liability_kind,
        "stages": p.stages, "reasoning": p.reasoning, "codes": p.codes.split(),
        "approved_at": p.decided_at.isoformat() if p.decided_at and p.status == "approved" else None,
    }
