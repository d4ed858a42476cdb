"""Consistency across branches: like cases decided alike (seed requirement 1: objective, quantifiable criteria).

For a period (the cases opened from `start` to `end`, as on the dashboard) and each tier-1 branch (with its
subtree), beside the bank's figure:

- the exempt, reduced and liable shares of the respondents with an outcome (final, else the committee's);
- the deviation rate: respondents whose decided outcome differs from the recommendation ÷ those decided;
- the appeal-alteration rate: appeals altered ÷ appeals decided;
- the median calendar days from opening to determination;

and for each figure its dispersion across the branches that have a value (lowest, highest, range and the
population standard deviation).

Like cases decided differently: respondents whose recorded stage facts are the same — per stage the list items
established, the duties shown unperformed (with their causal flag), the violation and dissent flags — under the
same tolerance position, but whose outcomes differ, in different tier-1 branches. Who may see that list is a
policy rule (`policy.sees_like_cases`: internal auditors and head office).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlmodel import Session, select

from ..domain.errors import ValidationFailed
from ..models import OUTCOMES, Appeal, Branch, Case, Respondent, StageFact
from .metrics import median, ratio, subtree_cases

FIGURES = ("exempt_share", "reduced_share", "liable_share", "deviation_rate", "appeal_alteration_rate",
           "median_days")
# Chinese labels of the report's columns (the XLSX is in Chinese).
FIGURE_LABELS_ZH = {"exempt_share": "免责比例", "reduced_share": "减责比例", "liable_share": "不予免责比例",
                    "deviation_rate": "偏离建议比例", "appeal_alteration_rate": "申诉变更比例",
                    "median_days": "认定用时中位数（天）"}
OUTCOME_ZH = {"exempt": "免责", "reduced": "减责", "liable": "不予免责"}
_PLACES = Decimal("0.0001")


def _figures(session: Session, cases: list[Case]) -> dict:
    ids = {c.id for c in cases}
    if not ids:
        respondents, appeals = [], []
    else:
        respondents = list(session.exec(select(Respondent).where(Respondent.case_id.in_(ids))))
        appeals = list(session.exec(select(Appeal).where(Appeal.case_id.in_(ids))))
    outcomes = [r.final_outcome or r.decided_outcome for r in respondents if r.final_outcome or r.decided_outcome]
    decided = [r for r in respondents if r.decided_outcome and r.recommended_outcome]
    deviated = [r for r in decided if r.decided_outcome != r.recommended_outcome]
    appeals_decided = [a for a in appeals if a.decision is not None]
    days = [(c.determined_at.date() - c.opened_at.date()).days for c in cases if c.determined_at]
    return {
        "cases": len(cases), "respondents": len(outcomes),
        "exempt_share": ratio(outcomes.count("exempt"), len(outcomes)),
        "reduced_share": ratio(outcomes.count("reduced"), len(outcomes)),
        "liable_share": ratio(outcomes.count("liable"), len(outcomes)),
        "deviation_rate": ratio(len(deviated), len(decided)),
        "appeal_alteration_rate": ratio(sum(a.decision == "altered" for a in appeals_decided), len(appeals_decided)),
        "median_days": median(days),
    }


def dispersion(values: list[Decimal | None]) -> dict:
    """Lowest, highest, range and population standard deviation of the values that exist (None when none)."""
    present = [Decimal(v) for v in values if v is not None]
    if not present:
        return {"n": 0, "min": None, "max": None, "range": None, "stdev": None}
    mean = sum(present) / len(present)
    variance = sum((v - mean) ** 2 for v in present) / len(present)
    return {"n": len(present), "min": min(present), "max": max(present), "range": max(present) - min(present),
            "stdev": variance.sqrt().quantize(_PLACES)}


def tier1_branches(session: Session) -> list[Branch]:
    """The tier-1 branches, in tree order."""
    return list(session.exec(select(Branch).where(Branch.level == 1).order_by(Branch.path)))


def branch_figures(session: Session, start: date, end: date, visible_paths: list[str] | None = None) -> dict:
    """The figures per tier-1 branch (those under `visible_paths`, all when None), the bank's, and the
    dispersion across all tier-1 branches. Raises ValidationFailed when the period ends before it starts."""
    if end < start:
        raise ValidationFailed("the period ends before it starts", field="end")
    root = session.exec(select(Branch).where(Branch.level == 0).order_by(Branch.id)).first()
    rows = []
    for b in tier1_branches(session):
        rows.append({"branch": b, **_figures(session, subtree_cases(session, b, start, end))})
    spread = {f: dispersion([r[f] for r in rows]) for f in FIGURES}
    bank = _figures(session, subtree_cases(session, root, start, end)) if root else _figures(session, [])
    if visible_paths is not None:
        rows = [r for r in rows if any(r["branch"].path.startswith(p) for p in visible_paths)]
    return {"start": start, "end": end, "branches": rows, "bank": bank, "dispersion": spread}


# --- like cases decided differently ----------------------------------------------------------------------

def stage_signature(facts: dict) -> tuple:
    """What makes two stages' facts alike: the codes established, the duties unperformed with their causal
    flag, the violation and dissent flags (the written findings are not compared)."""
    return (tuple(sorted(facts.get("positive", []))), tuple(sorted(facts.get("mitigating", []))),
            tuple(sorted(facts.get("negative", []))),
            tuple(sorted((u["duty"], bool(u.get("causal"))) for u in facts.get("unperformed", []))),
            bool(facts.get("violation")), bool(facts.get("dissented")))


@dataclass(frozen=True)
class LikeCase:
    """One respondent of a group of like cases: where and how it was decided."""

    case_id: int
    case_number: str
    respondent_id: int
    branch: Branch
    outcome: str
    stages: tuple[str, ...]


def like_cases_decided_differently(session: Session, start: date, end: date) -> list[dict]:
    """Groups of respondents with the same stage facts and tolerance position whose outcomes differ across
    tier-1 branches, each group as {"codes", "stages", "violation", "within", "members": [LikeCase]}."""
    tier1 = tier1_branches(session)
    root = session.exec(select(Branch).where(Branch.level == 0).order_by(Branch.id)).first()
    if root is None:
        return []
    cases = {c.id: c for c in subtree_cases(session, root, start, end)}
    if not cases:
        return []
    branch_of = {}
    for c in cases.values():
        home = session.get(Branch, c.branch_id)
        branch_of[c.id] = next((b for b in tier1 if home.path.startswith(b.path)), home)
    groups: dict[tuple, list[LikeCase]] = {}
    for r in session.exec(select(Respondent).where(Respondent.case_id.in_(set(cases))).order_by(Respondent.id)):
        outcome = r.final_outcome or r.decided_outcome
        if outcome is None:
            continue
        facts = list(session.exec(select(StageFact).where(StageFact.respondent_id == r.id)))
        if not facts:
            continue
        signature = tuple(sorted((f.stage, stage_signature(f.facts)) for f in facts))
        within = (cases[r.case_id].tolerance or {}).get("within")
        groups.setdefault((within, signature), []).append(LikeCase(
            case_id=r.case_id, case_number=cases[r.case_id].number, respondent_id=r.id,
            branch=branch_of[r.case_id], outcome=outcome, stages=tuple(sorted({f.stage for f in facts}))))
    found = []
    for (within, signature), members in groups.items():
        differ = any(a.outcome != b.outcome and a.branch.id != b.branch.id for a in members for b in members)
        if not differ:
            continue
        codes = sorted({c for _stage, sig in signature for part in sig[:3] for c in part}
                       | {d for _stage, sig in signature for d, _causal in sig[3]})
        found.append({"within": within, "codes": codes, "stages": sorted({s for s, _ in signature}),
                      "violation": any(sig[4] for _s, sig in signature),
                      "members": sorted(members, key=lambda m: (m.branch.path, OUTCOMES.index(m.outcome)))})
    found.sort(key=lambda g: (g["codes"], g["stages"]))
    return found


# --- XLSX (in Chinese) -----------------------------------------------------------------------------------

def export_xlsx(session: Session, actor, report: dict, like: list[dict] | None, reason: str | None) -> bytes:
    """The consistency report as a workbook for a download, recorded in the access log as an export with its
    stated reason (before the file is written). Raises ValidationFailed without a reason."""
    from . import access_log, rulesets

    access_log.record_export(session, actor, "consistency.xlsx", reason,
                             {"start": report["start"], "end": report["end"], "like_cases": like is not None})
    rs = rulesets.parsed(rulesets.version_in_force(session, date.today()))
    return consistency_xlsx(report, like, {st.code: st.zh for st in rs.stages})


def consistency_xlsx(report: dict, like: list[dict] | None, stage_zh: dict[str, str]) -> bytes:
    """The consistency report as an XLSX workbook in Chinese: the branches beside the bank with the
    dispersion (the charts' data), and, when given, the like cases decided differently."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    bold = Font(bold=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "分行对比"
    ws.append(["期间", f"{report['start'].isoformat()} 至 {report['end'].isoformat()}（按立案日期）"])
    ws.append([])
    ws.append(["机构", "案件数", "有认定结论的被评议人", *[FIGURE_LABELS_ZH[f] for f in FIGURES]])
    for cell in ws[ws.max_row]:
        cell.font = bold

    def figure_row(label, fig):
        ws.append([label, fig["cases"], fig["respondents"], *[fig[f] for f in FIGURES]])
        for n, f in enumerate(FIGURES, start=4):
            if f != "median_days":
                ws.cell(ws.max_row, n).number_format = "0.00%"

    for row in report["branches"]:
        figure_row(row["branch"].name, row)
    figure_row("全行", report["bank"])
    ws.append([])
    ws.append(["各分行离散程度", "", "", *[FIGURE_LABELS_ZH[f] for f in FIGURES]])
    for cell in ws[ws.max_row]:
        cell.font = bold
    for key, label in (("min", "最低"), ("max", "最高"), ("range", "极差"), ("stdev", "标准差")):
        ws.append([label, "", "", *[report["dispersion"][f][key] for f in FIGURES]])
        for n, f in enumerate(FIGURES, start=4):
            if f != "median_days":
                ws.cell(ws.max_row, n).number_format = "0.00%"
    ws.column_dimensions["A"].width = 18
    for column in "BCDEFGHI":
        ws.column_dimensions[column].width = 16
    if like is not None:
        sheet = wb.create_sheet("同案不同判")
        sheet.append(["组", "环节", "事项编码", "违反法律法规或监管规定", "容忍度内", "案件编号", "分行", "认定结果"])
        for cell in sheet[1]:
            cell.font = bold
        for n, group in enumerate(like, start=1):
            within = "—" if group["within"] is None else ("是" if group["within"] else "否")
            for m in group["members"]:
                sheet.append([n, "、".join(stage_zh.get(s, s) for s in group["stages"]), "、".join(group["codes"]),
                              "是" if group["violation"] else "否", within, m.case_number, m.branch.name,
                              OUTCOME_ZH[m.outcome]])
        for column in "ABCDEFGH":
            sheet.column_dimensions[column].width = 18
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
