"""Dashboard figures for a branch subtree and a period, and the same figures as an XLSX workbook.

The period selects a cohort: the cases of the subtree opened (UTC date of `opened_at`) from `start` to
`end`, both included. Every figure describes that cohort:

- cases by state (every state listed, zeros included);
- outcomes over the respondents who have one (the final outcome if there is one, else the committee's
  decided outcome): exemption ratio = exempt ÷ those respondents, reduced-liability ratio = reduced ÷ them;
- days to determination = calendar days from the opening date to the determination date, for the cases
  determined so far: the median and the 90th percentile (nearest rank: the ⌈0.9·n⌉-th smallest);
- finished within one year (金规〔2024〕11号): among the cases that are final (`final_at`) or whose one-year
  limit has passed by `today` (withdrawn cases left out), the share that became final within the limit;
- appeals filed, decided, altered, and the share of decided appeals that were altered;
- committee deviations: respondents whose decided outcome differs from the recommendation;
- the NPL tolerance of each branch of the subtree on the period's end date (services.tolerance).

Ratios are Decimal, rounded half-up to 4 places (a percentage with 2 decimals); None when nothing to count.
"""

from __future__ import annotations

import io
import math
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlmodel import Session, select

from ..domain.errors import NotFound, ValidationFailed
from ..domain.states import STATE_CODES, STATE_LABELS
from ..models import OUTCOMES, Appeal, Branch, Case, Respondent
from . import rulesets, tolerance

_PLACES = Decimal("0.0001")

OUTCOME_LABELS = {"exempt": {"zh": "免责", "en": "Exempt"}, "reduced": {"zh": "减责", "en": "Reduced"},
                  "liable": {"zh": "不予免责", "en": "Liable"}}


def ratio(part: int, whole: int) -> Decimal | None:
    """part ÷ whole as a Decimal rounded half-up to 4 places; None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_PLACES, rounding=ROUND_HALF_UP)


def median(values: list[int]) -> Decimal | None:
    """The median (the mean of the middle two for an even count); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return Decimal(ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: list[int], p: int) -> int | None:
    """The p-th percentile by nearest rank (the ⌈p/100·n⌉-th smallest value); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered) / 100))
    return ordered[rank - 1]


def subtree_cases(session: Session, branch: Branch, start: date, end: date) -> list[Case]:
    """Cases of the branch's subtree opened from `start` to `end` (UTC dates, both included)."""
    rows = session.exec(select(Case).join(Branch, Branch.id == Case.branch_id)
                        .where(Branch.path.startswith(branch.path)).order_by(Case.id)).all()
    # The period is compared in Python: datetimes come back naive from SQLite and aware elsewhere.
    return [c for c in rows if start <= c.opened_at.date() <= end]


def dashboard_figures(session: Session, branch_id: int, start: date, end: date, today: date | None = None) -> dict:
    """Every figure of the dashboard for a branch subtree and period (see the module docstring).

    Raises NotFound for an unknown branch and ValidationFailed when the period ends before it starts.
    """
    today = today or date.today()
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotFound(f"branch {branch_id} does not exist")
    if end < start:
        raise ValidationFailed("the period ends before it starts", field="end")
    cohort = subtree_cases(session, branch, start, end)
    ids = {c.id for c in cohort}

    by_state = dict.fromkeys(STATE_CODES, 0)
    for c in cohort:
        by_state[c.state] += 1

    respondents = [r for r in session.exec(
        select(Respondent).join(Case, Case.id == Respondent.case_id).join(Branch, Branch.id == Case.branch_id)
        .where(Branch.path.startswith(branch.path)).order_by(Respondent.id)) if r.case_id in ids]
    outcomes = [r.final_outcome or r.decided_outcome for r in respondents if r.final_outcome or r.decided_outcome]
    counts = {o: outcomes.count(o) for o in OUTCOMES}
    decided = [r for r in respondents if r.decided_outcome and r.recommended_outcome]
    deviations = [r for r in decided if r.decided_outcome != r.recommended_outcome]

    days = [(c.determined_at.date() - c.opened_at.date()).days for c in cohort if c.determined_at]

    limits: dict[int, int] = {}
    eligible = within = 0
    for c in cohort:
        if c.state == "withdrawn":
            continue
        if c.rule_set_version_id not in limits:
            limits[c.rule_set_version_id] = rulesets.time_limit(rulesets.procedure_rules(session, c), "total_case")
        limit = c.opened_at.date() + timedelta(days=limits[c.rule_set_version_id])
        if c.final_at is not None:
            eligible += 1
            within += c.final_at.date() <= limit
        elif limit < today:
            eligible += 1

    appeals = [a for a in session.exec(
        select(Appeal).join(Case, Case.id == Appeal.case_id).join(Branch, Branch.id == Case.branch_id)
        .where(Branch.path.startswith(branch.path)).order_by(Appeal.id)) if a.case_id in ids]
    appeals_decided = [a for a in appeals if a.decision is not None]
    altered = [a for a in appeals_decided if a.decision == "altered"]

    results = tolerance.all_branches(session, end)
    branches = session.exec(select(Branch).where(Branch.path.startswith(branch.path)).order_by(Branch.path)).all()
    tolerance_rows = []
    for b in branches:
        result = results[b.id]
        tolerance_rows.append({
            "branch_id": b.id, "code": b.code, "name": b.name, "name_en": b.name_en, "level": b.level,
            "within": result.within, "basis": result.basis, "reason_code": result.reason_code,
            "sme_ratio": result.sme_ratio,
            "all_ratio": result.all_ratio, "gap_pp": result.gap_pp, "margin": result.margin,
            "display": result.display,
        })

    return {
        "branch": {"id": branch.id, "code": branch.code, "name": branch.name, "name_en": branch.name_en,
                   "path": branch.path},
        "period": {"start": start, "end": end},
        "today": today,
        "cases": len(cohort),
        "by_state": by_state,
        "outcomes": {"respondents": len(outcomes), **counts,
                     "exemption_ratio": ratio(counts["exempt"], len(outcomes)),
                     "reduced_ratio": ratio(counts["reduced"], len(outcomes))},
        "determination_days": {"cases": len(days), "median": median(days), "p90": percentile(days, 90)},
        "within_one_year": {"counted": eligible, "within": within, "share": ratio(within, eligible)},
        "appeals": {"filed": len(appeals), "decided": len(appeals_decided), "altered": len(altered),
                    "altered_share": ratio(len(altered), len(appeals_decided))},
        "deviations": {"decided": len(decided), "deviated": len(deviations),
                       "share": ratio(len(deviations), len(decided))},
        "tolerance": tolerance_rows,
    }


# --- XLSX -------------------------------------------------------------------------------------------------

def summary_rows(figures: dict) -> list[tuple[str, str, object, str]]:
    """(中文, English, value, kind) for the headline figures; kind is "count", "ratio" or "days"."""
    o, d, y = figures["outcomes"], figures["determination_days"], figures["within_one_year"]
    a, v = figures["appeals"], figures["deviations"]
    return [
        ("案件数", "Cases", figures["cases"], "count"),
        ("有认定结论的被评议人", "Respondents with an outcome", o["respondents"], "count"),
        ("免责人数", "Exempt", o["exempt"], "count"),
        ("减责人数", "Reduced liability", o["reduced"], "count"),
        ("不予免责人数", "Liable", o["liable"], "count"),
        ("免责比例", "Exemption ratio", o["exemption_ratio"], "ratio"),
        ("减责比例", "Reduced-liability ratio", o["reduced_ratio"], "ratio"),
        ("已认定案件数", "Cases determined", d["cases"], "count"),
        ("认定用时中位数（天）", "Median days to determination", d["median"], "days"),
        ("认定用时第90百分位（天）", "90th percentile days to determination", d["p90"], "days"),
        ("计入一年时限考核的案件", "Cases counted for the one-year limit", y["counted"], "count"),
        ("一年内办结", "Final within one year", y["within"], "count"),
        ("一年内办结比例", "Share final within one year", y["share"], "ratio"),
        ("申诉件数", "Appeals filed", a["filed"], "count"),
        ("已复核申诉", "Appeals decided", a["decided"], "count"),
        ("变更认定的申诉", "Appeals altered", a["altered"], "count"),
        ("申诉变更比例", "Share of decided appeals altered", a["altered_share"], "ratio"),
        ("评议结论偏离建议的人数", "Committee deviations from the recommendation", v["deviated"], "count"),
        ("偏离比例", "Deviation share", v["share"], "ratio"),
    ]


# Why a branch is within (or outside) tolerance, by ToleranceResult.reason_code, as the workbook says it.
TOLERANCE_REASON_TEXTS = {
    "no_loans": "期内无贷款，不适用容忍度测试 No loans: the test does not apply",
    "no_sme_loans": "无普惠型小微企业贷款，不适用容忍度测试 No inclusive SME loans: the test does not apply",
    "only_sme_loans": "全部为普惠型小微企业贷款，不适用差额测试 Only inclusive SME loans: the gap test does not apply",
    "gap": "差额测试 Gap test",
    "target": "目标值测试 Target test",
}


def _table_sheet(ws) -> None:
    """A sheet read as a table: its header row frozen, filters on every column."""
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions


def metrics_xlsx(figures: dict) -> bytes:
    """The dashboard figures as an XLSX workbook: summary, cases by state, tolerance per branch."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    bold = Font(bold=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    b, p = figures["branch"], figures["period"]
    ws.append(["机构 Branch", f"{b['name']} ({b['code']})"])
    ws.append(["期间 Period", f"{p['start'].isoformat()} – {p['end'].isoformat()}"])
    ws.append(["统计日 As of", figures["today"].isoformat()])
    ws.append([])
    ws.append(["指标", "Figure", "值 Value"])
    for cell in ws[ws.max_row]:
        cell.font = bold
    for zh, en, value, kind in summary_rows(figures):
        ws.append([zh, en, value])
        ws.cell(ws.max_row, 3).number_format = {"ratio": "0.00%", "days": "0.0"}.get(kind, "#,##0")
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 44
    ws.column_dimensions["C"].width = 14

    states = wb.create_sheet("Cases by state")
    states.append(["状态代码 Code", "状态", "State", "案件数 Cases"])
    for cell in states[1]:
        cell.font = bold
    for code, n in figures["by_state"].items():
        states.append([code, STATE_LABELS[code]["zh"], STATE_LABELS[code]["en"], n])
    for column, width in zip("ABCD", (24, 16, 28, 14), strict=True):
        states.column_dimensions[column].width = width
    _table_sheet(states)

    tol = wb.create_sheet("Tolerance")
    tol.append(["机构代码 Code", "机构 Branch", "层级 Level", "小微不良率 SME NPL ratio", "各项贷款不良率 All NPL ratio",
                "差额（百分点） Gap (pp)", "容忍度内 Within", "依据 Basis"])
    for cell in tol[1]:
        cell.font = bold
    for row in figures["tolerance"]:
        tol.append([row["code"], row["name"], row["level"], row["sme_ratio"], row["all_ratio"], row["gap_pp"],
                    "是 yes" if row["within"] else "否 no", TOLERANCE_REASON_TEXTS[row["reason_code"]]])
        tol.cell(tol.max_row, 4).number_format = "0.00%"
        tol.cell(tol.max_row, 5).number_format = "0.00%"
        tol.cell(tol.max_row, 6).number_format = "0.00"
    for column in "ABCDEFG":
        tol.column_dimensions[column].width = 20
    tol.column_dimensions["H"].width = 48
    _table_sheet(tol)

    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def export_xlsx(session: Session, actor, branch_id: int, start: date, end: date, reason: str | None,
                today: date | None = None) -> bytes:
    """The dashboard workbook for a download, recorded in the access log as an export with its stated reason.
    Raises ValidationFailed without a reason."""
    from . import access_log

    reason = access_log.stated_reason(reason)
    figures = dashboard_figures(session, branch_id, start, end, today)
    access_log.record_export(session, actor, "dashboard.xlsx", reason,
                             {"branch": figures["branch"]["code"], "start": start, "end": end})
    return metrics_xlsx(figures)
