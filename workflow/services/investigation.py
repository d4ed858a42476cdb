"""Investigation: facts per respondent, loan and stage, and the evidence behind them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlmodel import Session, select

from ..domain import states
from ..domain.errors import NotFound, ValidationFailed
from ..models import Evidence, LoanStage, Respondent, StageFact, utcnow
from . import audit, rulesets

FACT_STATES = states.FACT_STATES
ALLOWED_TYPES = {
    "application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "text/plain": ".txt",
}
MAGIC = {"application/pdf": b"%PDF", "image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document": b"PK",
         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": b"PK"}


def record_facts(session: Session, case, actor, respondent_id: int, loan_id: int, stage: str, facts: dict, *,
                 expected_version: int | None = None) -> StageFact:
    """Record (or replace) the facts of one respondent for one stage of one loan.

    `facts` holds the checklists (list items, unperformed duties, violation, dissent) and the written
    findings (查明事实: `findings`, plain paragraphs, with `findings_evidence`, the evidence they refer to);
    a stage counts as recorded only with its findings (the investigation report and the letters print them).
    The facts are judged against the rule-set version in force on the stage's date.
    Raises ValidationFailed for unknown codes, evidence of another case, or a stage the person did not hold.
    """
    from . import cases
    cases.authorize(session, case, actor, "facts")
    if case.state not in FACT_STATES:
        raise states.TransitionNotAllowed("facts can only be recorded while the case is investigated: once it "
                                          "is submitted they change only after a return for investigation",
                                          state=case.state, event="record_facts")
    respondent = session.get(Respondent, respondent_id)
    if respondent is None or respondent.case_id != case.id:
        raise NotFound(f"respondent {respondent_id} is not part of case {case.number}")
    assignment = session.exec(select(LoanStage).where(LoanStage.loan_id == loan_id, LoanStage.stage == stage,
                                                      LoanStage.user_id == respondent.user_id)).first()
    if assignment is None or loan_id not in {lo.id for lo in cases.case_loans(session, case.id)}:
        raise ValidationFailed(f"the respondent did not hold stage '{stage}' of loan {loan_id} in this case",
                               field="stage")
    version = rulesets.version_in_force(session, assignment.performed_on)
    clean = rulesets.validate_stage_facts(rulesets.parsed(version), stage, facts)
    evidence_ids = {e for u in clean["unperformed"] for e in (u.get("evidence") or [])}
    evidence_ids |= {e for ids in clean.get("evidence", {}).values() for e in ids}
    evidence_ids |= set(clean.get("findings_evidence") or [])
    if evidence_ids:
        known = {e.id for e in session.exec(select(Evidence).where(Evidence.case_id == case.id,
                                                                   Evidence.id.in_(evidence_ids)))}
        if evidence_ids - known:
            raise ValidationFailed(f"evidence {sorted(evidence_ids - known)} does not belong to this case",
                                   field="evidence")
    cases._touch(session, case, expected_version)
    row = session.exec(select(StageFact).where(StageFact.respondent_id == respondent_id,
                                               StageFact.loan_id == loan_id, StageFact.stage == stage)).first()
    if row is None:
        row = StageFact(respondent_id=respondent_id, loan_id=loan_id, stage=stage, facts=clean,
                        rule_set_version_id=version.id, recorded_by_id=actor.id)
    else:
        row.facts, row.rule_set_version_id, row.recorded_by_id, row.recorded_at = clean, version.id, actor.id, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, event="record_facts", actor=actor, case_id=case.id,
                 payload={"respondent_id": respondent_id, "loan_id": loan_id, "stage": stage, "facts": clean,
                          "rule_set_version": version.version})
    return row


def add_evidence(session: Session, case, actor, *, filename: str, content_type: str, data: bytes,
                 storage_dir: str, description: str = "", respondent_id: int | None = None,
                 appeal_id: int | None = None, kind: str = "document", max_bytes: int = 20 * 1024 * 1024) -> Evidence:
    """Store an evidence file (type and size checked, stored by its SHA-256) and record it (audited).

    The file is written before the row; an orphaned file after a rollback is harmless (content-addressed).
    Raises PermissionDenied unless the actor is the case's investigator or one of its respondents.
    """
    from . import cases

    cases.authorize(session, case, actor, "evidence")
    if content_type not in ALLOWED_TYPES:
        raise ValidationFailed(f"file type {content_type or 'unknown'} is not accepted; use PDF, JPEG, PNG, DOCX, "
                               "XLSX or plain text", field="file")
    if not data:
        raise ValidationFailed("the file is empty", field="file")
    if len(data) > max_bytes:
        raise ValidationFailed(f"the file is larger than {max_bytes // (1024 * 1024)} MB", field="file")
    magic = MAGIC.get(content_type)
    if magic and not data.startswith(magic):
        raise ValidationFailed("the file's content does not match its type", field="file")
    digest = hashlib.sha256(data).hexdigest()
    path = Path(storage_dir) / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    ev = Evidence(case_id=case.id, respondent_id=respondent_id, appeal_id=appeal_id, kind=kind,
                  filename=Path(filename).name[:255] or "evidence", content_type=content_type, size=len(data),
                  sha256=digest, description=description[:500], uploaded_by_id=actor.id)
    session.add(ev)
    session.flush()
    audit.record(session, event="add_evidence", actor=actor, case_id=case.id,
                 payload={"evidence_id": ev.id, "filename": ev.filename, "sha256": digest, "size": ev.size,
                          "respondent_id": respondent_id, "appeal_id": appeal_id})
    return ev


def evidence_path(storage_dir: str, ev: Evidence) -> Path:
    return Path(storage_dir) / ev.sha256[:2] / ev.sha256


# The kinds of file a browser shows inline, by the signature their content starts with (never by the name or
# the type the uploader's browser declared): PDF and the two common image formats. Everything else is only
# downloaded.
PREVIEW_SIGNATURES = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                      (b"\xff\xd8\xff", "image/jpeg"))
PREVIEW_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg")


def preview_type(head: bytes) -> str | None:
    """The content type to show a file inline with, from its first bytes, or None (download only)."""
    return next((kind for signature, kind in PREVIEW_SIGNATURES if head.startswith(signature)), None)


def may_preview(ev: Evidence) -> bool:
    """Whether a preview is worth offering for the evidence (its name says PDF, PNG or JPEG; the preview
    itself goes by the content: `preview_type`)."""
    return ev.filename.lower().endswith(PREVIEW_EXTENSIONS)
