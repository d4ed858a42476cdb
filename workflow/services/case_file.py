"""The case file (案件卷宗): one PDF to print and keep — a cover with the case's particulars and contents,
every current document of the case as it was issued, the case's audit trail and its evidence list.

The cover, the trail and the evidence list are printed with the letters' stylesheet and faces (Chinese,
no internal codes); the documents are the stored PDFs appended unchanged (pypdf), so the file shows what was
served. Their electronic signatures are verified on the originals (each downloadable from the case page):
a signature covers one document, not a file that binds several.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from sqlmodel import Session, select

from .. import pdf
from ..domain import policy, states
from ..models import Case, Evidence, Letter, User
from . import access_log, audit, document_form, queries

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "case_file"
SHANGHAI = ZoneInfo("Asia/Shanghai")
KIND_ORDER = ("investigation_report", "batch_report", "minutes", "determination", "service_record",
              "publicity_notice", "appeal_record", "appeal_decision", "case_summary", "referral")
EVIDENCE_KIND_ZH = {"document": "书证材料", "investigation": "调查材料", "statement": "陈述附件", "appeal": "申诉附件"}
TRAIL_NOTE_FIELDS = ("reason", "message", "note", "grounds", "statement")  # texts people wrote, shown in the trail


def _local(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def current_documents(session: Session, case: Case) -> list[Letter]:
    """The current version of every document of the case, in the order of the procedure."""
    rows = session.exec(select(Letter).where(Letter.case_id == case.id).order_by(Letter.id)).all()
    latest: dict[str, Letter] = {}
    for lt in rows:
        if lt.subject_key not in latest or lt.version > latest[lt.subject_key].version:
            latest[lt.subject_key] = lt
    order = {k: n for n, k in enumerate(KIND_ORDER)}
    return sorted(latest.values(), key=lambda lt: (order.get(lt.kind, len(order)), lt.issued_at, lt.id))


def case_file_data(session: Session, case: Case) -> dict:
    """Everything the cover, the trail and the evidence list print, every text in Chinese."""
    labels = pdf.templates.labels("zh")
    agg = queries.aggregate(session, case)
    events = list(audit.iter_events(session, case_id=case.id))
    items = session.exec(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)).all()
    people = ({r.user_id for r in agg.respondents} | {ev["actor_id"] for ev in events}
              | {e.uploaded_by_id for e in items}) - {None}
    names = dict(session.exec(select(User.id, User.name).where(User.id.in_(people))).all()) if people else {}
    docs = current_documents(session, case)
    respondents = [{"name": names.get(r.user_id, "—"),
                    "outcome": labels["outcome"].get(r.final_outcome or r.decided_outcome or "", "尚未认定")}
                   for r in agg.respondents]
    trail = []
    for ev in events:
        payload = ev["payload"] if isinstance(ev["payload"], dict) else {}
        note = next((str(payload[k]) for k in TRAIL_NOTE_FIELDS if isinstance(payload.get(k), str) and payload[k]), "")
        moved = ""
        if ev["from_state"] and ev["to_state"] and ev["from_state"] != ev["to_state"]:
            moved = f"{states.STATE_LABELS[ev['from_state']]['zh']} → {states.STATE_LABELS[ev['to_state']]['zh']}"
        trail.append({"seq": ev["seq"], "at": _local(ev["at"]) if isinstance(ev["at"], datetime) else str(ev["at"]),
                      "who": names.get(ev["actor_id"], "系统") if ev["actor_id"] else "系统",
                      "what": labels["event"].get(ev["event"], "办理事项"), "moved": moved, "note": note[:300]})
    evidence = [{"n": n, "name": Path(e.filename).stem, "description": e.description or "—",
                 "kind": EVIDENCE_KIND_ZH.get(e.kind, "其他材料"), "size": f"{max(e.size, 1) / 1024:,.1f} KB",
                 "by": names.get(e.uploaded_by_id, "—"), "at": _local(e.uploaded_at)}
                for n, e in enumerate(items, start=1)]
    return {"bank": document_form.form(session).bank_name, "number": case.number,
            "enterprise": agg.enterprise.name if agg.enterprise else "—", "branch": agg.branch_name,
            "state": states.STATE_LABELS[case.state]["zh"], "opened": _local(case.opened_at)[:10],
            "respondents": respondents,
            "documents": [{"title": labels["title"].get(lt.kind, "文书"), "number": lt.doc_number,
                           "issued": _local(lt.issued_at)[:10], "version": lt.version} for lt in docs],
            "trail": trail, "evidence": evidence, "printed": _local(datetime.now(UTC))}


def case_file_pdf(session: Session, case: Case, user) -> bytes:
    """The case file as one PDF (the caller records the download: `log_download`). Raises PermissionDenied
    (scope; need to know: a respondent sees only their own part, so not the whole file) and the PDF errors
    of the letters."""
    agg = queries.aggregate(session, case)
    actor = queries.actor_of(session, user)
    if not policy.can_view(actor, agg.view()):
        raise policy.refuse(policy.OUT_OF_SCOPE)
    if not policy.sees_all_parts(actor, agg.view()):
        raise policy.refuse(policy.NEED_TO_KNOW)
    from pypdf import PdfReader, PdfWriter

    pdf.check_letter_fonts()
    pdf.check_subsetter()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    data = case_file_data(session, case)
    cover = pdf.render.write_pdf(env.get_template("case_file.html").render(d=data))
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(cover)), outline_item="案件卷宗封面、目录、办理记录与证据清单")
    for lt, entry in zip(current_documents(session, case), data["documents"], strict=True):
        writer.append(PdfReader(io.BytesIO(lt.pdf)), outline_item=f"{entry['title']}（{entry['number']}）")
    writer.add_metadata({"/Title": f"案件卷宗 {case.number}", "/Author": data["bank"]})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def log_download(session: Session, user, case: Case, body: bytes, via: str) -> None:
    """The case file's download in the access log (with its size and SHA-256)."""
    import hashlib

    access_log.record(session, user, "download_case_file", target=case.number, case_id=case.id,
                      details={"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), "via": via})
