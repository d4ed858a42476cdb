"""The letter PDFs: content, fonts, metadata, the locked-down fetcher, the font check and the letter data."""

import contextlib
import copy
import datetime as dt
import hashlib
import json
import logging
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from workflow import pdf
from workflow.pdf import (
    LetterDataError,
    LetterFontMissing,
    LetterURLFetcher,
    LetterURLRefused,
    fonts,
    letter_html,
    render,
    render_letter,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "letters"

COMMON = {
    "bank": "济源农村商业银行股份有限公司",
    "branch": "济源农商银行沁园支行",
    "issued_at": dt.date(2026, 3, 9),
    "case_no": "MZ-2026-0012",
}
# The form an administrator configures: masthead over the red rule, 抄送, 印发, 签发人.
FORM = {"masthead": "济源农村商业银行尽职免责评议委员会", "cc": ["人力资源部", "合规部"],
        "printed_by": "济源农村商业银行办公室", "signatory": "周建国"}
APPEAL_FORM = {**FORM, "masthead": "济源农村商业银行尽职免责申诉复核委员会"}
LOANS = [
    {"loan_no": "JY2023-00871", "enterprise": "济源市恒达机械配件有限公司",
     "amount": Decimal("3000000"), "balance": Decimal("2450000.00")},
    {"loan_no": "JY2024-00112", "enterprise": "济源市恒达机械配件有限公司",
     "amount": 1500000, "balance": "1500000.00"},
]
TOLERANCE = {"branch": "沁园支行", "period": dt.date(2025, 12, 31), "sme_ratio": Decimal("0.0501"),
             "all_ratio": Decimal("0.0200"), "gap_pp": Decimal("3.01"), "within": False}
COMMITTEE = {"name": "济源农村商业银行尽职免责评议委员会", "decided_at": dt.date(2026, 3, 6)}
APPEAL_BODY = "济源农村商业银行总行尽职免责申诉复核委员会"
PERSON = {"name": "王晓明", "employee_no": "E1001", "branch": "沁园支行公司业务部"}
STAGE_REASONS = [
    {"loan_no": "JY2023-00871", "stage": "pre_loan", "outcome": "exempt",
     "rule": "属于应予免责情形，免除全部责任", "citation": "《实施细则（示范文本）》第八条第（二）项；银监发〔2016〕56号",
     "established": [{"kind": "positive", "text": "因自然灾害、疫情等不可抗力直接导致损失，且当事人及时揭示风险并立即采取措施",
                      "citation": "《实施细则（示范文本）》第八条第（二）项"}],
     "findings": ["不可抗力直接导致借款人经营中断，被评议人及时报告风险并立即采取保全措施。"], "evidence": ["证据1（灾情报告）"]},
    {"loan_no": "JY2023-00871", "stage": "post_loan", "outcome": "exempt",
     "rule": "无确切证据证明被评议人违反法律法规、监管规定或内部制度，或未履职尽责，原则上免除全部责任",
     "citation": "《实施细则（示范文本）》第七条；金规〔2024〕11号",
     "unperformed": [{"text": "对照纳税、流水等记录核实借款用途和还款来源", "citation": "第十四条第（三）项",
                      "causal": False, "evidence": ["证据2（流水核对表）"]}],
     "findings": ["贷款用途核实不充分，但与损失不存在因果关系。"]},
]


def determination(**overrides):
    """A determination letter's data (per loan and stage), with overrides."""
    data = {
        **COMMON, **FORM,
        "doc_number": "济农商免认〔2026〕12号",
        "committee": COMMITTEE,
        "main_to": ["王晓明"],
        "respondent": PERSON,
        "stages": ["pre_loan", "post_loan"],
        "loans": LOANS,
        "outcome": "exempt",
        "liability_kind": "diligence",
        "consequences": ["不予考核扣分", "不予行政处分", "不予经济处罚"],
        "stage_reasons": STAGE_REASONS,
        "deciding": [{"loan_no": "JY2023-00871", "stage": "pre_loan"}, {"loan_no": "JY2023-00871", "stage": "post_loan"}],
        "recommended": "exempt",
        "tolerance": TOLERANCE,
        "deviation": None,
        "votes": {"exempt": 3, "reduced": 0, "liable": 0, "cast": 3, "eligible": 4},
        "appeal": {"days": 5, "body": APPEAL_BODY},
        "version": 1,
        "supersedes": None,
    }
    data.update(overrides)
    return data


def older_determination(**overrides):
    """The data of a determination letter as issued before letters were organised by stage (reasons as a list,
    the appeal deadline as a date, no form): stored letters of that shape still render."""
    data = {
        **COMMON,
        "doc_number": "济农商免认〔2026〕12号", "committee": COMMITTEE, "respondent": PERSON,
        "stages": ["pre_loan", "post_loan"], "loans": LOANS, "outcome": "exempt", "liability_kind": "diligence",
        "sanctions": ["免除年度绩效考核扣分 6 分", "免除通报批评处分"],
        "reasons": [{"code": "P02", "text": "不可抗力直接导致借款人经营中断。", "source": "银监发〔2016〕56号"}],
        "tolerance": TOLERANCE, "deviation": None,
        "appeal": {"deadline": dt.date(2026, 3, 16), "body": APPEAL_BODY},
    }
    data.update(overrides)
    return data


def final_determination(**overrides):
    """The final determination after an altered appeal: it cites the decision and carries no appeal rights."""
    data = determination(
        doc_number="济农商免认〔2026〕20号", issued_at=dt.date(2026, 4, 2), version=2,
        supersedes="济农商免认〔2026〕12号", correction="申诉复核变更认定结论", outcome="reduced",
        consequences=["考核扣分按应扣分值的50%执行"], stage_reasons=[], deciding=[], votes=None, final=True, appeal=None,
        appeal_outcome={"doc_number": "济农商总免复〔2026〕2号", "body": APPEAL_BODY, "decided_at": dt.date(2026, 3, 30),
                        "decision": "altered", "reasons": ["补充提交的检查记录证明已按规定开展贷后检查。"],
                        "previous_doc_number": "济农商免认〔2026〕12号", "previous_outcome": "liable"},
        committee={**COMMITTEE, "decided_at": dt.date(2026, 3, 30)})
    data.update(overrides)
    return data


def appeal_record(**overrides):
    """An appeal record's data, with overrides."""
    data = {
        **COMMON, **APPEAL_FORM,
        "issued_at": dt.date(2026, 3, 12),
        "doc_number": "济农商总免申〔2026〕3号",
        "committee": {"name": APPEAL_BODY},
        "respondent": {"name": "李娜", "employee_no": "E1002", "branch": "沁园支行"},
        "appealed_doc_number": "济农商免认〔2026〕13号",
        "appealed_outcome": "reduced",
        "filed_at": dt.date(2026, 3, 12),
        "grounds": "本人已按季度开展现场检查，记录因系统迁移未能及时上传。\n请求复核并予以免责。",
        "evidence": ["2024年第三季度现场检查记录", "系统迁移期间的工作邮件"],
    }
    data.update(overrides)
    return data


def appeal_decision(**overrides):
    """An appeal decision's data, with overrides."""
    data = {
        **COMMON, **APPEAL_FORM,
        "issued_at": dt.date(2026, 3, 31),
        "doc_number": "济农商总免复〔2026〕2号",
        "committee": {"name": APPEAL_BODY, "decided_at": dt.date(2026, 3, 30)},
        "respondent": {"name": "李娜", "employee_no": "E1002", "branch": "沁园支行"},
        "appealed_doc_number": "济农商免认〔2026〕13号",
        "appealed_outcome": "reduced",
        "decision": "altered",
        "new_outcome": "exempt",
        "liability_kind": "diligence",
        "filed_at": dt.date(2026, 3, 12),
        "reasons": [{"text": "补充提交的检查记录证明已按规定开展贷后检查。"}],
        "reviewers": ["赵刚", "孙丽", "周建国"],
        "panel": [{"member": "赵刚", "outcome": "exempt"}, {"member": "孙丽", "outcome": "exempt"},
                  {"member": "周建国", "outcome": "reduced", "reason": "记录补传时间存疑"}],
        "tally": {"exempt": 2, "reduced": 1, "liable": 0, "cast": 3},
    }
    data.update(overrides)
    return data


def case_summary(**overrides):
    """A case summary's data (a kind no longer issued; stored ones still render), with overrides."""
    data = {
        **COMMON,
        "doc_number": "济农商免汇〔2026〕12号",
        "committee": COMMITTEE,
        "enterprise": "济源市恒达机械配件有限公司",
        "loans": LOANS,
        "respondents": [
            {"name": "王晓明", "employee_no": "E1001", "branch": "沁园支行", "stages": ["pre_loan"],
             "outcome": "exempt", "liability_kind": "diligence", "doc_number": "济农商免认〔2026〕12号"},
            {"name": "陈志强", "employee_no": "E2001", "branch": "总行授信审批部", "stages": ["approval"],
             "outcome": "liable", "liability_kind": "management", "doc_number": "济农商免认〔2026〕14号"},
        ],
        "tolerance": TOLERANCE,
        "events": [{"at": dt.date(2025, 11, 3), "text": "立案"}],
    }
    data.update(overrides)
    return data


def batch_report(**overrides):
    return case_summary(**{**FORM, "doc_number": "济农商免评〔2026〕1号", "events": [], **overrides})


def investigation_report(**overrides):
    data = {
        **COMMON, **FORM, "doc_number": "济农商免调〔2026〕3号", "committee": {**COMMITTEE, "decided_at": dt.date(2026, 3, 2)},
        "enterprise": "济源市恒达机械配件有限公司", "loans": LOANS, "investigator": "赵六",
        "main_to": [COMMITTEE["name"]],
        "respondents": [{"respondent": PERSON, "statement": {"status": "filed", "text": ["本人已按规定尽职。"],
                                                            "at": dt.date(2026, 2, 20)},
                         "stages": [{"loan_no": "JY2023-00871", "stage": "pre_loan", "performed_on": dt.date(2023, 5, 4),
                                     "findings": ["经查，被评议人未对照纳税记录核实借款用途。"],
                                     "unperformed": [{"text": "核实借款用途和还款来源", "citation": "第十四条第（三）项",
                                                      "causal": True, "evidence": ["证据1（流水核对表）"]}],
                                     "violation": True}]},
                        {"respondent": {"name": "李娜", "employee_no": "E1002", "branch": "沁园支行"},
                         "statement": {"status": "declined"},
                         "stages": [{"loan_no": "JY2023-00871", "stage": "review", "findings": ["未发现违规或未履职情形。"]}]}],
        "evidence": [{"no": 1, "name": "流水核对表", "description": "申报收入与流水差异约46%"}],
        "tolerance": TOLERANCE,
    }
    data.update(overrides)
    return data


def publicity_notice(**overrides):
    data = {
        **COMMON, **FORM, "doc_number": "济农商免公〔2026〕3号", "committee": COMMITTEE,
        "main_to": ["济源农商银行各部室、各支行"], "enterprise": "济源市恒达机械配件有限公司", "loans": LOANS,
        "respondents": [{"name": "王晓明", "branch": "沁园支行", "outcome": "exempt", "liability_kind": "diligence"}],
        "period": {"start": dt.date(2026, 3, 9), "end": dt.date(2026, 3, 13), "days": 5},
        "objection_to": COMMITTEE["name"],
    }
    data.update(overrides)
    return data


def minutes(**overrides):
    data = {
        **COMMON, **FORM, "doc_number": "济农商免纪〔2026〕3号", "committee": COMMITTEE,
        "enterprise": "济源市恒达机械配件有限公司", "chair": "周建国",
        "present": [{"name": "周建国", "role": "chair"}, {"name": "钱七", "role": "member"}], "absent": ["孙八"],
        "recusals": [{"name": "王五", "reason": "办理过本案贷款的业务环节"}], "eligible": 3,
        "respondents": [{"respondent": "王晓明", "recommended": "exempt", "decided": "exempt",
                         "votes": [{"member": "周建国", "outcome": "exempt", "reason": "同意"},
                                   {"member": "钱七", "outcome": "exempt"}],
                         "tally": {"exempt": 2, "reduced": 0, "liable": 0, "cast": 2, "eligible": 3}}],
    }
    data.update(overrides)
    return data


def referral(**overrides):
    data = {
        **COMMON, **FORM, "doc_number": "济农商免移〔2026〕1号", "committee": COMMITTEE,
        "enterprise": "济源市恒达机械配件有限公司", "recipient": "人力资源部（问责部门）", "main_to": ["人力资源部（问责部门）"],
        "respondents": [{**PERSON, "outcome": "liable", "liability_kind": "diligence", "doc_number": "济农商免认〔2026〕12号",
                         "consequences": ["考核扣分按规定执行"]}],
        "documents": ["济农商免认〔2026〕12号"],
    }
    data.update(overrides)
    return data


def service_record(**overrides):
    data = {
        **COMMON, **FORM, "doc_number": "济农商免送〔2026〕1号", "committee": COMMITTEE, "respondent": PERSON,
        "served_doc_number": "济农商免认〔2026〕12号", "served_title": "尽职免责认定书", "method": "in_person",
        "served_on": dt.date(2026, 3, 10), "served_by": "周建国",
        "appeal": {"days": 5, "served_on": dt.date(2026, 3, 10), "deadline": dt.date(2026, 3, 17), "body": APPEAL_BODY},
    }
    data.update(overrides)
    return data


SAMPLES = {
    "investigation_report": investigation_report,
    "determination": determination,
    "publicity_notice": publicity_notice,
    "minutes": minutes,
    "appeal_record": appeal_record,
    "appeal_decision": appeal_decision,
    "referral": referral,
    "batch_report": batch_report,
    "service_record": service_record,
    "case_summary": case_summary,
}
PERSON_OF = {"investigation_report": lambda d: d["investigator"], "publicity_notice": lambda d: d["respondents"][0]["name"],
             "minutes": lambda d: d["chair"], "referral": lambda d: d["respondents"][0]["name"],
             "batch_report": lambda d: d["respondents"][0]["name"], "case_summary": lambda d: d["respondents"][0]["name"]}


def pdf_text(data: bytes, tmp_path: Path, page: int | None = None) -> str:
    """The text of a PDF (or of one page) by pdftotext, with all whitespace removed."""
    path = tmp_path / f"letter-{hashlib.sha256(data).hexdigest()[:12]}.pdf"
    path.write_bytes(data)
    pages = ["-f", str(page), "-l", str(page)] if page else []
    out = subprocess.run(["pdftotext", *pages, str(path), "-"], capture_output=True, text=True, check=True).stdout
    return re.sub(r"\s+", "", out)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def rendered():
    """Every kind rendered once in Chinese, with WeasyPrint's own warnings collected."""
    handler = _Collect()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        letters = {kind: render_letter(kind, make()) for kind, make in SAMPLES.items()}
    finally:
        logger.removeHandler(handler)
    return letters, [handler.format(r) for r in handler.records]


def test_rendering_logs_no_weasyprint_warning(rendered):
    _, warnings = rendered
    assert warnings == []


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_each_kind_renders_a_pdf_naming_its_doc_number_and_person(rendered, kind, tmp_path):
    letter = rendered[0][kind]
    assert letter.pdf.startswith(b"%PDF-")
    assert letter.sha256 == hashlib.sha256(letter.pdf).hexdigest()
    assert letter.template == f"letters/{kind}.html"
    assert re.fullmatch(r"[0-9a-f]{16}", letter.template_version)
    text = pdf_text(letter.pdf, tmp_path)
    data = SAMPLES[kind]()
    assert data["doc_number"] in text
    person = PERSON_OF[kind](data) if kind in PERSON_OF else data["respondent"]["name"]
    assert person in text


def test_determination_names_outcome_reasons_per_stage_tolerance_votes_and_appeal_from_service(rendered, tmp_path):
    text = pdf_text(rendered[0]["determination"].pdf, tmp_path)
    assert "尽职免责认定书" in text and text.startswith("济源农村商业银行股份有限公司")
    assert "济源农村商业银行尽职免责评议委员会济农商免认〔2026〕12号签发人：周建国" in text  # masthead, number
    assert "认定被评议人王晓明：免责（免除全部责任）" in text
    assert "尽职责任" in text
    assert "贷款JY2023-00871·贷前调查环节：免责认定依据：属于应予免责情形" in text
    assert "《实施细则（示范文本）》第八条第（二）项" in text and "查明事实：" in text
    assert "综合各环节，贷款JY2023-00871·贷前调查环节、贷款JY2023-00871·贷后管理环节的认定结论均为免责" in text
    assert "自本认定书送达之日起5个工作日内，向济源农村商业银行总行尽职免责申诉复核委员会提出书面申诉" in text
    assert "不得因被评议人申诉而加重其责任认定结果" in text
    assert "参加表决3人，其中同意免责3票" in text
    assert "5.01%" in text and "2.00%" in text and "3.01" in text
    assert "4,500,000.00" in text  # the total of the two loans
    assert "贷前调查、贷后管理" in text
    assert "抄送：人力资源部、合规部" in text and "济源农村商业银行办公室2026年3月9日印发" in text
    assert "送达回证送达文书尽职免责认定书（济农商免认〔2026〕12号）受送达人王晓明送达方式□直接送达" in text
    for code in ("P02", "PL03", "positive_list", "no_evidence_of_fault"):
        assert code not in text


def test_a_final_determination_cites_the_appeal_decision_and_offers_no_appeal():
    html = re.sub(r"<[^>]+>", "", letter_html("determination", final_determination()))
    assert "申诉复核决定（济农商总免复〔2026〕2号）" in html
    assert "最终认定被评议人王晓明" in html and "不再受理申诉" in html
    assert "申诉权利" not in html


def test_a_final_determination_with_appeal_rights_is_refused():
    with pytest.raises(LetterDataError, match="a final determination carries no appeal rights"):
        letter_html("determination", final_determination(appeal={"days": 5, "body": APPEAL_BODY}))
    with pytest.raises(LetterDataError, match="states the appeal rights"):
        letter_html("determination", determination(appeal=None))


def test_older_letter_data_still_renders():
    html = re.sub(r"<[^>]+>", "", letter_html("determination", older_determination()))
    assert "不可抗力直接导致借款人经营中断" in html and "2026年3月16日前" in html


def test_a_draft_is_watermarked_and_unnumbered(tmp_path):
    letter = render_letter("determination", determination(doc_number=pdf.DRAFT_NUMBER, draft=True))
    text = pdf_text(letter.pdf, tmp_path)
    assert "草稿" in text and "（草稿，未编号）" in text
    with pytest.raises(LetterDataError, match="a draft carries"):
        letter_html("determination", determination(draft=True))


def test_every_page_carries_the_running_header_and_page_x_of_y(rendered, tmp_path):
    letter = rendered[0]["determination"]
    pages = len(PdfReader(_as_file(letter.pdf, tmp_path)).pages)
    assert pages >= 2  # the sample is long enough to test the running header
    for page in range(1, pages + 1):
        text = pdf_text(letter.pdf, tmp_path, page)
        assert "济源农村商业银行股份有限公司" in text
        assert "济农商免认〔2026〕12号" in text
        assert f"第{page}页共{pages}页" in text


@pytest.mark.parametrize(("outcome", "shown"), [
    ("reduced", "减责（减轻责任）"),
    ("liable", "不予免责（不予免除责任）"),
])
def test_determination_shows_the_outcome_in_chinese(outcome, shown):
    html = letter_html("determination", determination(outcome=outcome))
    assert shown in re.sub(r"<[^>]+>", "", html)


def _pdffonts(data: bytes, tmp_path: Path) -> list[list[str]]:
    path = tmp_path / f"fonts-{hashlib.sha256(data).hexdigest()[:12]}.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()[2:]]


def test_embedded_fonts_are_the_noto_cjk_letter_faces_with_a_real_bold(rendered, tmp_path):
    letter = rendered[0]["determination"]
    rows = _pdffonts(letter.pdf, tmp_path)
    names = {row[0].split("+", 1)[1] for row in rows}
    # Only the letter faces derived from Noto CJK: no other face (e.g. a Latin font) is pulled in.
    assert names == {"Noto-Serif-CJK-SC-Letters", "Noto-Serif-CJK-SC-Letters-Bold", "Noto-Sans-CJK-SC-Letters-Bold"}
    assert all(row[-5] == "yes" and row[-4] == "yes" for row in rows), rows  # the "emb" and "sub" columns
    assert len(letter.pdf) < 300_000  # subsets of the letter faces, never whole 20 MB fonts


def test_a_character_outside_the_letter_faces_falls_back_to_the_installed_font(tmp_path):
    # 喆 and 堃 are not in GB 2312, 𠮷 is outside the Basic Multilingual Plane: names can hold them.
    respondent = {"name": "王喆𠮷堃", "employee_no": "E1001", "branch": "沁园支行"}
    letter = render_letter("determination", determination(respondent=respondent))
    assert "认定被评议人王喆𠮷堃：免责" in pdf_text(letter.pdf, tmp_path)
    names = {row[0].split("+", 1)[1] for row in _pdffonts(letter.pdf, tmp_path)}
    assert "Noto-Serif-CJK-SC" in names and "Noto-Serif-CJK-SC-Letters" in names


def test_the_letter_faces_are_derived_deterministically_from_the_installed_fonts(tmp_path):
    from fontTools.ttLib import TTFont

    faces = pdf.check_letter_fonts()
    assert [(f.role, f.family, f.weight) for f in faces] == [
        ("serif", "Noto Serif CJK SC", 400), ("serif", "Noto Serif CJK SC", 700), ("sans", "Noto Sans CJK SC", 700)]
    face = faces[0]
    assert face.path.parent == pdf.FONTS_DIR and face.path.is_file()
    assert face.source.endswith("NotoSerifCJK-Regular.ttc")
    sans = faces[2]  # the smallest face derives fastest: the same code derives all three
    again = tmp_path / sans.path.name
    fonts.derive_face(fonts.InstalledFace(200, sans.source, sans.index), sans.family, sans.weight, again)
    assert again.read_bytes() == sans.path.read_bytes()

    with TTFont(face.path) as font:
        assert font["name"].getDebugName(1) == "Noto Serif CJK SC Letters"
        assert 7_000 < len(font.getGlyphOrder()) < 9_000  # of 65,535 in the installed face
        assert "VORG" not in font and "vmtx" not in font
        cmap = font.getBestCmap()
    gb2312 = ("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多"
              "然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它"
              "头经长儿回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感")
    template_chars = "".join((pdf.LETTERS_DIR / name).read_text(encoding="utf-8")
                             for name in ("labels.json", "base.html"))
    expected = {c for c in gb2312 + template_chars + "〔〕（）：；、。，“”《》％0123456789AZaz" if c >= " "}
    assert not {c for c in expected if ord(c) not in cmap}


def test_the_letter_faces_have_the_installed_outlines_with_frequent_glyphs_first():
    from fontTools.pens.recordingPen import RecordingPen
    from fontTools.ttLib import TTFont

    face = pdf.check_letter_fonts()[0]
    with TTFont(face.path) as derived, TTFont(face.source, fontNumber=face.index, lazy=True) as installed:
        cmap, installed_cmap = derived.getBestCmap(), installed.getBestCmap()
        gid = {name: i for i, name in enumerate(derived.getGlyphOrder())}
        for char in "尽职免责认定书王晓明鑫0A，〔":
            drawn = []
            for font, glyph in ((derived, cmap[ord(char)]), (installed, installed_cmap[ord(char)])):
                pen = RecordingPen()
                font.getGlyphSet()[glyph].draw(pen)
                drawn.append((pen.value, font["hmtx"][glyph]))
            assert drawn[0] == drawn[1], char
        charset = derived["CFF "].cff.topDictIndex[0].charset
    # The letters' own text first, then the frequent hanzi (GB 2312 level 1), then the rest.
    assert gid[cmap[ord("尽")]] < 1_000 and 1_000 < gid[cmap[ord("晓")]] < 4_500 < gid[cmap[ord("鑫")]]
    # CID = glyph id, as in Noto CJK: PDF viewers map the glyph ids WeasyPrint writes through the charset.
    assert charset[1:] == [f"cid{i:05d}" for i in range(1, len(charset))]


def test_the_letter_faces_cover_gb2312_and_the_bold_ones_are_bold():
    from fontTools.pens.recordingPen import RecordingPen
    from fontTools.ttLib import TTFont

    gb2312 = set()
    for lead in range(0xB0, 0xF8):  # the hanzi rows
        for trail in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):
                gb2312.add(ord(bytes((lead, trail)).decode("gb2312")))
    assert len(gb2312) == 6763
    outlines = []
    for face in pdf.check_letter_fonts():
        with TTFont(face.path) as font:
            cmap = font.getBestCmap()
            assert not gb2312 - set(cmap), face
            assert font["OS/2"].usWeightClass == face.weight
            assert font["name"].getDebugName(2) == ("Bold" if face.weight == 700 else "Regular")
            pen = RecordingPen()
            font.getGlyphSet()[cmap[ord("认")]].draw(pen)
            outlines.append(pen.value)
    assert outlines[0] != outlines[1]  # a real bold face, not the regular outlines under a bold name


def test_the_stylesheet_names_the_installed_family_after_each_letter_face():
    text = render.stylesheet_text(pdf.check_letter_fonts())
    assert 'html { font-family: "Noto Serif CJK SC Letters", "Noto Serif CJK SC", serif; }' in text
    assert '"Noto Sans CJK SC Letters", "Noto Sans CJK SC", sans-serif; }' in text
    assert text.count("@font-face {") == 3 and 'src: url("fonts/Noto-Serif-CJK-SC-400-' in text


def test_pdf_metadata_comes_from_the_data(rendered, tmp_path):
    meta = PdfReader(_as_file(rendered[0]["determination"].pdf, tmp_path)).metadata
    assert meta.title == "尽职免责认定书 济农商免认〔2026〕12号"
    assert meta.author == "济源农村商业银行股份有限公司"
    assert "王晓明" in meta.subject
    assert meta.creation_date.date() == dt.date(2026, 3, 9)


def test_rendering_the_same_data_twice_gives_the_same_bytes(rendered):
    again = render_letter("determination", determination())
    assert again.sha256 == rendered[0]["determination"].sha256


def test_english_letters_use_english_labels(tmp_path):
    letter = render_letter("determination", determination(), locale="en")
    text = pdf_text(letter.pdf, tmp_path)
    assert "DeterminationofDue-DiligenceLiabilityExemption" in text
    assert "Exempt(exemptedfromallliability)" in text
    assert "Page1of" in text
    assert "within5workingdaysfromthedaythisletterisserved" in text


def test_a_correction_names_its_version_the_letter_it_supersedes_and_why():
    data = determination(version=2, supersedes="济农商免认〔2026〕9号", correction="贷款余额有误")
    html = letter_html("determination", data)
    assert "本文书为第 2 版，更正并取代文号为 济农商免认〔2026〕9号 的原文书" in html
    assert "更正原因：贷款余额有误" in html


def test_a_deviation_from_the_recommendation_shows_both_outcomes_and_the_reason():
    deviation = {"recommended": "reduced", "decided": "exempt", "reason": "损失已全部追回"}
    html = re.sub(r"<[^>]+>", "", letter_html("determination", determination(deviation=deviation)))
    assert "与系统建议结论不一致的说明" in html
    assert "减责" in html and "损失已全部追回" in html


def test_a_branch_without_sme_loans_is_shown_so():
    tolerance = {**TOLERANCE, "sme_ratio": None, "gap_pp": None, "within": True}
    assert "无普惠型小微企业贷款" in letter_html("determination", determination(tolerance=tolerance))


def test_data_is_escaped_so_it_cannot_inject_markup_or_fetch_anything():
    evil = '<img src="http://example.com/x.png">王晓明'
    respondent = {"name": evil, "employee_no": "E1001", "branch": "沁园支行"}
    html = letter_html("determination", determination(respondent=respondent))
    assert "<img" not in html
    assert "&lt;img src=&#34;http://example.com/x.png&#34;&gt;王晓明" in html


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_missing_keys_are_all_named(kind):
    data = SAMPLES[kind]()
    del data["doc_number"], data["committee"]
    with pytest.raises(LetterDataError) as excinfo:
        letter_html(kind, data)
    assert "doc_number: missing" in str(excinfo.value)
    assert "committee: missing" in str(excinfo.value)


def test_unknown_codes_are_refused():
    with pytest.raises(LetterDataError) as excinfo:
        letter_html("determination", determination(outcome="pardoned", stages=["audit"]))
    assert "outcome: input should be 'exempt', 'reduced' or 'liable', got 'pardoned'" in str(excinfo.value)
    assert "stages[0]: input should be 'marketing', 'acceptance', " in str(excinfo.value)
    assert "got 'audit'" in str(excinfo.value)


def test_an_invalid_letter_is_refused_with_every_problem_named():
    loans = [{**LOANS[0], "amount": 3000000.0}, {**LOANS[1], "balance": "about a million"}]
    respondent = {"name": " ", "employee_no": "E1001"}
    data = determination(loans=loans, respondent=respondent, issued_at="9 March 2026", sanctions="all")
    with pytest.raises(LetterDataError) as excinfo:
        render_letter("determination", data)
    assert str(excinfo.value).split("; ") == [
        "determination letter data: issued_at: expected a date (YYYY-MM-DD), got '9 March 2026'",
        "respondent.name: must not be blank, got ' '",
        "respondent.branch: missing",
        "loans[0].amount: expected a Decimal, an int or a numeric text, got 3000000.0",
        "loans[1].balance: not a number, got 'about a million'",
        "sanctions: expected a list, got 'all'",
    ]


def test_a_letter_needs_a_dict_of_data():
    with pytest.raises(LetterDataError, match="letter data must be a dict, got list"):
        letter_html("determination", [determination()])
    with pytest.raises(LetterDataError, match=r"^determination letter data: tolerance: missing$"):
        letter_html("determination", {k: v for k, v in determination().items() if k != "tolerance"})


def test_rendering_leaves_the_data_as_it_was_given():
    data = determination(issued_at="2026-03-09", unknown_key="kept")
    before = copy.deepcopy(data)
    render_letter("determination", data)
    assert data == before


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_the_stored_form_of_the_data_renders_the_same_letter(kind):
    # Letters are stored with their data as JSON: dates and amounts become texts, unknown keys stay.
    data = SAMPLES[kind]()
    stored = json.loads(json.dumps({**data, "issued_by": "chair"}, default=str))
    assert letter_html(kind, stored) == letter_html(kind, data)


def test_an_appeal_decision_may_not_worsen_the_outcome():
    with pytest.raises(LetterDataError, match="never worsen"):
        letter_html("appeal_decision", appeal_decision(appealed_outcome="reduced", new_outcome="liable"))


def test_an_upheld_appeal_keeps_the_appealed_outcome():
    html = letter_html("appeal_decision", appeal_decision(decision="upheld", new_outcome=None))
    assert "维持原认定结论" in html
    assert "认定被评议人李娜：<strong class=\"verdict verdict-reduced\">减责</strong>" in html


def test_a_letter_may_not_be_issued_before_its_decision():
    committee = {"name": "评议委员会", "decided_at": dt.date(2026, 3, 10)}
    with pytest.raises(LetterDataError, match="issued_at: 2026-03-09 is before"):
        letter_html("determination", determination(committee=committee))


def test_unknown_kind_and_locale_are_refused():
    with pytest.raises(LetterDataError, match="unknown letter kind"):
        letter_html("memo", determination())
    with pytest.raises(LetterDataError, match="unknown locale"):
        letter_html("determination", determination(), locale="fr")


def test_a_missing_font_raises_instead_of_rendering_boxes(monkeypatch):
    monkeypatch.setenv("MIANZE_LETTER_FONT", "Mianze Nonexistent Serif")
    with pytest.raises(LetterFontMissing) as excinfo:
        render_letter("determination", determination())
    message = str(excinfo.value)
    assert "Mianze Nonexistent Serif" in message
    assert "scripts/setup" in message and "fonts-noto-cjk" in message


def test_a_font_without_chinese_is_missing_too():
    with pytest.raises(LetterFontMissing, match="DejaVu Sans.*not installed with Chinese coverage"):
        fonts.installed_faces("DejaVu Sans")


def test_a_letter_face_that_cannot_be_derived_raises_instead_of_rendering(tmp_path):
    broken = tmp_path / "broken.otf"
    broken.write_bytes(b"OTTO" + bytes(100))
    face = fonts.InstalledFace(80, str(broken), 0)
    with pytest.raises(LetterFontMissing, match="broken.otf.*scripts/setup"):
        fonts.derive_face(face, pdf.LETTER_FONT, 400, tmp_path / "fonts" / "face.otf")
    assert not (tmp_path / "fonts" / "face.otf").exists()


def test_harfbuzz_subset_is_loaded():
    from weasyprint.text.ffi import harfbuzz_subset

    assert harfbuzz_subset is not None
    render.check_subsetter()


@pytest.mark.parametrize("url", [
    "http://example.com",
    "https://example.com/letter.css",
    "/etc/passwd",
    "file:///etc/passwd",
    (pdf.LETTERS_DIR / ".." / ".." / "pyproject.toml").as_uri(),
    (pdf.LETTERS_DIR / "missing.png").as_uri(),
    "file://evil.example.com" + str(pdf.LETTERS_DIR / "letter.css"),
    "data:text/css,body{}",
])
def test_the_url_fetcher_refuses_anything_but_the_letter_assets(url):
    with pytest.raises(LetterURLRefused):
        LetterURLFetcher()(url)


def test_the_url_fetcher_serves_the_letter_stylesheet():
    response = LetterURLFetcher()((pdf.LETTERS_DIR / "letter.css").as_uri())
    try:
        assert response.content_type == "text/css"
        assert b"@page" in response.read()
    finally:
        response.close()


def test_the_url_fetcher_serves_the_letter_faces():
    path = pdf.check_letter_fonts()[0].path
    response = LetterURLFetcher()(path.as_uri())
    try:
        assert response.read(4) == b"OTTO"
    finally:
        response.close()


def test_a_resource_outside_the_letters_folder_stops_the_rendering():
    html = '<html><body><img src="file:///etc/passwd"><p>x</p></body></html>'
    with pytest.raises(LetterURLRefused, match="/etc/passwd"):
        render.write_pdf(html)


def test_a_page_image_of_the_determination_is_saved_for_review(rendered, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "determination.pdf"
    source.write_bytes(rendered[0]["determination"].pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(source), str(ARTIFACTS / "determination")],
                   check=True)
    image = ARTIFACTS / "determination.png"
    assert image.read_bytes().startswith(b"\x89PNG")


def test_render_html_bare_renders_the_same_html(rendered):
    assert pdf.render_html_bare(rendered[0]["case_summary"].html).startswith(b"%PDF-")


def _as_file(data: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "reader.pdf"
    path.write_bytes(data)
    return path
