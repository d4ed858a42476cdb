"""The form of the bank's documents: its full name, each organ's name and short form, 抄送, 印发, 签发人.

Set by a head-office administrator in the app (`save_form`, `save_organ`; audited) and read by the letters
when they are issued or previewed. Until an organ is configured, its names are derived from its branch's
name (郑州分行 → 郑分, 郑州分行尽职免责评议委员会), so a fresh installation issues well-formed documents.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from ..domain.errors import NotFound, ValidationFailed
from ..models import Branch, DocumentForm, DocumentOrgan, utcnow
from . import audit
from .accounts import _require_head_office_admin

DEFAULT_BANK_NAME = "示范商业银行"
DEFAULT_CC = ("人力资源部", "合规部")
_SEPARATORS = ("、", ",", "，", ";", "；", "\n")
_FORM = "mianze.document_form"


@dataclass(frozen=True)
class Form:
    """The bank-wide part of the form."""

    bank_name: str
    cc: tuple[str, ...]
    configured: bool


@dataclass(frozen=True)
class Organ:
    """How one branch's organs sign and number their documents."""

    branch_id: int
    branch_name: str
    short_name: str
    committee_name: str
    appeal_committee_name: str
    signatory: str
    printed_by: str
    configured: bool
    branch_name_en: str = ""


def split_list(text: str) -> tuple[str, ...]:
    """'人力资源部、合规部' → ('人力资源部', '合规部') (also commas, semicolons or one per line)."""
    for sep in _SEPARATORS[1:]:
        text = text.replace(sep, _SEPARATORS[0])
    return tuple(dict.fromkeys(p.strip() for p in text.split(_SEPARATORS[0]) if p.strip()))


def form(session: Session) -> Form:
    """The bank-wide form (read once per unit of work)."""
    known = session.info.get(_FORM)
    if known is None:
        row = session.get(DocumentForm, 1)
        known = session.info[_FORM] = (Form(row.bank_name, split_list(row.cc), True) if row is not None
                                       else Form(DEFAULT_BANK_NAME, DEFAULT_CC, False))
    return known


def default_short_name(branch: Branch) -> str:
    """The short form of a branch for document numbers: 郑州分行 → 郑分, 总行 → 总行, otherwise its name."""
    name = branch.name
    if name.endswith("分行") and len(name) > 2:
        return name[0] + "分"
    return name


def organ(session: Session, branch: Branch) -> Organ:
    """The organ of a branch as configured, or derived from its name."""
    row = session.get(DocumentOrgan, branch.id)
    if row is not None:
        return Organ(branch.id, branch.name, row.short_name, row.committee_name, row.appeal_committee_name,
                     row.signatory, row.printed_by or f"{branch.name}办公室", True, branch.name_en or branch.name)
    return Organ(branch.id, branch.name, default_short_name(branch), f"{branch.name}尽职免责评议委员会",
                 f"{branch.name}尽职免责申诉复核委员会", "", f"{branch.name}办公室", False,
                 branch.name_en or branch.name)


def _text(value: str, field: str, max_length: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed(f"{field} is required", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{field} is longer than {max_length} characters", field=field)
    return value


def save_form(session: Session, actor, *, bank_name: str, cc: str) -> DocumentForm:
    """Set the bank's full name and the default 抄送 list (head-office administrators; audited)."""
    _require_head_office_admin(session, actor)
    row = session.get(DocumentForm, 1) or DocumentForm(id=1, bank_name="")
    row.bank_name = _text(bank_name, "bank_name", 128)
    row.cc = "、".join(split_list(_text(cc, "cc", 255, required=False)))
    row.updated_by_id, row.updated_at = actor.id, utcnow()
    session.add(row)
    session.flush()
    session.info.pop(_FORM, None)
    audit.record(session, event="document_form", actor=actor, payload={"bank_name": row.bank_name, "cc": row.cc})
    return row


def save_organ(session: Session, actor, branch_id: int, *, short_name: str, committee_name: str,
               appeal_committee_name: str, signatory: str = "", printed_by: str = "") -> DocumentOrgan:
    """Set how a branch's organs sign and number documents (head-office administrators; audited).

    Raises ValidationFailed for a blank name or short form, or a short form another branch uses (two
    organs must never issue the same number).
    """
    _require_head_office_admin(session, actor)
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotFound(f"branch {branch_id} does not exist")
    short = _text(short_name, "short_name", 16)
    for other in session.exec(select(DocumentOrgan).where(DocumentOrgan.branch_id != branch_id,
                                                          DocumentOrgan.short_name == short)):
        raise ValidationFailed(f"the short form {short} is used by another branch ({other.branch_id})",
                               field="short_name")
    row = session.get(DocumentOrgan, branch_id) or DocumentOrgan(branch_id=branch_id, short_name="",
                                                                 committee_name="", appeal_committee_name="")
    row.short_name = short
    row.committee_name = _text(committee_name, "committee_name", 128)
    row.appeal_committee_name = _text(appeal_committee_name, "appeal_committee_name", 128)
    row.signatory = _text(signatory, "signatory", 64, required=False)
    row.printed_by = _text(printed_by, "printed_by", 128, required=False)
    row.updated_by_id, row.updated_at = actor.id, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, event="document_organ", actor=actor,
                 payload={"branch": branch.code, "short_name": row.short_name, "committee_name": row.committee_name,
                          "appeal_committee_name": row.appeal_committee_name, "signatory": row.signatory,
                          "printed_by": row.printed_by})
    return row


def organs(session: Session) -> list[Organ]:
    """The organs of head office and the tier-1 branches (those that issue documents), configured or not."""
    return [organ(session, b) for b in session.exec(select(Branch).where(Branch.level <= 1).order_by(Branch.path))]
