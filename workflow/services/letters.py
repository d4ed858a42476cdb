"""Issuing letters: numbered per branch and year without gaps, stored once, corrected by new versions.

Letters are rendered from plain dicts built here (never from ORM objects) by `workflow.pdf`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from .. import pdf
from ..domain.errors import NotFound, PermissionDenied, ValidationFailed
from ..domain.policy import has_role
from ..models import (
    Appeal,
    Branch,
    Case,
    DocSequence,
    Enterprise,
    Evidence,
    Letter,
    LoanStage,
    Respondent,
    User,
    utcnow,
)
from . import audit, deadlines, queries, rulesets

BANK_NAME = os.environ.get("MIANZE_BANK_NAME", "示范商业银行")


def next_number(session: Session, branch: Branch, year: int) -> tuple[int, str]:
    """The next document number of a branch and year.

    Gap-free and never repeated: the counter row is locked for the rest of the issuing transaction, so a
    rolled-back issue gives its number back and two concurrent issuers queue.
    """
    query = (select(DocSequence).where(DocSequence.branch_id == branch.id, DocSequence.year == year)
             .with_for_update().execution_options(populate_existing=True))
    seq_row = session.exec(query).first()
    if seq_row is None:
        try:
            with session.begin_nested():
                session.add(DocSequence(branch_id=branch.id, year=year, last_seq=0))
        except IntegrityError:
            pass  # a concurrent issuer created it first; lock theirs below
        seq_row = session.exec(query).one()
    seq_row.last_seq += 1
    session.add(seq_row)
    session.flush()
    return seq_row.last_seq, f"{branch.code}免认〔{year}〕{seq_row.last_seq}号"


def _latest(session: Session, kind: str, case_id: int, respondent_id: int | None, appeal_id: int | None):
    return session.exec(select(Letter).where(Letter.kind == kind, Letter.case_id == case_id,
                                             Letter.respondent_id == respondent_id, Letter.appeal_id == appeal_id)
                        .order_by(Letter.version.desc())).first()


# Keys that differ between two issues of the same letter without changing what it decides: numbering, the
# issue date, and the appeal deadline (counted from the issue date).
_UNNUMBERED = ("doc_number", "issued_at", "version", "supersedes", "appeal")


@dataclass
class PendingLetter:
    """A letter numbered and ready to render; persisted with `persist` in the same transaction."""

    kind: str
    case_id: int
    respondent_id: int | None
    appeal_id: int | None
    branch_id: int
    year: int
    seq: int
    data: dict
    locale: str
    supersedes_id: int | None
    correction_reason: str | None


def prepare(session: Session, case: Case, kind: str, data: dict, *, respondent_id=None, appeal_id=None,
            locale: str = "zh", today: date | None = None,
            correction_reason: str | None = None) -> Letter | PendingLetter:
    """The stored letter when the same content was issued already; otherwise a numbered PendingLetter.

    Without a correction reason an existing letter is never replaced (issuing is idempotent); with one, a
    new version that names the one it supersedes is prepared.
    """
    today = today or date.today()
    latest = _latest(session, kind, case.id, respondent_id, appeal_id)
    if latest is not None:
        same = {k: v for k, v in latest.data.items() if k not in _UNNUMBERED}
        new = {k: v for k, v in data.items() if k not in _UNNUMBERED}
        if same == new or correction_reason is None:
            return latest
    branch = session.get(Branch, case.branch_id)
    seq, number = next_number(session, branch, today.year)
    data = {**data, "doc_number": number, "issued_at": today.isoformat(),
            "version": (latest.version + 1) if latest else 1,
            "supersedes": latest.doc_number if latest else None}
    return PendingLetter(kind=kind, case_id=case.id, respondent_id=respondent_id, appeal_id=appeal_id,
                         branch_id=branch.id, year=today.year, seq=seq, data=data, locale=locale,
                         supersedes_id=latest.id if latest else None, correction_reason=correction_reason)


def render(pending: PendingLetter) -> pdf.RenderedLetter:
    """Render a pending letter (pure: safe to run in another process)."""
    return pdf.render_letter(pending.kind, pending.data, pending.locale)


def persist(session: Session, pending: PendingLetter, rendered: pdf.RenderedLetter, actor) -> Letter:
    """Store a rendered letter once, with its template, data and SHA-256, and audit the issue."""
    letter = Letter(kind=pending.kind, case_id=pending.case_id, respondent_id=pending.respondent_id,
                    appeal_id=pending.appeal_id, branch_id=pending.branch_id, year=pending.year, seq=pending.seq,
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
    return letter


def _store(session: Session, case: Case, actor, kind: str, data: dict, **kw) -> Letter:
    """Prepare, render and persist one letter in the caller's transaction."""
    pending = prepare(session, case, kind, data, **kw)
    if isinstance(pending, Letter):
        return pending
    return persist(session, pending, render(pending), actor)


def _money(value: Decimal) -> str:
    return str(value)


def _respondent_data(session: Session, r: Respondent) -> dict:
    user = session.get(User, r.user_id)
    branch = session.get(Branch, user.branch_id)
    return {"name": user.name, "employee_no": user.employee_no, "branch": branch.name}


def _loans_data(session: Session, case: Case) -> list[dict]:
    enterprise = session.get(Enterprise, case.enterprise_id)
    return [{"loan_no": lo.loan_no, "enterprise": enterprise.name, "amount": _money(lo.amount),
             "balance": _money(lo.balance)} for lo in queries.case_loans(session, case.id)]


def _stages_of(session: Session, case: Case, r: Respondent) -> list[str]:
    loan_ids = [lo.id for lo in queries.case_loans(session, case.id)]
    rows = session.exec(select(LoanStage.stage).where(LoanStage.user_id == r.user_id,
                                                      LoanStage.loan_id.in_(loan_ids))).all()
    order = ("marketing", "acceptance", "pre_loan", "review", "approval", "disbursement", "post_loan")
    return sorted(set(rows), key=order.index)


def fired_reasons(recommendation: dict | None) -> list[dict]:
    """The rules that fired in a recommendation: for each stage, its deciding step and the items it names."""
    out, seen = [], set()
    for stage in (recommendation or {}).get("stages", []):
        for entry in stage.get("explanation", []):
            if not entry.get("fired"):
                continue
            items = entry.get("items") or []
            for item in items:
                if item["code"] not in seen:
                    seen.add(item["code"])
                    out.append({"code": item["code"], "text": item["zh"], "source": item["source"]})
            if not items and entry["rule"] not in seen:
                seen.add(entry["rule"])
                out.append({"code": entry["rule"], "text": entry["text"]["zh"], "source": entry["source"]})
    return out


def tolerance_data(case: Case) -> dict | None:
    t = case.tolerance
    if not t:
        return None
    return {"branch": t.get("branch_name") or t.get("branch"), "period": t["period"], "sme_ratio": t.get("sme_ratio"),
            "all_ratio": t.get("all_ratio"), "gap_pp": t.get("gap_pp"), "within": t["within"]}


def _appeal_body(session: Session, case: Case) -> str:
    branch = session.get(Branch, case.branch_id)
    parent = session.get(Branch, branch.parent_id) if branch.parent_id else branch
    return f"{parent.name}尽职免责申诉复核委员会"


def determination_data(session: Session, case: Case, r: Respondent, today: date, outcome: str | None = None) -> dict:
    """The plain data of one respondent's determination letter."""
    rs = rulesets.procedure_rules(session, case)
    branch = session.get(Branch, case.branch_id)
    outcome = outcome or r.decided_outcome
    if outcome is None:
        raise ValidationFailed("the respondent has no decided outcome yet")
    publicity_ends = deadlines.add_working_days(session, today, rulesets.time_limit(rs, "publicity"))
    deadline = deadlines.add_working_days(session, publicity_ends, rulesets.time_limit(rs, "appeal_window"))
    deviation = None
    if r.decided_outcome and r.recommended_outcome and r.decided_outcome != r.recommended_outcome:
        deviation = {"recommended": r.recommended_outcome, "decided": r.decided_outcome,
                     "reason": r.deviation_reason or ""}
    return {
        "bank": BANK_NAME, "branch": branch.name, "case_no": case.number,
        "committee": {"name": f"{branch.name}尽职免责评议委员会",
                      "decided_at": (case.determined_at or utcnow()).date().isoformat()},
        "respondent": _respondent_data(session, r),
        "loans": _loans_data(session, case),
        "stages": _stages_of(session, case, r),
        "outcome": outcome,
        "liability_kind": r.liability_kind,
        "sanctions": [rs.sanctions[outcome].zh],
        "reasons": fired_reasons(r.recommendation),
        "tolerance": tolerance_data(case),
        "deviation": deviation if outcome == r.decided_outcome else None,
        "appeal": {"deadline": deadline.isoformat(), "body": _appeal_body(session, case),
                   "channel": "Mianze 申诉平台或书面提交"},
    }


def issue_determination_letters(session: Session, case: Case, actor, *, today: date | None = None) -> list[Letter]:
    """Issue every respondent's determination letter, and the shared report of a batch case.

    Idempotent: a rerun issues only what is missing.
    """
    today = today or date.today()
    queries.authorize(session, case, actor, "issue_letters")
    if case.state != "determined":
        raise ValidationFailed("determination letters are issued once the case is determined")
    # After a reopening the committee may decide differently: a changed letter is issued as a new version
    # naming the one it supersedes; an unchanged one is returned as stored.
    out = [_store(session, case, actor, "determination", determination_data(session, case, r, today),
                  respondent_id=r.id, today=today, correction_reason="重新认定 / re-determined")
           for r in queries.respondents_of(session, case.id)]
    if case.batch_report:
        issue_case_summary(session, case, actor, today=today)
    return out


def correct_letter(session: Session, letter_id: int, actor, reason: str, *, today: date | None = None) -> Letter:
    """Issue a corrected version of a determination letter that names the one it supersedes."""
    today = today or date.today()
    old = session.get(Letter, letter_id)
    if old is None:
        raise NotFound(f"letter {letter_id} does not exist")
    if not (reason or "").strip():
        raise ValidationFailed("a correction needs a reason", field="reason")
    case = session.get(Case, old.case_id)
    r = session.get(Respondent, old.respondent_id)
    data = determination_data(session, case, r, today, outcome=r.final_outcome or r.decided_outcome)
    return _store(session, case, actor, old.kind, {**data, "correction": reason.strip()}, respondent_id=r.id,
                  today=today, correction_reason=reason.strip())


def issue_appeal_record(session: Session, case: Case, appeal: Appeal, actor, *, today: date | None = None) -> Letter:
    """The record of an appeal as received (what was appealed, when, grounds, evidence list)."""
    today = today or date.today()
    r = session.get(Respondent, appeal.respondent_id)
    determination = _latest(session, "determination", case.id, r.id, None)
    evidence = session.exec(select(Evidence).where(Evidence.appeal_id == appeal.id)).all()
    data = {"bank": BANK_NAME, "branch": session.get(Branch, case.branch_id).name, "case_no": case.number,
            "committee": {"name": _appeal_body(session, case)},
            "respondent": _respondent_data(session, r),
            "appealed_doc_number": determination.doc_number if determination else "—",
            "appealed_outcome": appeal.appealed_outcome, "filed_at": appeal.filed_at.date().isoformat(),
            "grounds": appeal.grounds, "evidence": [f"{e.filename} (SHA-256 {e.sha256[:12]}…)" for e in evidence]}
    return _store(session, case, actor, "appeal_record", data, respondent_id=r.id, appeal_id=appeal.id, today=today)


def issue_appeal_decision(session: Session, case: Case, appeal: Appeal, actor, *,
                          today: date | None = None) -> Letter:
    """The appeal committee's decision letter."""
    today = today or date.today()
    if appeal.decision is None:
        raise ValidationFailed("the appeal has not been decided yet")
    r = session.get(Respondent, appeal.respondent_id)
    determination = _latest(session, "determination", case.id, r.id, None)
    reviewer = session.get(User, appeal.decided_by_id)
    data = {"bank": BANK_NAME, "branch": session.get(Branch, case.branch_id).name, "case_no": case.number,
            "committee": {"name": _appeal_body(session, case), "decided_at": appeal.decided_at.date().isoformat()},
            "respondent": _respondent_data(session, r),
            "appealed_doc_number": determination.doc_number if determination else "—",
            "appealed_outcome": appeal.appealed_outcome, "decision": appeal.decision,
            "new_outcome": appeal.new_outcome, "liability_kind": r.liability_kind,
            "filed_at": appeal.filed_at.date().isoformat(),
            "reasons": [{"text": appeal.decision_reason}], "reviewers": [reviewer.name]}
    return _store(session, case, actor, "appeal_decision", data, respondent_id=r.id, appeal_id=appeal.id, today=today)


def case_summary_data(session: Session, case: Case) -> dict:
    """The plain data of a case summary for the file (also the shared report of a batch case)."""
    branch = session.get(Branch, case.branch_id)
    enterprise = session.get(Enterprise, case.enterprise_id)
    respondents = []
    for r in queries.respondents_of(session, case.id):
        outcome = r.final_outcome or r.decided_outcome
        if outcome is None:
            raise ValidationFailed("a case summary needs every respondent's outcome")
        letter = _latest(session, "determination", case.id, r.id, None)
        respondents.append({**_respondent_data(session, r), "stages": _stages_of(session, case, r),
                            "outcome": outcome, "liability_kind": r.liability_kind,
                            "doc_number": letter.doc_number if letter else None})
    events = [{"at": e.at[:10], "text": e.event if not e.to_state else f"{e.event} → {e.to_state}"}
              for e in queries.audit_events(session, case.id) if e.from_state or e.event == "open_case"]
    return {"bank": BANK_NAME, "branch": branch.name, "case_no": case.number,
            "committee": {"name": f"{branch.name}尽职免责评议委员会",
                          "decided_at": (case.determined_at or utcnow()).date().isoformat()},
            "enterprise": enterprise.name, "loans": _loans_data(session, case), "respondents": respondents,
            "tolerance": tolerance_data(case), "events": events}


def issue_case_summary(session: Session, case: Case, actor, *, today: date | None = None) -> Letter:
    """Issue the case summary (idempotent while the content is unchanged)."""
    return _store(session, case, actor, "case_summary", case_summary_data(session, case), today=today)


def pending_for_case(session: Session, case: Case, today: date) -> list[PendingLetter]:
    """Numbered, not yet rendered letters a determined case still lacks (determinations; summary if batch)."""
    out = []
    for r in queries.respondents_of(session, case.id):
        p = prepare(session, case, "determination", determination_data(session, case, r, today),
                    respondent_id=r.id, today=today)
        if isinstance(p, PendingLetter):
            out.append(p)
    if case.batch_report:
        p = prepare(session, case, "case_summary", case_summary_data(session, case), today=today)
        if isinstance(p, PendingLetter):
            out.append(p)
    return out


def issue_batch(engine, branch_id: int, actor_id: int, *, workers: int = 2, today: date | None = None,
                progress=None, group_letters: int | None = None) -> dict:
    """Issue every missing letter of the branch's determined cases, rendering in parallel processes.

    Cases are taken in groups of about `group_letters` letters (default: 12 per worker), one transaction per
    group: each letter is numbered and handed to the pool as soon as it is prepared, and stored in order as
    its PDF comes back, so the workers stay busy across cases (one case's few letters would leave a worker
    idle) and the numbering of the next case overlaps the rendering of the last. A failure rolls the whole
    group back and gives its numbers back; a rerun issues only what is missing (resumable).
    `progress(n)` is called after each case, once its group is stored, with the number of letters it issued.
    """
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
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        while todo:
            counts: list[int] = []
            rendering = []
            with unit_of_work(engine) as s:
                actor = s.get(User, actor_id)
                try:
                    while todo and len(rendering) < group_letters:
                        pendings = pending_for_case(s, s.get(Case, todo.pop()), today)
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
