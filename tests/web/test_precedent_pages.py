"""The precedent pages: proposed from a final case, approved by a second person, searched, and shown beside
the facts form of a case with the same code."""

from __future__ import annotations

import re

from sqlmodel import Session, select

from tests.factories import drive, liable_officer, make_bank, open_case
from tests.web.support import login, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import AccessLog, Case, LoanStage, Precedent, Respondent
from workflow.services import cases


def _client(bank, app_for, username):
    client = app_for(bank.engine).test_client()
    assert login(client, username).status_code == 302
    return client


def test_a_chair_proposes_an_administrator_approves_and_the_facts_form_of_a_like_case_lists_it(sqlite_engine,
                                                                                               app_for):
    bank = make_bank(sqlite_engine, n_loans=2, loans_per_enterprise=1)
    final = drive(bank, "final", facts_for=liable_officer, loan_ids=[bank.loans[0]])
    set_passwords(sqlite_engine)
    chair = _client(bank, app_for, "chair")
    page = chair.get(f"/cases/{final}").get_data(as_text=True)
    with unit_of_work(sqlite_engine) as s:
        case = s.get(Case, final)
        r = s.exec(select(Respondent).where(Respondent.case_id == final,
                                            Respondent.user_id == bank.users["officer"])).one()
        version, rid = case.version, r.id
    assert f'id="propose-precedent-{rid}"' in page
    response = post(chair, f"/precedents/propose/{final}", {"respondent_id": rid, "expected_version": version})
    assert response.status_code == 302
    with unit_of_work(sqlite_engine) as s:
        pid = s.exec(select(Precedent.id)).one()
    shown = chair.get(f"/precedents/{pid}").get_data(as_text=True)
    assert 'id="why-not-decide"' in shown and "approve-precedent" not in shown  # the proposer may not approve
    assert post(chair, f"/precedents/{pid}/approve").status_code == 403
    officer = _client(bank, app_for, "officer")
    assert officer.get(f"/precedents/{pid}").status_code == 403  # a proposal is not yet guidance
    admin = _client(bank, app_for, "admin")
    assert post(admin, f"/precedents/{pid}", {"title": "借款用途未核实", "reasoning": "未核实用途且资金被挪用",
                                              "findings_0": "经办人未核实借款用途。"}).status_code == 302
    assert post(admin, f"/precedents/{pid}/approve").status_code == 302
    found = officer.get("/precedents/?code=PL03").get_data(as_text=True)
    assert f'data-precedent="{pid}"' in found and "借款用途未核实" in found
    assert f'data-precedent="{pid}"' not in officer.get("/precedents/?code=P02").get_data(as_text=True)
    body = officer.get(f"/precedents/{pid}").get_data(as_text=True).split('id="precedent-title"', 1)[1]
    assert [name for name in ("张三", "示范小微制造有限公司", "L2024-0001", "一网点") if name in body] == []

    # A second case, investigated: its pre-loan facts form, once PL03 is recorded unperformed, lists the precedent.
    other = open_case(bank, loan_ids=[bank.loans[1]])
    with unit_of_work(sqlite_engine) as s:
        cases.assign_investigator(s, s.get(Case, other), bank.user(s, "chair"), bank.users["investigator"])
        r2 = s.exec(select(Respondent).where(Respondent.case_id == other,
                                             Respondent.user_id == bank.users["officer"])).one()
        from workflow.services import investigation

        facts = liable_officer(r2, LoanStage(stage="pre_loan"))
        investigation.record_facts(s, s.get(Case, other), bank.user(s, "investigator"), r2.id, bank.loans[1],
                                   "pre_loan", facts)
        r2_id = r2.id
    investigator = _client(bank, app_for, "investigator")
    form = investigator.get(f"/cases/{other}/facts/{r2_id}/{bank.loans[1]}/pre_loan").get_data(as_text=True)
    assert re.search(rf'class="similar-precedent" data-precedent="{pid}"', form)
    review = investigator.get(f"/cases/{other}/facts/{r2_id}/{bank.loans[1]}/review")
    assert review.status_code in (200, 404) and f'data-precedent="{pid}"' not in review.get_data(as_text=True)


def test_the_api_lists_approved_precedents_by_rule_code_without_identifiers(sqlite_engine, app_for):
    from workflow.services import guidance, tokens

    bank = make_bank(sqlite_engine)
    final = drive(bank, "final", facts_for=liable_officer)
    with unit_of_work(sqlite_engine) as s:
        r = s.exec(select(Respondent).where(Respondent.case_id == final,
                                            Respondent.user_id == bank.users["officer"])).one()
        pid = guidance.propose(s, s.get(Case, final), bank.user(s, "chair"), r.id).id
        guidance.approve(s, pid, bank.user(s, "admin"))
        token = tokens.create(s, None, bank.users["officer"], "guidance")[1]
    client = app_for(sqlite_engine).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    found = client.get("/api/v1/precedents?code=PL03&stage=pre_loan", headers=headers)
    assert found.status_code == 200 and [p["id"] for p in found.json["items"]] == [pid]
    item = found.json["items"][0]
    assert item["branch"] == "一分行" and item["outcome"] == "liable" and "PL03" in item["codes"]
    assert [n for n in ("张三", "示范小微制造有限公司", "L2024-0001") if n in found.get_data(as_text=True)] == []
    assert client.get("/api/v1/precedents?code=N01", headers=headers).json["items"] == []
    assert client.get("/api/v1/precedents?stage=nowhere", headers=headers).status_code == 400


def test_the_booklet_is_a_chinese_pdf_with_its_cjk_fonts_embedded_and_the_workbook_is_in_chinese(sqlite_engine,
                                                                                                 app_for):
    import io

    from openpyxl import load_workbook
    from pypdf import PdfReader

    from workflow.services import guidance

    bank = make_bank(sqlite_engine)
    final = drive(bank, "final", facts_for=liable_officer)
    with unit_of_work(sqlite_engine) as s:
        r = s.exec(select(Respondent).where(Respondent.case_id == final,
                                            Respondent.user_id == bank.users["officer"])).one()
        pid = guidance.propose(s, s.get(Case, final), bank.user(s, "chair"), r.id).id
        guidance.approve(s, pid, bank.user(s, "admin"))
    set_passwords(sqlite_engine)
    officer = _client(bank, app_for, "officer")
    assert officer.get("/precedents/booklet.pdf?code=PL03").status_code == 302  # a GET only returns to the search
    refused = post(officer, "/precedents/booklet.pdf", {"code": "PL03"}, follow_redirects=True)
    assert 'class="flash error"' in refused.get_data(as_text=True)  # no reason: refused, nothing printed or logged
    response = post(officer, "/precedents/booklet.pdf", {"code": "PL03", "reason": "学习同类案例"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(response.data))
    fonts = {}
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                d = descendant.get_object().get("/FontDescriptor")
                if d is not None:
                    d = d.get_object()
                    fonts[str(d["/FontName"])] = any(k in d for k in ("/FontFile", "/FontFile2", "/FontFile3"))
    assert fonts and all(fonts.values()), fonts  # every font is embedded
    text = "".join(page.extract_text() for page in reader.pages)
    assert "尽职免责引导案例汇编" in text and "贷前调查" in text and "PL03" in text and "不予免责" in text
    words = set(re.findall(r"[A-Za-z]{2,}", re.sub(r"\b[A-Z]{1,2}\d{2}\b", "", text)))
    assert words == set(), words  # no English words or internal codes besides the rule codes
    assert [n for n in ("张三", "示范小微制造有限公司", "L2024-0001") if n in text] == []
    workbook = load_workbook(io.BytesIO(post(officer, "/precedents/export.xlsx", {"code": "PL03", "reason": "整理案例"}).data))
    with Session(sqlite_engine) as s:
        logged = [(e.target, e.details["reason"], e.details["code"])
                  for e in s.exec(select(AccessLog).where(AccessLog.action == "export").order_by(AccessLog.id))]
    assert logged == [("precedents.pdf", "学习同类案例", "PL03"), ("precedents.xlsx", "整理案例", "PL03")]
    assert workbook.sheetnames == ["引导案例", "各环节"]
    rows = list(workbook["引导案例"].iter_rows(min_row=2, max_row=2, values_only=True))
    assert rows[0][2] == "一分行" and rows[0][9] == "不予免责"
