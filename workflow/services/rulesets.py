"""Rule-set versions in the database: seeding, the version in force on a date, drafts, publishing.

Drafts live in their own table (`RuleSetDraft`), so nothing that judges a case or a what-if evaluation ever
reads one: only published `RuleSetVersion` rows are versions in force. Every change to a draft is audited in
the caller's transaction. Maker-checker: the author submits a draft with its effective date (a date before
today needs a reason); a second head-office administrator approves it (publishing it through `publish`) or
rejects it with a reason (policy.why_not_review_rule_set keeps the author and the last editor out).
"""

from __future__ import annotations

import hashlib
from datetime import date

from sqlalchemy import bindparam
from sqlmodel import Session, select

from ..chain import canonical
from ..db import rows
from ..domain import policy, rules
from ..domain.errors import ConflictError, NotFound, ValidationFailed
from ..models import Enterprise, RuleSetDraft, RuleSetVersion, utcnow
from . import audit
from .accounts import _policy_actor
from .accounts import _require_head_office_admin as require_head_office_admin


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


_IDENTITY = select(RuleSetVersion.id, RuleSetVersion.version, RuleSetVersion.status, RuleSetVersion.created_at) \
    .where(RuleSetVersion.id == bindparam("id"))
_BY_ID: dict[tuple, rules.RuleSet] = {}
_SESSION_RULES = "mianze.rules"


def parsed_by_id(session: Session, version_id: int) -> rules.RuleSet:
    """The RuleSet of a published version, by id: after the first time, without reading its document.

    A published version is never changed, so what identifies it (id, number, creation time) keys its parsed
    rules; only the identity is read each time, which also tells databases with the same ids apart.
    """
    known = session.info.setdefault(_SESSION_RULES, {})
    if version_id in known:  # read once per unit of work
        return known[version_id]
    ident = rows(session, _IDENTITY, {"id": version_id}).first()
    if ident is None:
        raise NotFound(f"rule-set version {version_id} does not exist")
    return parsed_by_identity(session, ident)


def parsed_by_identity(session: Session, ident) -> rules.RuleSet:
    """The RuleSet of a version whose identity row (id, version, status, created_at) the caller already read."""
    known = session.info.setdefault(_SESSION_RULES, {})
    version_id = ident.id
    if version_id in known:
        return known[version_id]
    key = (ident.id, ident.version, ident.status, ident.created_at)
    rs = _BY_ID.get(key) if ident.status == "published" else None
    if rs is None:
        rs = parsed(session.get(RuleSetVersion, version_id))
        if ident.status == "published":
            _BY_ID[key] = rs
    if ident.status == "published":
        known[version_id] = rs
    return rs


def procedure_rules(session: Session, case) -> rules.RuleSet:
    """The rules that govern a case's procedure: the version in force when it was opened."""
    return parsed_by_id(session, case.rule_set_version_id)


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


def publish(session: Session, actor, data: dict, effective_from: date, note: str = "",
            draft_id: int | None = None) -> RuleSetVersion:
    """Publish a new rule-set version effective from a date (validated first; audited).

    `draft_id` names the draft being published in the audit event (see `publish_draft`).
    """
    rs = rules.parse_rule_set({**data, "effective_from": effective_from.isoformat()})
    last = session.exec(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())).first()
    row = RuleSetVersion(version=(last.version if last else 0) + 1, status="published", effective_from=effective_from,
                         data=rs.model_dump(mode="json"), note=note, created_by_id=actor.id,
                         published_by_id=actor.id, published_at=utcnow())
    session.add(row)
    session.flush()
    payload = {"version": row.version, "label": rs.version, "effective_from": effective_from.isoformat(),
               "note": note}
    if draft_id is not None:
        payload["draft"] = draft_id
    audit.record(session, event="publish_rule_set", actor=actor, payload=payload)
    return row


# --- drafts -------------------------------------------------------------------------------------------------

DRAFT_STATUSES = ("draft", "submitted", "published", "discarded")
NOTE_MAX = 500
# Drafts are checked with this stand-in for the effective date, which is only chosen when publishing.
_ANY_DATE = "2000-01-01"


def draft_document(data: dict) -> dict:
    """A rule-set document as a draft holds it: without `effective_from` (chosen when publishing)."""
    return {k: v for k, v in data.items() if k != "effective_from"}


def check_draft_document(data) -> rules.RuleSet:
    """Validate a draft document with the RuleSet model; ValidationFailed (field "data") says what is wrong."""
    if not isinstance(data, dict):
        raise ValidationFailed("the rule set must be a JSON object", field="data")
    try:
        return rules.parse_rule_set({**draft_document(data), "effective_from": _ANY_DATE})
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, field="data", **{k: v for k, v in exc.details.items()
                                                              if k != "field"}) from None


def _digest(data: dict) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


def _clean_note(note: str | None) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ValidationFailed(f"the note may have at most {NOTE_MAX} characters", field="note", max_length=NOTE_MAX)
    return note


def open_drafts(session: Session) -> list[RuleSetDraft]:
    """The drafts not yet published or discarded (including those awaiting approval), most recently edited first."""
    return list(session.exec(select(RuleSetDraft).where(RuleSetDraft.status.in_(("draft", "submitted")))
                             .order_by(RuleSetDraft.updated_at.desc(), RuleSetDraft.id.desc())))


def get_draft(session: Session, draft_id: int) -> RuleSetDraft:
    row = session.get(RuleSetDraft, draft_id)
    if row is None:
        raise NotFound(f"rule-set draft {draft_id} does not exist")
    return row


def _open_draft(session: Session, draft_id: int, expected_revision: int) -> RuleSetDraft:
    """The draft, locked for this transaction; ConflictError unless it is still a draft as the user saw it."""
    row = session.get(RuleSetDraft, draft_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"rule-set draft {draft_id} does not exist")
    if row.status != "draft":
        raise ConflictError(f"the draft has already been {row.status}")
    if row.revision != expected_revision:
        raise ConflictError("the draft was changed by someone else in the meantime; reload it and try again")
    return row


def create_draft(session: Session, actor, *, based_on: int | None = None, note: str = "") -> RuleSetDraft:
    """A new draft holding the document of version `based_on` (default: the version in force today); audited."""
    require_head_office_admin(session, actor)
    if based_on is None:
        source = version_in_force(session, date.today())
    else:
        source = session.exec(select(RuleSetVersion).where(RuleSetVersion.version == based_on,
                                                           RuleSetVersion.status == "published")).first()
        if source is None:
            raise ValidationFailed(f"rule-set version {based_on} does not exist", field="based_on")
    data = draft_document(source.data)
    now = utcnow()
    row = RuleSetDraft(based_on_id=source.id, data=data, note=_clean_note(note), created_by_id=actor.id,
                       created_at=now, updated_by_id=actor.id, updated_at=now)
    session.add(row)
    session.flush()
    audit.record(session, event="create_rule_set_draft", actor=actor,
                 payload={"draft": row.id, "based_on": source.version, "label": data.get("version"),
                          "sha256": _digest(data), "note": row.note})
    return row


def update_draft(session: Session, actor, draft_id: int, data, note: str | None, *,
                 expected_revision: int, item: dict | None = None) -> RuleSetDraft:
    """Replace a draft's document and note; checked first, so an invalid document saves nothing; audited.

    Raises ValidationFailed (field "data" or "note") and ConflictError (stale revision, draft closed).
    Saving what the draft already holds changes nothing and records nothing.
    """
    require_head_office_admin(session, actor)
    row = _open_draft(session, draft_id, expected_revision)
    check_draft_document(data)
    doc, note = draft_document(data), _clean_note(note)
    old = row.data or {}
    changed = sorted(k for k in set(old) | set(doc) if old.get(k) != doc.get(k))
    if not changed and note == row.note:
        return row
    row.data, row.note, row.updated_by_id, row.updated_at = doc, note, actor.id, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, event="update_rule_set_draft", actor=actor,
                 payload={"draft": row.id, "label": doc.get("version"), "sha256": _digest(doc), "changed": changed,
                          "note": note, **({"item": item} if item else {})})
    return row


# --- the draft's list items, edited one at a time ---------------------------------------------------------

ITEM_LISTS = ("positive", "mitigating", "negative", "duties")
ITEM_TEXT_FIELDS = ("code", "zh", "en", "source", "bank_rule", "note")
_REQUIRED = ("code", "zh", "en", "source")


def _item_error(exc: ValidationFailed, section: str) -> ValidationFailed:
    """The document's check, next to the item field it concerns (when it names one)."""
    for error in exc.details.get("errors") or []:
        parts = str(error.get("field", "")).replace("[", ".").replace("]", "").split(".")
        if section in parts and parts[-1] in (*ITEM_TEXT_FIELDS, "stage", "verified"):
            return ValidationFailed(exc.message, field=parts[-1], errors=exc.details.get("errors"))
    return exc


def save_item(session: Session, actor, draft_id: int, section: str, item: dict, *, original_code: str | None = None,
              expected_revision: int) -> RuleSetDraft:
    """Add an item to one of the draft's lists, or change the item `original_code` (its texts in Chinese and
    English, its citations, whether it was verified); saved through `update_draft` (checked, audited).

    ValidationFailed names the form field ("section", "code", "zh", "en", "source", "stage", ...).
    """
    require_head_office_admin(session, actor)
    if section not in ITEM_LISTS:
        raise ValidationFailed("choose the list the item belongs to", field="section")
    row = _open_draft(session, draft_id, expected_revision)
    clean = {k: str(item.get(k) or "").strip() for k in ITEM_TEXT_FIELDS}
    if section == "duties":
        clean["stage"] = str(item.get("stage") or "").strip()
    for name in (*_REQUIRED, *(("stage",) if section == "duties" else ())):
        if not clean[name]:
            raise ValidationFailed("this field is required", field=name)
    if section == "duties" and clean["stage"] not in {st.get("code") for st in row.data.get("stages") or []}:
        raise ValidationFailed(f"the rule set has no stage {clean['stage']}", field="stage", stage=clean["stage"])
    clean["verified"] = bool(item.get("verified"))
    items = [dict(i) for i in row.data.get(section) or []]
    codes = [i.get("code") for i in items]
    if original_code is None:
        if clean["code"] in codes:
            raise ValidationFailed(f"the code {clean['code']} is already used in this list", field="code",
                                   code=clean["code"])
        items.append(clean)
        action = "added"
    else:
        if original_code not in codes:
            raise ValidationFailed(f"the item {original_code} is not in this list", field="section")
        at = codes.index(original_code)
        if clean["code"] != original_code and clean["code"] in codes:
            raise ValidationFailed(f"the code {clean['code']} is already used in this list", field="code",
                                   code=clean["code"])
        items[at] = {**items[at], **clean}
        action = "changed"
    try:
        return update_draft(session, actor, draft_id, {**row.data, section: items}, row.note,
                            expected_revision=expected_revision,
                            item={"section": section, "code": clean["code"], "action": action})
    except ValidationFailed as exc:
        raise _item_error(exc, section) from None


def retire_item(session: Session, actor, draft_id: int, section: str, code: str, *,
                expected_revision: int) -> RuleSetDraft:
    """Take an item out of one of the draft's lists (the versions already published keep it); checked, audited."""
    require_head_office_admin(session, actor)
    if section not in ITEM_LISTS:
        raise ValidationFailed("choose the list the item belongs to", field="section")
    row = _open_draft(session, draft_id, expected_revision)
    items = [i for i in row.data.get(section) or [] if i.get("code") != code]
    if len(items) == len(row.data.get(section) or []):
        raise ValidationFailed(f"the item {code} is not in this list", field="section")
    return update_draft(session, actor, draft_id, {**row.data, section: items}, row.note,
                        expected_revision=expected_revision, item={"section": section, "code": code,
                                                                   "action": "retired"})


def discard_draft(session: Session, actor, draft_id: int, *, expected_revision: int) -> RuleSetDraft:
    """Discard a draft (it stays as a record, marked discarded); audited."""
    require_head_office_admin(session, actor)
    row = _open_draft(session, draft_id, expected_revision)
    row.status, row.updated_by_id, row.updated_at = "discarded", actor.id, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, event="discard_rule_set_draft", actor=actor,
                 payload={"draft": row.id, "label": row.data.get("version"), "sha256": _digest(row.data)})
    return row


REASON_MAX = 500


def _check_publishable(session: Session, row: RuleSetDraft) -> None:
    """A draft needs a note saying what changed (field "note") and a label no published version uses (field
    "data"), so that versions can be told apart by label."""
    if not row.note.strip():
        raise ValidationFailed("say what changed in this version", field="note")
    label = row.data.get("version")
    for version, data in session.exec(select(RuleSetVersion.version, RuleSetVersion.data)):
        if data.get("version") == label:
            raise ValidationFailed(f"the label {label!r} is already used by version {version}; give the draft a "
                                   "label of its own (the \"version\" field)", field="data", label=label, used_by=version)


def _clean_reason(reason: str | None, field: str) -> str:
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise ValidationFailed(f"the reason may have at most {REASON_MAX} characters", field=field,
                               max_length=REASON_MAX)
    return reason


def submit_draft(session: Session, actor, draft_id: int, effective_from: date, *, reason: str = "",
                 expected_revision: int, today: date | None = None) -> RuleSetDraft:
    """The author's request to publish a draft from a date: the draft waits for a second administrator.

    A date before today needs a stated reason (field "reason"): it changes the rules of stages already past.
    The submitted draft can no longer be edited; approving publishes it, rejecting makes it a draft again.
    """
    require_head_office_admin(session, actor)
    row = _open_draft(session, draft_id, expected_revision)
    _check_publishable(session, row)
    reason = _clean_reason(reason, "reason")
    backdated = effective_from < (today or date.today())
    if backdated and not reason:
        raise ValidationFailed("an effective date before today needs a stated reason", field="reason")
    now = utcnow()
    row.status, row.effective_from, row.backdate_reason = "submitted", effective_from, reason if backdated else ""
    row.submitted_by_id, row.submitted_at, row.rejection_reason = actor.id, now, ""
    row.reviewed_by_id = row.reviewed_at = None
    session.add(row)
    session.flush()
    audit.record(session, event="submit_rule_set_draft", actor=actor,
                 payload={"draft": row.id, "label": row.data.get("version"), "sha256": _digest(row.data),
                          "effective_from": effective_from.isoformat(), "backdated": backdated,
                          "reason": row.backdate_reason})
    return row


def _submitted_draft(session: Session, actor, draft_id: int, expected_revision: int) -> RuleSetDraft:
    """The submitted draft, locked; refused (policy) to its author and last editor."""
    require_head_office_admin(session, actor)
    row = session.get(RuleSetDraft, draft_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"rule-set draft {draft_id} does not exist")
    if row.status != "submitted":
        raise ConflictError("the draft has not been submitted for approval" if row.status == "draft"
                            else f"the draft has already been {row.status}")
    if row.revision != expected_revision:
        raise ConflictError("the draft was changed by someone else in the meantime; reload it and try again")
    policy.require_review_rule_set(_policy_actor(session, actor),
                                   author_ids=(row.created_by_id, row.updated_by_id, row.submitted_by_id))
    return row


def publish_draft(session: Session, actor, draft_id: int, *, expected_revision: int,
                  today: date | None = None) -> RuleSetVersion:
    """A second head-office administrator approves a submitted draft: it is published through `publish` as
    the next version, from the date its author asked for; the approval and the publication are audited
    in this transaction.

    The author, the last editor and the submitter are refused (policy.why_not_review_rule_set). A date that
    has passed since the submission needs the author's reason too: without one the draft must be rejected.
    """
    row = _submitted_draft(session, actor, draft_id, expected_revision)
    _check_publishable(session, row)
    effective_from = row.effective_from
    if effective_from < (today or date.today()) and not row.backdate_reason:
        raise ValidationFailed("an effective date before today needs a stated reason", field="reason")
    now = utcnow()
    audit.record(session, event="approve_rule_set_draft", actor=actor,
                 payload={"draft": row.id, "label": row.data.get("version"), "sha256": _digest(row.data),
                          "effective_from": effective_from.isoformat(), "requested_by": row.submitted_by_id,
                          "approved_by": actor.id, "reason": row.backdate_reason})
    published = publish(session, actor, row.data, effective_from, row.note, draft_id=row.id)
    published.created_by_id = row.submitted_by_id
    row.status, row.published_version_id = "published", published.id
    row.reviewed_by_id, row.reviewed_at = actor.id, now
    session.add_all([row, published])
    session.flush()
    return published


def reject_draft(session: Session, actor, draft_id: int, reason: str, *, expected_revision: int) -> RuleSetDraft:
    """A second head-office administrator sends a submitted draft back with a reason: it is a draft again."""
    row = _submitted_draft(session, actor, draft_id, expected_revision)
    reason = _clean_reason(reason, "rejection_reason")
    if not reason:
        raise ValidationFailed("say why the draft is rejected", field="rejection_reason")
    row.status, row.rejection_reason = "draft", reason
    row.reviewed_by_id, row.reviewed_at = actor.id, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, event="reject_rule_set_draft", actor=actor,
                 payload={"draft": row.id, "label": row.data.get("version"), "sha256": _digest(row.data),
                          "requested_by": row.submitted_by_id, "reason": reason})
    return row


# --- the difference between a draft and the version in force ------------------------------------------------

ITEM_SECTIONS = ("stages", "positive", "mitigating", "negative", "duties", "steps")


def _flat(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def diff_documents(old: dict, new: dict) -> list[dict]:
    """What a draft changes against a version, field by field, in document order.

    Items of the lists (by code) are "added", "changed" or "retired"; the other sections' settings are
    "changed" (or added / removed). Each entry: section, code (None for a setting), kind, the item's Chinese
    and English texts, and fields as (name, old value, new value).
    """
    out: list[dict] = []
    old, new = draft_document(old or {}), draft_document(new or {})
    for section in [k for k in new if k in old] + [k for k in new if k not in old] + [k for k in old if k not in new]:
        before, after = old.get(section), new.get(section)
        if before == after:
            continue
        if section in ITEM_SECTIONS and isinstance(before or [], list) and isinstance(after or [], list):
            was = {i.get("code"): i for i in before or [] if isinstance(i, dict)}
            now = {i.get("code"): i for i in after or [] if isinstance(i, dict)}
            for code in [c for c in now] + [c for c in was if c not in now]:
                a, b = was.get(code), now.get(code)
                if a == b:
                    continue
                item = b or a
                kind = "added" if a is None else "retired" if b is None else "changed"
                fa, fb = _flat(a or {}), _flat(b or {})
                fields = [(f, fa.get(f), fb.get(f)) for f in [*fb, *(f for f in fa if f not in fb)]
                          if fa.get(f) != fb.get(f) and f != "code"]
                out.append({"section": section, "code": code, "kind": kind, "zh": item.get("zh", ""),
                            "en": item.get("en", ""), "fields": fields})
            continue
        fa, fb = _flat(before if before is not None else {}, section), _flat(after if after is not None else {},
                                                                            section)
        fields = [(f, fa.get(f), fb.get(f)) for f in [*fb, *(f for f in fa if f not in fb)] if fa.get(f) != fb.get(f)]
        out.append({"section": section, "code": None, "kind": "changed", "zh": "", "en": "", "fields": fields})
    return out
