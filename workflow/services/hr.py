"""The consequences of a case for HR: the referral record, the sanctions recorded back from the
accountability procedure, the refunds due when a later decision improves an outcome, and the monthly HR list
of deductions and refunds (扣发与返还) as CSV or XLSX.

Verbs take the caller's session and flush; every one writes its audit event in the same transaction. The rules
(who, when, how much) are the domain's: `policy` (`refer`, `record_sanctions`, `why_not_hr_export`) and
`domain/hr.py` (sanction types, months, refund amounts).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from datetime import date, datetime
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlmodel import Session, select

from ..domain import hr, policy, states
from ..domain.errors import NotFound, ValidationFailed
from ..models import Branch, Case, Letter, Referral, Refund, Respondent, Sanction, User
from . import access_log, audit, queries
from .export import CST

OUTCOME_ZH = {"exempt": "免责", "reduced": "减责", "liable": "不予免责"}
RECIPIENT_MAX, REFERENCE_MAX, MATTERS_MAX, NOTE_MAX = 100, 100, 2000, 500


# --- the referral record ---------------------------------------------------------------------------------

def referral_choice(referable: dict[int, str], respondent_ids: Collection[int] | None) -> list[int]:
    """The respondents referred: those asked for (each must have a final reduced or liable outcome), or all of
    them when none are named. Raises ValidationFailed."""
    if not respondent_ids:
        return sorted(referable)
    chosen = sorted({int(r) for r in respondent_ids})
    unknown = [r for r in chosen if r not in referable]
    if unknown:
        raise ValidationFailed("only respondents whose final outcome is reduced or liable can be referred",
                               field="respondents", value=unknown)
    return chosen


def clean_referral(recipient: str | None, reference: str | None, matters: str | None, default_recipient: str):
    """The referral's recipient department (default the rule set's), reference and matters, checked."""
    recipient = (recipient or "").strip() or default_recipient
    reference, matters = (reference or "").strip(), (matters or "").strip()
    if len(recipient) > RECIPIENT_MAX:
        raise ValidationFailed("the recipient department may be at most 100 characters long", field="recipient")
    if len(reference) > REFERENCE_MAX:
        raise ValidationFailed("the reference may be at most 100 characters long", field="reference")
    if len(matters) > MATTERS_MAX:
        raise ValidationFailed("the matters referred may be at most 2,000 characters long", field="matters")
    return recipient, reference, matters


def record_referral(session: Session, case: Case, actor: User, *, recipient: str, reference: str, matters: str,
                    respondents: list[dict], letter: Letter | None) -> Referral:
    """Store the referral record (called by `cases.refer_for_accountability`, whose event audits it): the
    reference is the one entered, else the referral letter's number."""
    row = Referral(case_id=case.id, recipient=recipient, reference=reference or (letter.doc_number if letter else ""),
                   matters=matters, respondents=respondents, letter_id=letter.id if letter else None,
                   referred_by_id=actor.id)
    session.add(row)
    session.flush()
    return row


# --- the sanctions recorded back -------------------------------------------------------------------------

def current_outcome(agg: queries.CaseAggregate, r: Respondent) -> str | None:
    """The respondent's outcome in force: the final one, else an appeal's altered decision, else the committee's."""
    if r.final_outcome:
        return r.final_outcome
    altered = [a for a in agg.appeals if a.respondent_id == r.id and a.decision == "altered" and a.new_outcome]
    return altered[-1].new_outcome if altered else r.decided_outcome


def record_sanction(session: Session, case: Case, actor: User, respondent_id: int, *, points=0,
                    sanction_type: str | None = "none", amount=None, month: str | None = None,
                    note: str | None = "") -> Sanction:
    """Record the accountability result for one respondent: points deducted, sanction type, the amount
    deducted and the month it is applied in, for the outcome in force now (audited `record_sanction`).

    Raises PermissionDenied (not an administrator whose scope holds the case; a respondent of it),
    TransitionNotAllowed (before the determination), NotFound (no such respondent), ValidationFailed (an
    exempt outcome carries no sanction; bad points, type, amount or month; a note over 500 characters).
    """
    agg = queries.authorize(session, case, actor, "record_sanctions")
    if case.state not in states.ACTION_STATES["record_sanctions"]:
        raise states.TransitionNotAllowed("sanctions are recorded once the case is determined",
                                          state=case.state, event="record_sanction")
    if not respondent_id:
        raise ValidationFailed("choose the person whose sanctions you record", field="respondent")
    r = next((r for r in agg.respondents if r.id == respondent_id), None)
    if r is None:
        raise NotFound(f"respondent {respondent_id} is not in case {case.number}")
    basis = current_outcome(agg, r)
    if basis not in ("reduced", "liable"):
        raise ValidationFailed("an exempt outcome carries no sanction: nothing to record", field="respondent")
    pts, kind, money, month = hr.validate_sanction(points, sanction_type, amount, month)
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ValidationFailed("the note may be at most 500 characters long", field="note")
    row = Sanction(case_id=case.id, respondent_id=r.id, user_id=r.user_id, basis_outcome=basis, points=pts,
                   sanction_type=kind, amount=money, month=month, note=note, recorded_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.record(session, event="record_sanction", actor=actor, case_id=case.id,
                 payload={"sanction_id": row.id, "respondent_id": r.id, "user_id": r.user_id, "outcome": basis,
                          "points": pts, "sanction_type": kind, "amount": money, "month": month, "note": note})
    return row


# --- refunds ---------------------------------------------------------------------------------------------

def refunds_after(session: Session, case: Case, actor, outcomes: dict[int, str], *, decision: str,
                  decision_ref: str, today: date | None = None) -> list[Refund]:
    """The refunds a decision makes due: for every deduction of the case's respondents in `outcomes` (respondent
    id → their new outcome) whose outcome the decision improved, the part the new outcome no longer carries
    (domain/hr.refund_due, by the economic penalty factors of the case's rule set), listed in the HR export of
    the decision's month. Each refund is audited (`refund_due`) in the decision's transaction."""
    day = today or datetime.now(CST).date()
    deductions = [d for d in session.exec(select(Sanction).where(Sanction.case_id == case.id,
                                                                 Sanction.amount > 0))
                  if d.respondent_id in outcomes and hr.improves(d.basis_outcome, outcomes[d.respondent_id])]
    if not deductions:
        return []
    refunded: dict[int, Decimal] = {}
    for f in session.exec(select(Refund).where(Refund.sanction_id.in_([d.id for d in deductions]))):
        refunded[f.sanction_id] = refunded.get(f.sanction_id, Decimal(0)) + f.amount
    sanctions = queries.aggregate(session, case).procedure.sanctions
    out = []
    for d in deductions:
        new = outcomes[d.respondent_id]
        due = hr.refund_due(d.amount, refunded.get(d.id, Decimal(0)),
                            sanctions[d.basis_outcome].economic_penalty_factor, sanctions[new].economic_penalty_factor)
        if due <= 0:
            continue
        row = Refund(sanction_id=d.id, case_id=case.id, user_id=d.user_id, amount=due, decision=decision,
                     decision_ref=decision_ref[:60], decided_on=day, new_outcome=new, month=hr.month_of(day))
        session.add(row)
        session.flush()
        audit.record(session, event="refund_due", actor=actor, case_id=case.id,
                     payload={"refund_id": row.id, "sanction_id": d.id, "user_id": d.user_id, "amount": due,
                              "deducted": d.amount, "deducted_month": d.month, "basis_outcome": d.basis_outcome,
                              "new_outcome": new, "decision": decision, "decision_ref": row.decision_ref,
                              "decided_on": day, "month": row.month})
        out.append(row)
    return out


# --- the accountability page -----------------------------------------------------------------------------

def accountability(session: Session, case: Case, actor) -> dict:
    """The case's referral record, the sanctions recorded and the refunds due, each with the person's name and
    employee number; a respondent of the case reads only their own rows (need to know). Three statements."""
    ntk = queries.need_to_know(session, case, actor)
    referral = session.exec(select(Referral).where(Referral.case_id == case.id)).first()
    people = {}
    sanctions = []
    for s, u in session.exec(select(Sanction, User).join(User, User.id == Sanction.user_id)
                             .where(Sanction.case_id == case.id).order_by(Sanction.id)):
        if ntk.sees(s.respondent_id):
            sanctions.append(s)
            people[u.id] = u
    seen = {s.id for s in sanctions}
    refunds = [f for f in session.exec(select(Refund).where(Refund.case_id == case.id).order_by(Refund.id))
               if f.sanction_id in seen]
    referred = []
    if referral is not None:
        by_id = {r.id: r for r in queries.aggregate(session, case).respondents}
        referred = [{**x, "respondent": by_id.get(x["respondent_id"])} for x in referral.respondents
                    if ntk.sees(x["respondent_id"])]
    return {"referral": referral, "referred": referred, "sanctions": sanctions, "refunds": refunds,
            "people": people}


# --- the monthly HR list ---------------------------------------------------------------------------------

HEADINGS = ("类型", "姓名", "员工编号", "所属机构", "案件编号", "认定结果", "考核扣分", "处分", "扣发金额（元）",
            "扣发月份", "返还金额（元）", "原扣发金额（元）", "原扣发月份", "改善决定", "决定文号", "决定日期")
MONEY_COLUMNS = {8, 10, 11}
SUMMARY_HEADINGS = ("姓名", "员工编号", "所属机构", "扣发合计（元）", "返还合计（元）", "净扣发（元）")


def month_lines(session: Session, month: str) -> list[dict]:
    """The HR list of one month: every deduction applied in it and every refund due in it, per person (by
    employee number), each with the person's name, employee number and branch. Two statements."""
    month = hr.parse_month(month)
    lines = []
    q = (select(Sanction, User, Branch, Case).join(User, User.id == Sanction.user_id)
         .join(Branch, Branch.id == User.branch_id).join(Case, Case.id == Sanction.case_id)
         .where(Sanction.month == month, Sanction.amount > 0))
    for s, u, b, c in session.exec(q):
        lines.append({"kind": "deduction", "name": u.name, "employee_no": u.employee_no, "branch": b.name, "branch_en": b.name_en,
                      "case": c.number, "outcome": s.basis_outcome, "points": s.points,
                      "sanction_type": s.sanction_type, "amount": s.amount, "month": s.month, "refund": None,
                      "deducted": None, "deducted_month": None, "decision": None, "decision_ref": None,
                      "decided_on": None})
    q = (select(Refund, Sanction, User, Branch, Case).join(Sanction, Sanction.id == Refund.sanction_id)
         .join(User, User.id == Refund.user_id).join(Branch, Branch.id == User.branch_id)
         .join(Case, Case.id == Refund.case_id).where(Refund.month == month))
    for f, s, u, b, c in session.exec(q):
        lines.append({"kind": "refund", "name": u.name, "employee_no": u.employee_no, "branch": b.name, "branch_en": b.name_en,
                      "case": c.number, "outcome": f.new_outcome, "points": None, "sanction_type": None,
                      "amount": None, "month": None, "refund": f.amount, "deducted": s.amount,
                      "deducted_month": s.month, "decision": f.decision, "decision_ref": f.decision_ref,
                      "decided_on": f.decided_on})
    lines.sort(key=lambda x: (x["employee_no"], x["case"], x["kind"] != "deduction"))
    return lines


def summary(lines: list[dict]) -> list[dict]:
    """Per person: the month's deductions, refunds and the net deduction."""
    out: dict[str, dict] = {}
    for x in lines:
        p = out.setdefault(x["employee_no"], {"name": x["name"], "employee_no": x["employee_no"],
                                              "branch": x["branch"], "deducted": Decimal(0), "refunded": Decimal(0)})
        p["deducted"] += x["amount"] or 0
        p["refunded"] += x["refund"] or 0
    for p in out.values():
        p["net"] = p["deducted"] - p["refunded"]
    return list(out.values())


def _row(x: dict) -> tuple:
    """One line of the list in the export's columns, in Chinese (no codes)."""
    decision = hr.IMPROVING_DECISIONS[x["decision"]]["zh"] if x["decision"] else None
    kind = hr.SANCTION_TYPES[x["sanction_type"]]["zh"] if x["sanction_type"] else None
    return ("扣发" if x["kind"] == "deduction" else "返还", x["name"], x["employee_no"], x["branch"], x["case"],
            OUTCOME_ZH.get(x["outcome"], x["outcome"]), x["points"], kind, x["amount"], x["month"], x["refund"],
            x["deducted"], x["deducted_month"], decision, x["decision_ref"], x["decided_on"])


def authorize_export(session: Session, user: User, *, month: str, fmt: str, reason: str | None) -> dict:
    """Check and log an HR export before it is written: the policy (head-office administrators and internal
    auditors), a known month and format, and a stated reason, which goes into the access log and the audit
    chain. Returns the details logged. Raises PermissionDenied, ValidationFailed."""
    policy.require_hr_export(queries.actor_of(session, user))
    month = hr.parse_month(month)
    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed(f"unknown format '{fmt}' (choose csv, xlsx)", field="format")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("say why you export the HR list", field="reason")
    if len(reason) > 500:
        raise ValidationFailed("the reason may be at most 500 characters long", field="reason")
    details = {"kind": "hr", "month": month, "format": fmt, "reason": reason}
    access_log.record(session, user, "export", f"hr:{month}", None, details)
    audit.record(session, event="export_hr", actor=user, payload=details)
    return details


def render(fmt: str, month: str, lines: list[dict]) -> bytes:
    """The month's list as CSV (UTF-8 with a BOM, for Excel) or XLSX (a sheet of lines and one per person,
    amounts with two decimals, frozen header, filters)."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(HEADINGS)
        for x in lines:
            w.writerow(["" if v is None else (f"{v:.2f}" if isinstance(v, Decimal) else v) for v in _row(x)])
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
    wb = Workbook()
    ws = wb.active
    ws.title = f"{month} 扣发与返还"
    _sheet(ws, HEADINGS, [_row(x) for x in lines], MONEY_COLUMNS)
    per = wb.create_sheet("按人员汇总")
    _sheet(per, SUMMARY_HEADINGS, [(p["name"], p["employee_no"], p["branch"], p["deducted"], p["refunded"], p["net"])
                                   for p in summary(lines)], {3, 4, 5})
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _sheet(ws, headings, rows, money_columns) -> None:
    ws.append(list(headings))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([float(v) if isinstance(v, Decimal) else v for v in row])
        for i in money_columns:
            ws.cell(row=ws.max_row, column=i + 1).number_format = "#,##0.00"
        for i, v in enumerate(row):
            if isinstance(v, date):
                ws.cell(row=ws.max_row, column=i + 1).number_format = "yyyy-mm-dd"
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    for i, h in enumerate(headings):
        ws.column_dimensions[ws.cell(row=1, column=i + 1).column_letter].width = max(10, len(h) * 2 + 2)


def filename(month: str, fmt: str) -> str:
    """The download's name, e.g. mianze-hr-2026-12.xlsx."""
    return f"mianze-hr-{month}.{fmt}"
