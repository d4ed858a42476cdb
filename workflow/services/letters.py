"""The documents of a case: built from the case as plain data, previewed, numbered, stored once, served.

Every document the procedure produces has its own template and its own number series per issuing organ,
kind and year (`SERIES`: 郑分免认〔2026〕12号 is the 12th determination of the 郑州分行 committee in 2026):

| kind | issued by | when |
|---|---|---|
| investigation_report 尽职调查报告 | the deciding committee's series, signed by the investigator | submission |
| minutes 评议会议纪要, determination 认定书, batch_report 尽职评议报告 | the deciding committee | issue letters |
| publicity_notice 公示通知 | the deciding committee | start of publicity |
| appeal_record 申诉记录, appeal_decision 申诉复核决定书 | the appeal committee of the level above | filing, decision |
| determination (final, after an altered appeal) | the deciding committee, citing the appeal decision | conclusion |
| referral 移交问责函 | the deciding committee | referral |
| service_record 送达回证 | the deciding committee | service of a letter |

Letters are rendered from the plain dicts built here (never from ORM objects) by `workflow.pdf`. Issuing
locks the case row (SELECT … FOR UPDATE on PostgreSQL; SQLite's write transactions begin IMMEDIATE), so
concurrent issuers queue and the later ones find what the first stored; (subject_key, version) is unique, so
even without the lock two issuers could never both store a version of the same document. A stored document
is never changed: a correction is a new version naming the one it supersedes.

The service (送达) of each determination is recorded (in person, in the app by the respondent's
acknowledgement, or by post), and the respondent's appeal window runs from it (`appeal_windows`).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from .. import pdf
from ..config import letter_signing
from ..domain import policy, rules, states
from ..domain.errors import ConflictError, DocumentsUnavailable, NotFound, PermissionDenied, ValidationFailed
from ..domain.policy import has_role
from ..models import (
    Appeal,
    AuditEvent,
    Branch,
    Case,
    DocSequence,
    Evidence,
    Letter,
    LetterService,
    Respondent,
    User,
    utcnow,
)
from . import anchor, audit, deadlines, document_form, notifications, queries, rulesets

#: The number series of each kind: the word between the organ's short form and the year.
SERIES = {
    "investigation_report": "免调", "determination": "免认", "publicity_notice": "免公", "minutes": "免纪",
    "appeal_record": "免申", "appeal_decision": "免复", "referral": "免移", "batch_report": "免评",
    "service_record": "免送", "case_summary": "免汇",
}
#: Kinds the appeal committee of the level above issues (under its own header and series).
APPEAL_KINDS = frozenset({"appeal_record", "appeal_decision"})
SERVICE_METHODS = ("in_person", "in_app", "post")
#: Kinds a chair may preview before they are issued, and the state in which each is issued.
PREVIEW_KINDS = {"minutes": "determined", "determination": "determined", "batch_report": "determined",
                 "publicity_notice": "determined", "referral": "final"}

TITLES = {"determination": "尽职免责认定书"}
# Why a document of the determination is issued again: the committee determined anew after a reopening.
REDETERMINED = "重新评议认定"
# Why a member recused, as a letter says it (the policy's reasons are the UI's English catalogue messages).
_RECUSAL_ZH = {
    policy.RECUSAL["respondent"]: "系本案被评议人",
    policy.RECUSAL["investigator"]: "系本案调查人员",
    policy.RECUSAL["handler"]: "办理过本案贷款的业务环节",
}


# --- numbering -------------------------------------------------------------------------------------------

def issuer_of(session: Session, case: Case, kind: str) -> Branch:
    """The branch whose organ issues a document of `kind`: the appeal committee of the level above for
    appeal documents, the deciding branch's committee for the others."""
    if kind in APPEAL_KINDS:
        return session.get(Branch, queries.aggregate(session, case).appeal_branch_id)
    return session.get(Branch, case.branch_id)


def next_number(session: Session, branch: Branch, year: int, kind: str = "determination") -> tuple[int, str]:
    """The next number of an organ's series of `kind` in `year`, e.g. (12, "郑分免认〔2026〕12号").

    Gap-free and never repeated: the counter row is locked for the rest of the issuing transaction, so a
    rolled-back issue gives its number back and two concurrent issuers queue.
    """
    series = SERIES[kind]
    query = (select(DocSequence).where(DocSequence.branch_id == branch.id, DocSequence.series == series,
                                       DocSequence.year == year)
             .with_for_update().execution_options(populate_existing=True))
    seq_row = session.exec(query).first()
    if seq_row is None:
        try:
            with session.begin_nested():
                session.add(DocSequence(branch_id=branch.id, series=series, year=year, last_seq=0))
        except IntegrityError:
            pass  # a concurrent issuer created it first; lock theirs below
        seq_row = session.exec(query).one()
    seq_row.last_seq += 1
    session.add(seq_row)
    session.flush()
    short = document_form.organ(session, branch).short_name
    return seq_row.last_seq, f"{short}{series}〔{year}〕{seq_row.last_seq}号"


def subject_key(kind: str, case_id: int, respondent_id: int | None = None, appeal_id: int | None = None) -> str:
    """What a document is about, without NULLs: (subject_key, version) is unique."""
    return f"{kind}:{case_id}:{respondent_id or 0}:{appeal_id or 0}"


def _latest(session: Session, key: str) -> Letter | None:
    return session.exec(select(Letter).where(Letter.subject_key == key).order_by(Letter.version.desc())).first()


def current(session: Session, kind: str, case_id: int, respondent_id: int | None = None,
            appeal_id: int | None = None) -> Letter | None:
    """The current (highest) version of a document, or None."""
    return _latest(session, subject_key(kind, case_id, respondent_id, appeal_id))


def lock_case(session: Session, case: Case) -> None:
    """Hold the case row for the rest of the transaction (PostgreSQL: SELECT … FOR UPDATE; SQLite's write
    transaction already holds the database), so that concurrent issuers of the case's documents queue."""
    session.exec(select(Case.id).where(Case.id == case.id).with_for_update()).first()


# Keys that differ between two issues of the same document without changing what it says: numbering and the
# form (an administrator's new bank name or 抄送 list is no reason to issue a document again).
_UNNUMBERED = ("doc_number", "issued_at", "version", "supersedes", "correction", "signatory", "draft", "bank",
               "masthead", "cc", "printed_by", "checkpoint")


@dataclass
class PendingLetter:
    """A document numbered and ready to render; persisted with `persist` in the same transaction."""

    kind: str
    case_id: int
    respondent_id: int | None
    appeal_id: int | None
    branch_id: int
    series: str
    year: int
    seq: int
    data: dict
    locale: str
    supersedes_id: int | None
    correction_reason: str | None
    signer: pdf.LetterSigner | None = None  # the certificate it is signed with once rendered

    @property
    def subject_key(self) -> str:
        return subject_key(self.kind, self.case_id, self.respondent_id, self.appeal_id)


def prepare(session: Session, case: Case, kind: str, data: dict, *, respondent_id=None, appeal_id=None,
            locale: str = "zh", today: date | None = None, correction_reason: str | None = None,
            force: bool = False) -> Letter | PendingLetter:
    """The stored document when the same content was issued already; otherwise a numbered PendingLetter.

    Without a correction reason an existing document is never replaced (issuing is idempotent); with one,
    a new version that names the one it supersedes is prepared when the content changed (`force`: even
    when it did not, for a correction someone asked for).
    """
    today = today or date.today()
    latest = _latest(session, subject_key(kind, case.id, respondent_id, appeal_id))
    if latest is not None:
        same = {k: v for k, v in latest.data.items() if k not in _UNNUMBERED}
        new = {k: v for k, v in data.items() if k not in _UNNUMBERED}
        if correction_reason is None or (same == new and not force):
            return latest
    issuer = issuer_of(session, case, kind)
    seq, number = next_number(session, issuer, today.year, kind)
    data = {**data, "doc_number": number, "issued_at": today.isoformat(),
            "version": (latest.version + 1) if latest else 1,
            "supersedes": latest.doc_number if latest else None,
            "correction": correction_reason if latest else None}
    if (checkpoint := anchor.for_letter(session)) is not None:
        data["checkpoint"] = checkpoint  # printed at the end of the document
    return PendingLetter(kind=kind, case_id=case.id, respondent_id=respondent_id, appeal_id=appeal_id,
                         branch_id=issuer.id, series=SERIES[kind], year=today.year, seq=seq, data=data,
                         locale=locale, supersedes_id=latest.id if latest else None,
                         correction_reason=correction_reason, signer=signer_of(session))


def render(pending: PendingLetter) -> pdf.RenderedLetter:
    """Render and sign a pending document (pure: safe to run in another process)."""
    return pdf.render_letter(pending.kind, pending.data, pending.locale, signer=pending.signer)


# --- the signing certificate ---------------------------------------------------------------------------------
_SIGNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def signer_from_config(config) -> pdf.LetterSigner | None:
    """The letter signer the configuration names (LETTER_SIGNING_P12, LETTER_SIGNING_PASSWORD); the
    demonstration certificate is made first when it is the one named and does not exist yet."""
    p12 = config.get("LETTER_SIGNING_P12")
    if not p12:
        return None
    signer = pdf.LetterSigner(str(p12), config.get("LETTER_SIGNING_PASSWORD") or None)
    if signer.demo:
        pdf.create_demo_certificate(Path(p12))  # development and tests only: a bank configures its own
    return signer


def attach_signer(engine, signer: pdf.LetterSigner | None) -> None:
    """Letters issued on this engine's database are signed with `signer` (None: not signed)."""
    _SIGNERS[engine] = signer


def signer_of(session) -> pdf.LetterSigner | None:
    """The signer of the session's engine (attached by create_app), else the one the environment names."""
    engine = anchor.anchor_engine(session)
    if engine in _SIGNERS:
        return _SIGNERS[engine]
    p12, passphrase = letter_signing()
    return signer_from_config({"LETTER_SIGNING_P12": p12, "LETTER_SIGNING_PASSWORD": passphrase})


def _render_here(pending: PendingLetter) -> pdf.RenderedLetter:
    """Render in this process; a missing font is the user's clear message (503), and nothing is stored."""
    try:
        return render(pending)
    except (pdf.LetterFontMissing, pdf.LetterSubsetterMissing) as exc:
        raise DocumentsUnavailable("documents cannot be rendered on this server: the Chinese letter font is "
                                   "missing; an administrator must run scripts/setup", cause=str(exc)) from exc
    except pdf.LetterSigningError as exc:
        raise DocumentsUnavailable("documents cannot be signed on this server: the signing certificate cannot "
                                   "be read; an administrator must check LETTER_SIGNING_P12",
                                   cause=str(exc)) from exc


def persist(session: Session, pending: PendingLetter, rendered: pdf.RenderedLetter, actor) -> Letter:
    """Store a rendered document once, with its template, data and SHA-256, and audit the issue."""
    letter = Letter(kind=pending.kind, case_id=pending.case_id, respondent_id=pending.respondent_id,
                    appeal_id=pending.appeal_id, subject_key=pending.subject_key, branch_id=pending.branch_id,
                    series=pending.series, year=pending.year, seq=pending.seq,
                    doc_number=pending.data["doc_number"], version=pending.data["version"],
                    supersedes_id=pending.supersedes_id, template=rendered.template,
                    template_version=rendered.template_version, locale=pending.locale, data=pending.data,
                    sha256=rendered.sha256, pdf=rendered.pdf, issued_by_id=getattr(actor, "id", None))
    session.add(letter)
    session.flush()
    audit.record(session, event="issue_letter", actor=actor, case_id=pending.case_id,
                 payload={"letter_id": letter.id, "kind": letter.kind, "doc_number": letter.doc_number,
                          "version": letter.version, "supersedes": pending.data["supersedes"],
                          "sha256": letter.sha256, "template_version": letter.template_version,
                          "respondent_id": letter.respondent_id, "appeal_id": letter.appeal_id,
                          "correction_reason": pending.correction_reason})
    case = session.get(Case, pending.case_id)
    queries.aggregate(session, case).changed("letters")
    anchor.due(session)  # a checkpoint of the head once this is committed
    if letter.kind == "determination" and letter.respondent_id is not None:
        # The respondent's letter awaits their acknowledgement (签收) in the app, or its service by hand or post.
        r = session.get(Respondent, letter.respondent_id)
        notifications.tell(session, [r.user_id], case_id=case.id, kind="letter_issued", key=f"letter-issued:{letter.id}",
                           zh=f"您在案件 {case.number} 中的{TITLES['determination']}（{letter.doc_number}）已出具，"
                              "请登录系统查阅并签收。",
                           en=f"Your determination letter {letter.doc_number} in case {case.number} is issued: "
                              "read and acknowledge it in the app.")
    return letter


def _store(session: Session, case: Case, actor, kind: str, data: dict, **kw) -> Letter:
    """Prepare, render and persist one document in the caller's transaction (the case row locked)."""
    lock_case(session, case)
    pending = prepare(session, case, kind, data, **kw)
    if isinstance(pending, Letter):
        return pending
    return persist(session, pending, _render_here(pending), actor)


# --- the plain data ----------------------------------------------------------------------------------------

def _money(value: Decimal) -> str:
    return str(value)


def _respondent_data(session: Session, r: Respondent) -> dict:
    user = session.get(User, r.user_id)
    branch = session.get(Branch, user.branch_id)
    return {"name": user.name, "employee_no": user.employee_no, "branch": branch.name}


def _loans_data(session: Session, case: Case) -> list[dict]:
    enterprise = queries.aggregate(session, case).enterprise
    return [{"loan_no": lo.loan_no, "enterprise": enterprise.name, "amount": _money(lo.amount),
             "balance": _money(lo.balance)} for lo in queries.aggregate(session, case).loans]


def _stages_of(session: Session, case: Case, r: Respondent) -> list[str]:
    mine = {a.stage for a in queries.aggregate(session, case).assignments if a.user_id == r.user_id}
    return [s for s in rules.STAGES if s in mine]


def _name(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id else None
    return user.name if user else ""


def _form(session: Session, case: Case, kind: str, actor, *, decided_at: date | None = None) -> dict:
    """What every document carries: the bank and the issuing organ, its masthead, 抄送, 印发 and 签发人."""
    bank = document_form.form(session)
    issuer = issuer_of(session, case, kind)
    organ = document_form.organ(session, issuer)
    name = organ.appeal_committee_name if kind in APPEAL_KINDS else organ.committee_name
    signatory = organ.signatory or _signatory(session, case, issuer, actor)
    return {
        "bank": bank.bank_name, "branch": issuer.name, "case_no": case.number,
        "masthead": name if name.startswith(bank.bank_name) else f"{bank.bank_name}{name}",
        "committee": {"name": name, "decided_at": (decided_at or date.today()).isoformat()},
        "cc": list(bank.cc), "printed_by": organ.printed_by if organ.printed_by.startswith(bank.bank_name)
        else f"{bank.bank_name}{organ.printed_by}", "signatory": signatory or None,
    }


def _signatory(session: Session, case: Case, issuer: Branch, actor) -> str:
    """Who signs a document when the organ names nobody: the issuing user if they sit in the issuing organ's
    branch, otherwise the chair who signed the case's determination (for the deciding committee)."""
    user = session.get(User, actor.id) if getattr(actor, "id", None) else None
    if user is not None and user.branch_id == issuer.id:
        return user.name
    if issuer.id == case.branch_id:
        determiners = queries.aggregate(session, case).determiners
        if determiners:
            return _name(session, determiners[-1])
    return ""


def _appeal_body(session: Session, case: Case) -> str:
    branch = issuer_of(session, case, "appeal_decision")
    return document_form.organ(session, branch).appeal_committee_name


def _cite(bank_rule: str, source: str | None) -> str | None:
    """The bank's own rule first, then the regulatory anchor."""
    parts = [p for p in (bank_rule, source) if p]
    return "；".join(parts) or None


def _paragraphs(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _evidence_names(session: Session, case: Case) -> dict[int, str]:
    """Evidence of the case as documents refer to it: 证据3（核查记录）."""
    rows = session.exec(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)).all()
    return {e.id: f"证据{n}（{(e.description or Path(e.filename).stem)[:60]}）" for n, e in enumerate(rows, 1)}


def _stage_findings(rs: rules.RuleSet, facts: dict, evidence: dict[int, str]) -> dict:
    """Items established, duties unperformed, findings and their evidence of one stage, as letters cite them."""
    established = []
    for kind in rules.LIST_KINDS:
        for code in rs.ordered(facts.get(kind) or []):
            item = rs.item(code)
            established.append({"kind": kind, "text": item.zh, "citation": _cite(item.bank_rule, item.source)})
    unperformed = []
    by_duty = {u["duty"]: u for u in facts.get("unperformed") or []}
    for code in rs.ordered(by_duty):
        item, u = rs.item(code), by_duty[code]
        unperformed.append({"text": item.zh, "citation": _cite(item.bank_rule, item.source),
                            "causal": bool(u.get("causal")),
                            "evidence": [evidence[e] for e in u.get("evidence") or [] if e in evidence]})
    return {"established": established, "unperformed": unperformed, "violation": bool(facts.get("violation")),
            "findings": _paragraphs(facts.get("findings")),
            "evidence": [evidence[e] for e in facts.get("findings_evidence") or [] if e in evidence]}


def _facts_of(session: Session, case: Case, r: Respondent) -> dict[tuple[str, str], tuple]:
    """(loan number, stage) → (facts, rule set) of a respondent."""
    agg = queries.aggregate(session, case)
    loan_no = {lo.id: lo.loan_no for lo in agg.loans}
    return {(loan_no.get(f.loan_id, str(f.loan_id)), f.stage): (f.facts, rulesets.parsed_by_id(session, f.rule_set_version_id))
            for f in agg.facts if f.respondent_id == r.id}


def stage_reasons(session: Session, case: Case, r: Respondent) -> tuple[list[dict], list[dict]]:
    """The reasons of a respondent's letter, per loan and stage: each stage's outcome, the rule that decided
    it (its letter text and the bank's citation), the items established, the duties unperformed and the
    written findings; and the stages whose outcome is the most severe (those that decide)."""
    facts = _facts_of(session, case, r)
    evidence = _evidence_names(session, case)
    procedure = rulesets.procedure_rules(session, case)
    out = []
    for st in (r.recommendation or {}).get("stages", []):
        loan_no, stage = st.get("loan") or "", st["stage"]
        stage_facts, rs = facts.get((loan_no, stage), ({}, procedure))
        fired = next(e for e in reversed(st["explanation"]) if e["fired"])
        step = rs.step(fired["rule"])
        out.append({"loan_no": loan_no, "stage": stage, "outcome": st["outcome"], "rule": step.letter_text("zh"),
                    "citation": _cite(step.bank_rule, step.source), **_stage_findings(rs, stage_facts, evidence)})
    out.sort(key=lambda s: (s["loan_no"], rules.STAGES.index(s["stage"])))
    worst = rules.most_severe(s["outcome"] for s in out) if out else None
    deciding = [{"loan_no": s["loan_no"], "stage": s["stage"]} for s in out if s["outcome"] == worst]
    return out, deciding


def consequences(rs: rules.RuleSet, outcome: str) -> list[str]:
    """The concrete consequences of an outcome from the rule set's sanctions (points, grades, referral)."""
    s = rs.sanctions[outcome]
    labels = pdf.labels("zh")

    def part(key: str, factor: Decimal) -> str:
        if factor == 0:
            return labels[key]["none"]
        if factor == 1:
            return labels[key]["full"]
        return labels[key]["part"].format(pct=f"{(factor * 100).normalize():f}%")

    lines = [part("consequence_points", s.assessment_points_factor)]
    admin = labels["consequence_admin"][s.administrative_sanction]
    lines.append(admin.format(n=s.administrative_grades_lighter) if s.administrative_sanction == "lighter" else admin)
    lines.append(part("consequence_money", s.economic_penalty_factor))
    if s.referred:
        recipient = s.referral_recipient.zh if s.referral_recipient else "问责部门"
        lines.append(labels["consequence_referral"].format(recipient=recipient))
    return lines


def tolerance_data(case: Case) -> dict | None:
    t = case.tolerance
    if not t:
        return None
    return {"branch": t.get("branch_name") or t.get("branch"), "period": t["period"], "sme_ratio": t.get("sme_ratio"),
            "all_ratio": t.get("all_ratio"), "gap_pp": t.get("gap_pp"), "within": t["within"]}


def tally(outcomes: Iterable[str], eligible: int | None = None) -> dict:
    """表决情况 of a list of voted outcomes."""
    outcomes = list(outcomes)
    out = {o: sum(1 for v in outcomes if v == o) for o in rules.OUTCOMES}
    return {**out, "cast": len(outcomes), **({"eligible": eligible} if eligible is not None else {})}


def _decided_on(case: Case) -> date:
    return (case.determined_at or utcnow()).date()


def determination_data(session: Session, case: Case, r: Respondent, today: date, outcome: str | None = None,
                       actor=None) -> dict:
    """The plain data of one respondent's determination letter (before an appeal)."""
    agg = queries.aggregate(session, case)
    rs = agg.procedure
    outcome = outcome or r.decided_outcome
    if outcome is None:
        raise ValidationFailed("the respondent has no decided outcome yet")
    reasons, deciding = stage_reasons(session, case, r)
    deviation = None
    if r.decided_outcome and r.recommended_outcome and r.decided_outcome != r.recommended_outcome:
        deviation = {"recommended": r.recommended_outcome, "decided": r.decided_outcome,
                     "reason": r.deviation_reason or ""}
    person = _respondent_data(session, r)
    votes = [v.outcome for v in agg.valid_votes if v.respondent_id == r.id]
    return {
        **_form(session, case, "determination", actor, decided_at=_decided_on(case)),
        "main_to": [person["name"]],
        "respondent": person,
        "loans": _loans_data(session, case),
        "stages": _stages_of(session, case, r),
        "outcome": outcome,
        "liability_kind": r.liability_kind,
        "consequences": consequences(rs, outcome),
        "stage_reasons": reasons,
        "deciding": deciding,
        "recommended": r.recommended_outcome,
        "tolerance": tolerance_data(case),
        "deviation": deviation if outcome == r.decided_outcome else None,
        "votes": tally(votes, len(agg.eligible_voters())) if votes else None,
        "appeal": {"days": rulesets.time_limit(rs, "appeal_window"), "body": _appeal_body(session, case)},
    }


def _appeal_panel(session: Session, appeal: Appeal) -> list[dict]:
    """The appeal committee's named votes on an appeal: its panel votes when the appeal has them (a list of
    rows or dicts with the member and the outcome voted for), otherwise the reviewer who decided."""
    case = session.get(Case, appeal.case_id)
    return panel_votes(session, queries.aggregate(session, case).panel_votes(appeal.id), appeal)


def panel_votes(session: Session, votes, appeal: Appeal) -> list[dict]:
    """Named votes of an appeal panel, from whatever shape the appeal holds them in."""
    out = []
    for v in votes or []:
        get = v.get if isinstance(v, dict) else (lambda key, default=None, v=v: getattr(v, key, default))
        member = get("member") or _name(session, get("member_id") or get("reviewer_id") or get("user_id"))
        outcome = get("outcome") or get("new_outcome") or appeal.new_outcome or appeal.appealed_outcome
        if get("invalidated_at") is not None or not member:
            continue
        out.append({"member": member, "outcome": outcome, "reason": get("reason") or None})
    if not out and appeal.decided_by_id:
        out.append({"member": _name(session, appeal.decided_by_id),
                    "outcome": appeal.new_outcome or appeal.appealed_outcome, "reason": None})
    return out


def final_determination_data(session: Session, case: Case, r: Respondent, appeal: Appeal, actor=None) -> dict:
    """The final determination after an altered appeal: the appeal decision it rests on, the final outcome,
    no appeal rights and none of the overturned reasons."""
    rs = rulesets.procedure_rules(session, case)
    decision = current(session, "appeal_decision", case.id, r.id, appeal.id)
    if decision is None:
        raise ValidationFailed("the appeal decision has not been issued")
    original = _original_determination(session, case, r)
    outcome = appeal.new_outcome
    person = _respondent_data(session, r)
    return {
        **_form(session, case, "determination", actor, decided_at=appeal.decided_at.date()),
        "main_to": [person["name"]],
        "respondent": person,
        "loans": _loans_data(session, case),
        "stages": _stages_of(session, case, r),
        "outcome": outcome,
        "liability_kind": r.liability_kind,
        "consequences": consequences(rs, outcome),
        "tolerance": tolerance_data(case),
        "final": True,
        "appeal": None,
        "appeal_outcome": {"doc_number": decision.doc_number, "body": decision.data["committee"]["name"],
                           "decided_at": appeal.decided_at.date().isoformat(), "decision": appeal.decision,
                           "reasons": _paragraphs(appeal.decision_reason) or ["—"],
                           "previous_doc_number": original.doc_number if original else None,
                           "previous_outcome": appeal.appealed_outcome},
    }


def _original_determination(session: Session, case: Case, r: Respondent) -> Letter | None:
    """The respondent's current determination that is not final (the one an appeal is against)."""
    rows = session.exec(select(Letter).where(Letter.subject_key == subject_key("determination", case.id, r.id))
                        .order_by(Letter.version.desc())).all()
    return next((lt for lt in rows if not lt.data.get("final")), None)


def on_behalf(stand_in: str, principal: str) -> str:
    """How the documents name an act of a stand-in: 许代（代周九）."""
    return f"{stand_in}（代{principal}）"


def _voter(session: Session, names: dict[int, str], v) -> str:
    member = names.get(v.member_id) or _name(session, v.member_id)
    if v.on_behalf_of_id:
        return on_behalf(member, names.get(v.on_behalf_of_id) or _name(session, v.on_behalf_of_id))
    return member


def minutes_data(session: Session, case: Case, actor=None) -> dict:
    """评议会议纪要 of the determination: attendance, recusals and why, named votes, tally, deviations."""
    agg = queries.aggregate(session, case)
    eligible = sorted(agg.eligible_voters(), key=lambda m: m.id)
    voters = {v.seat_id for v in agg.valid_votes}  # a seat a stand-in voted in is present
    by_stand_in = {v.on_behalf_of_id: v.member_id for v in agg.valid_votes if v.on_behalf_of_id}
    signed = session.exec(select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.event == "determine")
                          .order_by(AuditEvent.seq.desc())).first()
    chair_id = agg.determiners[-1] if agg.determiners else getattr(actor, "id", None)
    chair = _name(session, chair_id)
    if signed is not None and signed.payload.get("on_behalf_of_id"):
        chair_id = signed.payload["on_behalf_of_id"]  # the chair's seat, signed by their stand-in
        chair = on_behalf(_name(session, signed.actor_id), signed.payload.get("on_behalf_of_name", ""))
    present = [{"name": on_behalf(_name(session, by_stand_in[m.id]), m.name) if m.id in by_stand_in else m.name,
                "role": "chair" if m.id == chair_id else "member"} for m in eligible if m.id in voters]
    present.sort(key=lambda a: a["role"] != "chair")
    recusals = []
    for m in sorted(agg.committee, key=lambda m: m.id):
        why = policy.recusal_reason(m.id, respondent_ids=agg.respondent_user_ids,
                                    investigator_id=case.investigator_id, loan_handler_ids=agg.handler_ids)
        if why:
            recusals.append({"name": m.name, "reason": _RECUSAL_ZH.get(why, why)})
    names = {m.id: m.name for m in agg.committee}
    respondents = []
    for r in agg.respondents:
        mine = [v for v in agg.valid_votes if v.respondent_id == r.id]
        respondents.append({
            "respondent": _name(session, r.user_id), "recommended": r.recommended_outcome,
            "decided": r.decided_outcome or agg.carried(r) or r.recommended_outcome,
            "votes": [{"member": _voter(session, names, v), "outcome": v.outcome, "reason": v.reason or None}
                      for v in mine],
            "tally": tally([v.outcome for v in mine], len(eligible)),
            "deviation_reason": r.deviation_reason})
    return {**_form(session, case, "minutes", actor, decided_at=_decided_on(case)),
            "enterprise": agg.enterprise.name, "chair": chair or "—", "present": present or [{"name": chair or "—",
                                                                                        "role": "chair"}],
            "absent": [m.name for m in eligible if m.id not in voters], "recusals": recusals,
            "respondents": respondents, "eligible": len(eligible)}


def _statement(r: Respondent) -> dict:
    if (r.statement or "").strip():
        return {"status": "filed", "text": _paragraphs(r.statement),
                "at": r.statement_at.date().isoformat() if r.statement_at else None}
    if getattr(r, "statement_declined_at", None):
        return {"status": "declined"}
    return {"status": "not_filed"}


def investigation_report_data(session: Session, case: Case, actor=None, today: date | None = None) -> dict:
    """尽职调查报告: per respondent, loan and stage, the written findings and what they establish."""
    agg = queries.aggregate(session, case)
    evidence = _evidence_names(session, case)
    performed = {(a.user_id, a.loan_id, a.stage): a.performed_on.isoformat() for a in agg.assignments}
    loan_no = {lo.id: lo.loan_no for lo in agg.loans}
    respondents = []
    for r in agg.respondents:
        stages = []
        for f in sorted((f for f in agg.facts if f.respondent_id == r.id),
                        key=lambda f: (loan_no.get(f.loan_id, ""), rules.STAGES.index(f.stage))):
            found = _stage_findings(rulesets.parsed_by_id(session, f.rule_set_version_id), f.facts, evidence)
            stages.append({"loan_no": loan_no.get(f.loan_id, str(f.loan_id)), "stage": f.stage,
                           "performed_on": performed.get((r.user_id, f.loan_id, f.stage)),
                           **found, "findings": found["findings"] or ["—"],
                           "dissented": bool(f.facts.get("dissented"))})
        if stages:
            respondents.append({"respondent": _respondent_data(session, r), "statement": _statement(r),
                                "stages": stages})
    items = session.exec(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)).all()
    investigator = _name(session, case.investigator_id) or _name(session, getattr(actor, "id", None))
    form = _form(session, case, "investigation_report", actor, decided_at=today)
    form["signatory"] = investigator or None
    return {**form, "enterprise": agg.enterprise.name, "loans": _loans_data(session, case),
            "investigator": investigator or "—", "respondents": respondents,
            "main_to": [form["committee"]["name"]],
            "evidence": [{"no": n, "name": Path(e.filename).stem, "description": e.description or None}
                         for n, e in enumerate(items, 1)],
            "tolerance": tolerance_data(case)}


def publicity_notice_data(session: Session, case: Case, actor=None, today: date | None = None) -> dict:
    """公示通知: the outcomes per respondent, the period, how and by when to object."""
    today = today or date.today()
    agg = queries.aggregate(session, case)
    days = rulesets.time_limit(agg.procedure, "publicity")
    ends = case.publicity_ends or deadlines.add_working_days(session, today, days)
    start = today if case.publicity_ends is None else _publicity_start(session, case, today)
    form = _form(session, case, "publicity_notice", actor, decided_at=_decided_on(case))
    return {**form, "main_to": [f"{form['branch']}各部室、各支行"], "enterprise": agg.enterprise.name,
            "loans": _loans_data(session, case),
            "respondents": [{**{k: v for k, v in _respondent_data(session, r).items() if k in ("name", "branch")},
                             "outcome": r.decided_outcome, "liability_kind": r.liability_kind}
                            for r in agg.respondents],
            "period": {"start": start.isoformat(), "end": ends.isoformat(), "days": days},
            "objection_to": form["committee"]["name"]}


def _publicity_start(session: Session, case: Case, today: date) -> date:
    for e in reversed(queries.aggregate(session, case).events):
        if e.event == "start_publicity":
            return date.fromisoformat(e.at[:10])
    return today


def referral_data(session: Session, case: Case, actor=None, *, recipient: str | None = None,
                  respondent_ids: Collection[int] | None = None) -> dict:
    """移交问责函: the respondents referred (by default every one whose final outcome is reduced or liable),
    with their consequences, to the recipient department (by default the rule set's)."""
    agg = queries.aggregate(session, case)
    rs = agg.procedure
    referred = []
    documents = []
    for r in agg.respondents:
        outcome = r.final_outcome or r.decided_outcome
        if outcome not in ("reduced", "liable") or (respondent_ids is not None and r.id not in respondent_ids):
            continue
        letter = current(session, "determination", case.id, r.id)
        referred.append({**_respondent_data(session, r), "outcome": outcome, "liability_kind": r.liability_kind,
                         "doc_number": letter.doc_number if letter else None,
                         "consequences": consequences(rs, outcome)})
        if letter:
            documents.append(letter.doc_number)
    if not referred:
        raise ValidationFailed("no respondent's final outcome is reduced or liable: nothing to refer")
    recipient = recipient or default_recipient(rs)
    form = _form(session, case, "referral", actor, decided_at=(case.final_at or utcnow()).date())
    return {**form, "main_to": [recipient], "enterprise": agg.enterprise.name, "recipient": recipient,
            "respondents": referred, "documents": documents}


def default_recipient(rs: rules.RuleSet) -> str:
    """The department the rule set names to receive referrals (问责部门 when it names none)."""
    return next((s.referral_recipient.zh for s in rs.sanctions.values() if s.referral_recipient), "问责部门")


def batch_report_data(session: Session, case: Case, actor=None) -> dict:
    """尽职评议报告（批量）: the batch case's loans and each respondent's outcome."""
    agg = queries.aggregate(session, case)
    respondents = []
    for r in agg.respondents:
        outcome = r.final_outcome or r.decided_outcome
        if outcome is None:
            raise ValidationFailed("a batch report needs every respondent's outcome")
        letter = current(session, "determination", case.id, r.id)
        respondents.append({**_respondent_data(session, r), "stages": _stages_of(session, case, r),
                            "outcome": outcome, "liability_kind": r.liability_kind,
                            "doc_number": letter.doc_number if letter else None})
    return {**_form(session, case, "batch_report", actor, decided_at=_decided_on(case)),
            "enterprise": agg.enterprise.name, "loans": _loans_data(session, case), "respondents": respondents,
            "tolerance": tolerance_data(case)}


def appeal_record_data(session: Session, case: Case, appeal: Appeal, actor=None) -> dict:
    r = session.get(Respondent, appeal.respondent_id)
    determination = _original_determination(session, case, r)
    evidence = session.exec(select(Evidence).where(Evidence.appeal_id == appeal.id).order_by(Evidence.id)).all()
    form = _form(session, case, "appeal_record", actor, decided_at=appeal.filed_at.date())
    form["committee"] = {"name": form["committee"]["name"]}
    return {**form, "respondent": _respondent_data(session, r),
            "appealed_doc_number": determination.doc_number if determination else "—",
            "appealed_outcome": appeal.appealed_outcome, "filed_at": appeal.filed_at.date().isoformat(),
            "grounds": appeal.grounds,
            "evidence": [(e.description or Path(e.filename).stem)[:120] for e in evidence]}


def appeal_decision_data(session: Session, case: Case, appeal: Appeal, actor=None) -> dict:
    r = session.get(Respondent, appeal.respondent_id)
    determination = _original_determination(session, case, r)
    panel = _appeal_panel(session, appeal)
    form = _form(session, case, "appeal_decision", actor, decided_at=appeal.decided_at.date())
    return {**form, "respondent": _respondent_data(session, r),
            "appealed_doc_number": determination.doc_number if determination else "—",
            "appealed_outcome": appeal.appealed_outcome, "decision": appeal.decision,
            "new_outcome": appeal.new_outcome, "liability_kind": r.liability_kind,
            "filed_at": appeal.filed_at.date().isoformat(),
            "reasons": [{"text": p} for p in _paragraphs(appeal.decision_reason)] or [{"text": "—"}],
            "reviewers": [v["member"] for v in panel] or [_name(session, appeal.decided_by_id) or "—"],
            "panel": panel, "tally": tally([v["outcome"] for v in panel]) if len(panel) > 1 else None}


# --- issuing -------------------------------------------------------------------------------------------------

def _chair_or_admin(session: Session, case: Case, actor, action: str = "issue_letters") -> None:
    queries.authorize(session, case, actor, action)


def issue_determination_letters(session: Session, case: Case, actor, *, today: date | None = None) -> list[Letter]:
    """Issue the meeting minutes, every respondent's determination letter and, for a batch case, the batch
    duty-review report. Idempotent: a rerun (or a concurrent request) issues only what is missing.

    Raises PermissionDenied, ValidationFailed outside `determined`, DocumentsUnavailable without the font.
    """
    today = today or date.today()
    queries.authorize(session, case, actor, "issue_letters")
    if case.state != "determined":
        raise states.TransitionNotAllowed("determination letters are issued once the case is determined",
                                          state=case.state, event="issue_letters")
    lock_case(session, case)
    # After a reopening the committee met again: its new minutes are a new version (the same ones are kept).
    _store(session, case, actor, "minutes", minutes_data(session, case, actor), today=today,
           correction_reason=REDETERMINED)
    # After a reopening the committee may decide differently: a changed letter is issued as a new version
    # naming the one it supersedes; an unchanged one is returned as stored.
    out = [_store(session, case, actor, "determination", determination_data(session, case, r, today, actor=actor),
                  respondent_id=r.id, today=today, correction_reason=REDETERMINED)
           for r in queries.aggregate(session, case).respondents]
    if case.batch_report:
        _store(session, case, actor, "batch_report", batch_report_data(session, case, actor), today=today,
               correction_reason=REDETERMINED)
    return out


def issue_investigation_report(session: Session, case: Case, actor, *, today: date | None = None) -> Letter:
    """The investigation report at submission (a new version after a return for investigation)."""
    return _store(session, case, actor, "investigation_report",
                  investigation_report_data(session, case, actor, today), today=today,
                  correction_reason="补充调查后重新提交")


def issue_publicity_notice(session: Session, case: Case, actor, *, today: date | None = None) -> Letter:
    """The publicity notice at the start of publicity (a new version when publicity starts again)."""
    return _store(session, case, actor, "publicity_notice", publicity_notice_data(session, case, actor, today),
                  today=today, correction_reason="重新评议后再次公示")


def issue_referral(session: Session, case: Case, actor, *, today: date | None = None, recipient: str | None = None,
                   respondent_ids: Collection[int] | None = None) -> Letter:
    """The referral letter to the accountability procedure (to `recipient`, for `respondent_ids`)."""
    return _store(session, case, actor, "referral", referral_data(session, case, actor, recipient=recipient,
                                                                  respondent_ids=respondent_ids), today=today)


def issue_final_determination(session: Session, case: Case, appeal: Appeal, actor, *,
                              today: date | None = None) -> Letter:
    """After an altered appeal: the final determination, a new version of the respondent's letter that
    cites the appeal decision, states the final outcome and carries no appeal rights."""
    r = session.get(Respondent, appeal.respondent_id)
    data = final_determination_data(session, case, r, appeal, actor)
    return _store(session, case, actor, "determination", data, respondent_id=r.id, today=today,
                  correction_reason="申诉复核变更认定结论")


def correct_letter(session: Session, letter_id: int, actor, reason: str, *, today: date | None = None) -> Letter:
    """Issue a corrected version of a determination letter that names the one it supersedes."""
    today = today or date.today()
    old = session.get(Letter, letter_id)
    if old is None:
        raise NotFound(f"letter {letter_id} does not exist")
    if not (reason or "").strip():
        raise ValidationFailed("a correction needs a reason", field="reason")
    case = session.get(Case, old.case_id)
    queries.authorize(session, case, actor, "issue_letters")
    r = session.get(Respondent, old.respondent_id)
    appeal = next((a for a in queries.aggregate(session, case).appeals
                   if a.respondent_id == r.id and a.decision == "altered"), None)
    if old.data.get("final") and appeal is not None:  # a final determination stays final, citing its decision
        data = final_determination_data(session, case, r, appeal, actor)
    else:
        data = determination_data(session, case, r, today, outcome=r.final_outcome or r.decided_outcome, actor=actor)
    return _store(session, case, actor, old.kind, data, respondent_id=r.id, today=today,
                  correction_reason=reason.strip(), force=True)


def issue_appeal_record(session: Session, case: Case, appeal: Appeal, actor, *, today: date | None = None) -> Letter:
    """The record of an appeal as received (what was appealed, when, grounds, evidence list), under the
    appeal committee's header and series."""
    return _store(session, case, actor, "appeal_record", appeal_record_data(session, case, appeal, actor),
                  respondent_id=appeal.respondent_id, appeal_id=appeal.id, today=today)


def issue_appeal_decision(session: Session, case: Case, appeal: Appeal, actor, *,
                          today: date | None = None) -> Letter:
    """The appeal committee's decision letter, under its own header and series."""
    if appeal.decision is None:
        raise ValidationFailed("the appeal has not been decided yet")
    return _store(session, case, actor, "appeal_decision", appeal_decision_data(session, case, appeal, actor),
                  respondent_id=appeal.respondent_id, appeal_id=appeal.id, today=today)


# --- preview -------------------------------------------------------------------------------------------------

def preview(session: Session, case: Case, actor, kind: str, *, respondent_id: int | None = None,
            today: date | None = None) -> pdf.RenderedLetter:
    """A document as it would be issued now, watermarked 草稿 and unnumbered; nothing is stored.

    Raises PermissionDenied, NotFound (unknown kind or respondent), TransitionNotAllowed when the kind is not
    issued in the case's state, DocumentsUnavailable without the font.
    """
    today = today or date.today()
    queries.authorize(session, case, actor, "preview_documents")
    if kind not in PREVIEW_KINDS:
        raise NotFound(f"no preview of {kind!r}; previews: {', '.join(PREVIEW_KINDS)}")
    if case.state != PREVIEW_KINDS[kind]:
        raise states.TransitionNotAllowed(f"a {kind} is issued while the case is {PREVIEW_KINDS[kind]}",
                                          state=case.state, event="preview")
    agg = queries.aggregate(session, case)
    if kind == "determination":
        data = determination_data(session, case, agg.respondent(respondent_id or 0), today, actor=actor)
    elif kind == "minutes":
        data = minutes_data(session, case, actor)
    elif kind == "batch_report":
        data = batch_report_data(session, case, actor)
    elif kind == "publicity_notice":
        data = publicity_notice_data(session, case, actor, today)
    else:
        data = referral_data(session, case, actor)
    data = {**data, "doc_number": pdf.DRAFT_NUMBER, "issued_at": today.isoformat(), "draft": True}
    try:
        return pdf.render_letter(kind, data)
    except (pdf.LetterFontMissing, pdf.LetterSubsetterMissing) as exc:
        raise DocumentsUnavailable("documents cannot be rendered on this server: the Chinese letter font is "
                                   "missing; an administrator must run scripts/setup", cause=str(exc)) from exc


# --- service, acknowledgement, the appeal window --------------------------------------------------------------

@dataclass
class Window:
    """One respondent's appeal window: from the service of their current determination letter."""

    respondent_id: int
    letter_id: int | None
    doc_number: str | None
    final: bool = False
    served_on: date | None = None
    method: str | None = None
    deadline: date | None = None
    appealed: bool = False
    waived: bool = False
    service_id: int | None = None
    receipt_id: int | None = None
    extra: dict = field(default_factory=dict)

    def settled(self, today: date) -> bool:
        """Appealed, waived, or out of time (a final letter needs no window)."""
        return self.final or self.appealed or self.waived or (self.deadline is not None and today > self.deadline)

    def open(self, today: date) -> bool:
        """Whether the respondent may still appeal."""
        return not (self.final or self.appealed or self.waived) and self.deadline is not None and today <= self.deadline


def appeal_windows(session: Session, case: Case) -> dict[int, Window]:
    """Each respondent's appeal window (respondent id → Window), from the service of their current letter.

    Read from the unit's aggregate (its letters, services, waivers and appeals, each read once): the case
    page, the policy's answers and the verbs see the same windows.
    """
    agg = queries.aggregate(session, case)
    latest: dict[int, object] = {}
    for lt in agg.letters:
        if lt.kind == "determination" and lt.respondent_id is not None:
            if lt.respondent_id not in latest or lt.version > latest[lt.respondent_id].version:
                latest[lt.respondent_id] = lt
    services = {sv.letter_id: sv for sv in agg.services}
    appeals = {a.respondent_id: a for a in agg.appeals}
    out = {}
    for r in agg.respondents:
        lt = latest.get(r.id)
        service = services.get(lt.id) if lt is not None else None
        appeal = appeals.get(r.id)
        # The final determination after an altered appeal is issued once the appeal is decided.
        final = bool(lt is not None and appeal is not None and appeal.decision == "altered" and appeal.decided_at
                     and lt.issued_at >= appeal.decided_at)
        out[r.id] = Window(r.id, lt.id if lt else None, lt.doc_number if lt else None, final=final,
                           served_on=service.served_on if service else None, method=service.method if service else None,
                           deadline=service.appeal_deadline if service and not final else None,
                           appealed=appeal is not None, waived=r.id in agg.waivers,
                           service_id=service.id if service else None, receipt_id=service.receipt_id if service else None)
    return out


def window_ends(windows: dict[int, Window]) -> date | None:
    """When the case's appeal window ends: the last day any respondent may still appeal; None while a
    respondent's letter is not served (their window has not started)."""
    open_ones = [w for w in windows.values() if not (w.final or w.appealed or w.waived)]
    if any(w.deadline is None for w in open_ones):
        return None
    return max((w.deadline for w in open_ones), default=None)


def refresh_window(session: Session, case: Case) -> None:
    """Set the case's appeal-window end (and deadline, in the appeal window) from the respondents' windows."""
    if case.state not in ("determined", "in_publicity", "appeal_window"):
        return
    ends = window_ends(appeal_windows(session, case))
    case.appeal_window_ends = ends
    if case.state == "appeal_window":
        case.due_date = ends
    case.updated_at = utcnow()
    session.add(case)
    session.flush()


def _served_letter(session: Session, case: Case, letter_id: int) -> tuple[Letter, Window]:
    letter = session.get(Letter, letter_id)
    if letter is None or letter.case_id != case.id or letter.kind != "determination":
        raise NotFound(f"letter {letter_id} is not a determination letter of case {case.number}")
    window = appeal_windows(session, case).get(letter.respondent_id)
    if window is None or window.letter_id != letter.id:
        raise ValidationFailed(f"{letter.doc_number} has been superseded: serve the current version",
                               field="letter_id")
    if window.service_id is not None:
        raise ConflictError(f"{letter.doc_number} was already served on {window.served_on.isoformat()}")
    return letter, window


def record_service(session: Session, case: Case, actor, letter_id: int, method: str, served_on: date, *,
                   served_by: str = "", expected_version: int | None = None, today: date | None = None,
                   action: str = "record_service") -> LetterService:
    """Record that a determination letter was served: how, on which day, by whom (audited). The respondent's
    appeal window runs from that day for the rule set's working days; the 送达回证 is issued.

    Raises PermissionDenied, NotFound, ValidationFailed (an unknown method, a day in the future or before
    the letter was issued), ConflictError (already served, or the case changed since `expected_version`).
    """
    today = today or date.today()
    agg = queries.authorize(session, case, actor, action)
    if case.state not in states.ACTION_STATES[action]:
        raise states.TransitionNotAllowed("letters are served once they are issued and until the case is final",
                                          state=case.state, event=action)
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(f"case {case.number} was changed by someone else; reload the case and try again",
                            state=case.state, version=case.version)
    if method not in SERVICE_METHODS:
        raise ValidationFailed(f"unknown method of service {method!r}; expected one of {', '.join(SERVICE_METHODS)}",
                               field="method")
    lock_case(session, case)
    letter, window = _served_letter(session, case, letter_id)
    if served_on > today:
        raise ValidationFailed("the day of service cannot be in the future", field="served_on")
    if served_on < letter.issued_at.date():
        raise ValidationFailed(f"the letter was issued on {letter.issued_at.date().isoformat()}, after that day",
                               field="served_on")
    rs = agg.procedure
    days = rulesets.time_limit(rs, "appeal_window")
    final = bool(letter.data.get("final"))
    deadline = deadlines.add_working_days(session, served_on, days)
    service = LetterService(letter_id=letter.id, case_id=case.id, respondent_id=letter.respondent_id, method=method,
                            served_on=served_on, served_by=(served_by or "").strip()[:64], window_days=days,
                            appeal_deadline=deadline, recorded_by_id=getattr(actor, "id", None))
    session.add(service)
    session.flush()
    agg.changed("services")
    receipt = _store(session, case, actor, "service_record",
                     service_record_data(session, case, letter, service, final, actor),
                     respondent_id=letter.respondent_id, today=today, correction_reason="重新送达")
    service.receipt_id = receipt.id
    session.add(service)
    session.flush()
    agg.changed("services")
    audit.record(session, event="serve_letter", actor=actor, case_id=case.id,
                 payload={"letter_id": letter.id, "doc_number": letter.doc_number, "respondent_id": letter.respondent_id,
                          "method": method, "served_on": served_on.isoformat(), "served_by": service.served_by,
                          "appeal_deadline": None if final else deadline.isoformat(), "receipt": receipt.doc_number})
    refresh_window(session, case)
    r = agg.respondent(letter.respondent_id)
    if not final:
        notifications.tell(session, [r.user_id], case_id=case.id, kind="letter_served",
                           key=f"served:{service.id}",
                           zh=f"您的认定书 {letter.doc_number} 已于 {served_on.isoformat()} 送达，"
                              f"申诉期限至 {deadline.isoformat()}。",
                           en=f"Your determination letter {letter.doc_number} was served on {served_on.isoformat()}; "
                              f"you may appeal until {deadline.isoformat()}.")
    return service


def acknowledge(session: Session, case: Case, actor, letter_id: int, *, today: date | None = None,
                expected_version: int | None = None) -> LetterService:
    """A respondent acknowledges their letter in the app (签收): its service, in the app, today."""
    today = today or date.today()
    agg = queries.authorize(session, case, actor, "acknowledge")
    letter = session.get(Letter, letter_id)
    mine = agg.respondent_of_user(actor.id)
    if letter is None or mine is None or letter.respondent_id != mine.id:
        raise NotFound(f"letter {letter_id} is not addressed to you")
    return record_service(session, case, actor, letter_id, "in_app", today, served_by=_name(session, actor.id),
                          expected_version=expected_version, today=today, action="acknowledge")


def service_record_data(session: Session, case: Case, letter: Letter, service: LetterService, final: bool,
                        actor=None) -> dict:
    r = session.get(Respondent, letter.respondent_id)
    form = _form(session, case, "service_record", actor, decided_at=service.served_on)
    return {**form, "respondent": _respondent_data(session, r), "served_doc_number": letter.doc_number,
            "served_title": TITLES.get(letter.kind, "尽职免责认定书"), "method": service.method,
            "served_on": service.served_on.isoformat(), "served_by": service.served_by or None,
            "appeal": None if final else {"days": service.window_days, "served_on": service.served_on.isoformat(),
                                           "deadline": service.appeal_deadline.isoformat(),
                                           "body": _appeal_body(session, case)}}


def restate_deadlines(session: Session, case: Case, actor=None, *, today: date | None = None) -> list[LetterService]:
    """After a calendar change: recount every open window from its service; where the deadline moved, record
    it, issue a new version of the 送达回证 stating it and tell the respondent. Returns the services moved."""
    today = today or date.today()
    moved = []
    for w in appeal_windows(session, case).values():
        if w.service_id is None or w.final or not w.open(today):
            continue
        service = session.get(LetterService, w.service_id)
        deadline = deadlines.add_working_days(session, service.served_on, service.window_days)
        if deadline == service.appeal_deadline:
            continue
        before, service.appeal_deadline = service.appeal_deadline, deadline
        session.add(service)
        session.flush()
        queries.aggregate(session, case).changed("services")
        letter = session.get(Letter, service.letter_id)
        receipt = _store(session, case, actor, "service_record",
                         service_record_data(session, case, letter, service, False, actor),
                         respondent_id=letter.respondent_id, today=today, correction_reason="工作日历调整，申诉期限相应变更")
        service.receipt_id = receipt.id
        session.add(service)
        session.flush()
        queries.aggregate(session, case).changed("services")
        audit.record(session, event="appeal_deadline_moved", actor=actor, case_id=case.id,
                     payload={"letter_id": letter.id, "from": before.isoformat(), "to": deadline.isoformat(),
                              "receipt": receipt.doc_number})
        r = session.get(Respondent, letter.respondent_id)
        notifications.tell(session, [r.user_id], case_id=case.id, kind="deadline_moved",
                           key=f"deadline-moved:{service.id}:{deadline.isoformat()}",
                           zh=f"因工作日历调整，您对认定书 {letter.doc_number} 的申诉期限变更为 {deadline.isoformat()}。",
                           en=f"A calendar change moved your appeal deadline for {letter.doc_number} to "
                              f"{deadline.isoformat()}.")
        moved.append(service)
    if moved:
        refresh_window(session, case)
    return moved


# --- batches -------------------------------------------------------------------------------------------------

def pending_for_case(session: Session, case: Case, today: date, actor=None) -> list[PendingLetter]:
    """Numbered, not yet rendered documents a determined case still lacks (the minutes, the determinations,
    the batch report of a batch case)."""
    lock_case(session, case)
    out = []
    wanted = [("minutes", minutes_data(session, case, actor), None)]
    wanted += [("determination", determination_data(session, case, r, today, actor=actor), r.id)
               for r in queries.aggregate(session, case).respondents]
    if case.batch_report:
        wanted.append(("batch_report", batch_report_data(session, case, actor), None))
    for kind, data, respondent_id in wanted:
        p = prepare(session, case, kind, data, respondent_id=respondent_id, today=today,
                    correction_reason=REDETERMINED)
        if isinstance(p, PendingLetter):
            out.append(p)
    return out


def _worker_start() -> None:
    """A rendering process: it ends with its parent (Linux: PR_SET_PDEATHSIG), and loads the fonts once."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown ends the workers
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
    pdf.check_letter_fonts()


def issue_batch(engine, branch_id: int, actor_id: int, *, workers: int = 2, today: date | None = None,
                progress=None, group_letters: int | None = None, pool=None) -> dict:
    """Issue every missing document of the branch's determined cases, rendering in parallel processes.

    Cases are taken in groups of about `group_letters` documents (default: 12 per worker), one transaction
    per group: each document is numbered and handed to the pool as soon as it is prepared, and stored in
    order as its PDF comes back, so the workers stay busy across cases and the numbering of the next case
    overlaps the rendering of the last. A failure rolls the whole group back and gives its numbers back; a
    rerun issues only what is missing (resumable). `progress(n)` is called after each case, once its group
    is stored, with the number of documents it issued. The rendering processes end with their parent.
    `pool`: an executor of rendering processes to use (and leave running) instead of starting `workers` new ones.
    """
    import contextlib
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from ..db import read_session, unit_of_work

    if workers < 1:
        raise ValidationFailed("at least one rendering process is needed", field="workers")
    today = today or date.today()
    group_letters = group_letters or 12 * workers
    with read_session(engine) as s:
        actor = s.get(User, actor_id)
        if actor is None or not has_role(actor.role_set, "committee_chair", "admin"):
            raise PermissionDenied("issuing letters needs the role committee_chair or admin")
        case_ids = list(s.exec(select(Case.id).where(Case.branch_id == branch_id, Case.state == "determined")
                               .order_by(Case.id)))
    issued = skipped = 0
    todo = list(reversed(case_ids))  # popped from the end, in case order
    own = pool is None
    with (ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_start)
          if own else contextlib.nullcontext(pool)) as pool:
        while todo:
            counts: list[int] = []
            rendering = []
            with unit_of_work(engine) as s:
                actor = s.get(User, actor_id)
                try:
                    while todo and len(rendering) < group_letters:
                        case = s.get(Case, todo.pop())
                        queries.authorize(s, case, actor, "issue_letters")
                        pendings = pending_for_case(s, case, today, actor)
                        rendering += [(p, pool.submit(render, p)) for p in pendings]
                        counts.append(len(pendings))
                    for pending, future in rendering:
                        persist(s, pending, future.result(), actor)
                except BaseException:
                    for _, future in rendering:
                        future.cancel()
                    raise
            for n in counts:
                issued += n
                skipped += n == 0
                if progress:
                    progress(n)
    return {"cases": len(case_ids), "letters_issued": issued, "cases_already_complete": skipped}
