"""Exports of the precedent library, in Chinese: a PDF booklet (引导案例汇编) printed with the letters'
stylesheet and embedded CJK faces (workflow/pdf), and an XLSX workbook.

The texts are Chinese only: stages, outcomes, products, bands and list kinds by their Chinese labels; rule
codes are printed beside their texts as the letters print them. Each export is recorded in the access log.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from sqlmodel import Session, select

from .. import pdf
from ..models import Branch, Precedent
from . import access_log, document_form

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "guidance"
OUTCOME_ZH = {"exempt": "免责", "reduced": "减责", "liable": "不予免责"}
STAGE_ZH = {"marketing": "营销", "acceptance": "受理", "pre_loan": "贷前调查", "review": "贷中审查", "approval": "审批",
            "disbursement": "放款审核", "post_loan": "贷后管理"}
PRODUCT_ZH = {"inclusive_sme": "普惠型小微企业贷款", "farmer_business": "农户经营性贷款"}
BAND_ZH = {"upto_1m": "100万元及以下", "1m_3m": "100万元以上至300万元", "3m_5m": "300万元以上至500万元",
           "5m_10m": "500万元以上至1000万元", "over_10m": "1000万元以上"}
LIABILITY_ZH = {"compliance": "合规责任", "diligence": "尽职责任", "management": "管理责任"}
LIST_ZH = {"positive": "应免责情形", "mitigating": "可减免责情形", "negative": "不得免责情形"}


def _tolerance_zh(within: bool | None) -> str:
    return "—" if within is None else ("在容忍度内" if within else "超出容忍度")


def precedent_rows(session: Session, precedents: Sequence[Precedent]) -> list[dict]:
    """The precedents as plain dicts with every text in Chinese (for the booklet and the workbook)."""
    names = {b.id: b.name for b in session.exec(select(Branch).where(Branch.id.in_({p.branch_id for p in precedents})))}
    rows = []
    for p in precedents:
        stages = []
        for st in p.stages:
            items = [{"code": i["code"], "kind": LIST_ZH[key], "text": i["zh"]}
                     for key in ("positive", "mitigating", "negative") for i in st.get(key, [])]
            stages.append({
                "stage": STAGE_ZH.get(st["stage"], st["stage"]), "loan": st.get("loan", 1), "list_items": items,
                "unperformed": [{"code": u["code"], "text": u["zh"],
                                 "causal": "与损失有因果关系" if u.get("causal") else "与损失无因果关系"}
                                for u in st.get("unperformed", [])],
                "violation": "是" if st.get("violation") else "否", "dissented": bool(st.get("dissented")),
                "findings": st.get("findings", ""), "outcome": OUTCOME_ZH.get(st.get("outcome"), "—"),
                "decided_by": (st.get("decided_by") or {}).get("zh", ""),
            })
        rows.append({
            "id": p.id, "title": p.title, "branch": names.get(p.branch_id, ""), "rule_set_version": p.rule_set_version,
            "product": PRODUCT_ZH.get(p.product_class, "—"), "amount_band": BAND_ZH.get(p.amount_band, "—"),
            "tolerance": _tolerance_zh(p.tolerance_within), "liability_kind": LIABILITY_ZH.get(p.liability_kind, "—"),
            "recommended_outcome": OUTCOME_ZH[p.recommended_outcome], "outcome": OUTCOME_ZH[p.outcome],
            "stages": stages, "reasoning": p.reasoning, "codes": p.codes.split(),
            "approved_on": p.decided_at.date().isoformat() if p.decided_at else "",
        })
    return rows


def _filters_zh(filters: dict) -> str:
    parts = []
    if filters.get("code"):
        parts.append(f"规则编码 {filters['code'].upper()}")
    if filters.get("stage"):
        parts.append(f"环节：{STAGE_ZH.get(filters['stage'], '')}")
    if filters.get("outcome"):
        parts.append(f"认定结果：{OUTCOME_ZH.get(filters['outcome'], '')}")
    if filters.get("product"):
        parts.append(f"产品：{PRODUCT_ZH.get(filters['product'], '')}")
    if filters.get("text"):
        parts.append(f"文字含“{filters['text']}”")
    return "检索条件：" + ("；".join(parts) if parts else "全部已批准的引导案例") + "。"


def booklet_html(session: Session, precedents: Sequence[Precedent], filters: dict) -> str:
    """The booklet's HTML (Chinese) for these precedents."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    bank = document_form.form(session).bank_name
    data = {"title": "尽职免责引导案例汇编", "bank": bank, "created": datetime.now(UTC).isoformat(),
            "intro": "本汇编收录经两人审核批准的尽职免责认定案例，均已脱敏处理（不含人员姓名、证件号码、企业名称和贷款编号；"
                     "贷款金额按区间列示，认定机构列至一级分行）。案例供同类案件参考，不具约束力。",
            "filters": _filters_zh(filters), "precedents": precedent_rows(session, precedents)}
    return env.get_template("booklet.html").render(d=data)


def booklet_pdf(session: Session, actor, precedents: Sequence[Precedent], filters: dict, reason: str | None) -> bytes:
    """The booklet as PDF bytes, recorded as an export with its stated reason; raises ValidationFailed without
    a reason, pdf.LetterFontMissing and pdf.LetterSubsetterMissing when the server cannot print Chinese."""
    reason = access_log.stated_reason(reason)
    pdf.check_letter_fonts()
    pdf.check_subsetter()
    body = pdf.render.write_pdf(booklet_html(session, precedents, filters))
    access_log.record_export(session, actor, "precedents.pdf", reason,
                             {"precedents": len(precedents), **{k: v for k, v in filters.items() if v}})
    return body


def precedents_xlsx(session: Session, actor, precedents: Sequence[Precedent], filters: dict,
                    reason: str | None) -> bytes:
    """The precedents as an XLSX workbook in Chinese (one row per precedent, one per stage), recorded as an
    export with its stated reason; raises ValidationFailed without a reason."""
    reason = access_log.stated_reason(reason)
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    bold = Font(bold=True)
    rows = precedent_rows(session, precedents)
    wb = Workbook()
    ws = wb.active
    ws.title = "引导案例"
    ws.append(["序号", "标题", "认定机构", "适用规则版本", "产品", "贷款金额", "不良容忍度", "责任类型", "建议结果", "认定结果",
               "规则编码", "认定理由", "批准日期"])
    for cell in ws[1]:
        cell.font = bold
    for n, r in enumerate(rows, start=1):
        ws.append([n, r["title"], r["branch"], r["rule_set_version"], r["product"], r["amount_band"], r["tolerance"],
                   r["liability_kind"], r["recommended_outcome"], r["outcome"], "、".join(r["codes"]), r["reasoning"],
                   r["approved_on"]])
    stages = wb.create_sheet("各环节")
    stages.append(["序号", "环节", "贷款", "环节结果", "决定规则", "清单事项", "未履职事项", "违反法律法规或监管规定", "查明事实"])
    for cell in stages[1]:
        cell.font = bold
    for n, r in enumerate(rows, start=1):
        for st in r["stages"]:
            stages.append([n, st["stage"], f"第{st['loan']}笔", st["outcome"], st["decided_by"],
                           "；".join(f"{i['code']} {i['kind']}：{i['text']}" for i in st["list_items"]),
                           "；".join(f"{u['code']} {u['text']}（{u['causal']}）" for u in st["unperformed"]),
                           st["violation"], st["findings"]])
            stages.cell(stages.max_row, 9).alignment = Alignment(wrap_text=True)
    for sheet in (ws, stages):
        for column in "ABCDEFGHIJKLM":
            sheet.column_dimensions[column].width = 18
    ws.append([])
    ws.append([_filters_zh(filters)])
    access_log.record_export(session, actor, "precedents.xlsx", reason,
                             {"precedents": len(precedents), **{k: v for k, v in filters.items() if v}})
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
