"""The case file (案件卷宗): one PDF with the cover and contents, every current document as issued, the
case's audit trail and its evidence list — in Chinese, without internal codes; refused to a respondent."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlmodel import Session

from tests.factories import drive, liable_officer
from tests.letters_text import pdf_text, problems
from workflow.domain.errors import PermissionDenied
from workflow.models import Case
from workflow.services import case_file


def test_the_case_file_binds_the_documents_the_trail_and_the_evidence(bank):
    case_id = drive(bank, "final", facts_for=liable_officer)
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        docs = [(d.kind, d.doc_number, len(PdfReader(io.BytesIO(d.pdf)).pages))
                for d in case_file.current_documents(s, case)]
        number = case.number
        body = case_file.case_file_pdf(s, case, bank.user(s, "auditor"))
        with pytest.raises(PermissionDenied):
            case_file.case_file_pdf(s, case, bank.user(s, "officer"))  # a respondent: their own part only
        s.rollback()
    reader = PdfReader(io.BytesIO(body))
    own_pages = len(reader.pages) - sum(pages for _, _, pages in docs)
    assert own_pages >= 3  # cover and contents, the trail, the evidence list
    text = pdf_text(body)
    flat = "".join(text.split())
    assert "案件卷宗" in flat and number in flat and "卷内目录" in flat
    assert "案件办理记录" in flat and "已立案" in flat and "已认定" in flat and "证据材料清单" in flat
    for _, doc_number, _ in docs:
        assert doc_number in flat
    kinds = {kind for kind, _, _ in docs}
    assert {"investigation_report", "minutes", "determination", "appeal_record", "appeal_decision"} <= kinds
    assert "尽职免责认定书" in flat and "尽职调查报告" in flat  # the documents themselves, bound in
    assert problems(text) == []
    titles = [o.title for o in reader.outline if not isinstance(o, list)]
    assert titles[0] == "案件卷宗封面、目录、办理记录与证据清单" and len(titles) == len(docs) + 1  # a bookmark each
