"""The letters in the browser: the documents' form an administrator sets, previews, service, 签收, waivers,
and the facts form's written findings."""

from __future__ import annotations

from sqlmodel import Session, select

from tests.factories import TODAY, drive
from tests.letters_text import pdf_text
from tests.web.support import login, post, set_passwords, version_of
from workflow.models import Case, DocumentForm, DocumentOrgan, LetterService, Respondent
from workflow.services import letters


def _client(bank, app_for, username):
    client = app_for(bank.engine).test_client()
    assert login(client, username).status_code == 302
    return client


def _respondent(bank, case_id, username):
    with Session(bank.engine) as s:
        return s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                               Respondent.user_id == bank.users[username])).one()


def test_a_head_office_administrator_sets_the_documents_form_and_a_branch_administrator_only_sees_it(bank, app_for):
    set_passwords(bank.engine)
    admin = _client(bank, app_for, "admin")
    page = admin.get("/admin/documents/").get_data(as_text=True)
    assert 'id="not-configured"' in page and "示范商业银行" in page and "一分" in page
    assert post(admin, "/admin/documents/", {"bank_name": "", "cc": ""}).status_code == 400
    assert post(admin, "/admin/documents/", {"bank_name": "中原示范商业银行股份有限公司",
                                             "cc": "人力资源部，合规部"}).status_code == 302
    response = post(admin, f"/admin/documents/organs/{bank.branches['T1']}",
                    {"short_name": "一分", "committee_name": "一分行尽职免责评议委员会",
                     "appeal_committee_name": "一分行申诉复核委员会", "signatory": "李行长", "printed_by": ""})
    assert response.status_code == 302
    with Session(bank.engine) as s:
        assert s.get(DocumentForm, 1).cc == "人力资源部、合规部"
        assert s.get(DocumentOrgan, bank.branches["T1"]).signatory == "李行长"
    page = admin.get("/admin/documents/").get_data(as_text=True)
    assert 'id="not-configured"' not in page and "中原示范商业银行股份有限公司" in page


def test_the_chair_previews_and_issues_the_officer_acknowledges_and_waives_in_the_browser(bank, app_for):
    set_passwords(bank.engine)
    case_id = drive(bank, "determined")
    chair = _client(bank, app_for, "chair")
    page = chair.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="preview-minutes"' in page and 'id="preview-publicity_notice"' in page
    draft = chair.get(f"/cases/{case_id}/preview/minutes")
    assert draft.status_code == 200 and draft.mimetype == "application/pdf"
    assert "草稿" in pdf_text(draft.data)
    assert post(chair, f"/cases/{case_id}/letters", {"expected_version": version_of(bank.engine, case_id), "confirm": "1"}
                ).status_code == 302
    assert post(chair, f"/cases/{case_id}/publicity", {"expected_version": version_of(bank.engine, case_id),
                                                "confirm": "1"}
                ).status_code == 302
    officer = _respondent(bank, case_id, "officer")
    reviewer = _respondent(bank, case_id, "reviewer")
    with Session(bank.engine) as s:
        windows = letters.appeal_windows(s, s.get(Case, case_id))
    page = chair.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'id="serve-{reviewer.id}"' in page and "未送达" in page
    response = post(chair, f"/cases/{case_id}/letters/{windows[reviewer.id].letter_id}/service",
                    {"expected_version": version_of(bank.engine, case_id), "method": "post",
                     "served_on": TODAY.isoformat(), "served_by": "挂号信"}, follow_redirects=True)
    assert response.status_code == 200 and "认定书送达情况已登记" in response.get_data(as_text=True)

    client = _client(bank, app_for, "officer")
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="acknowledge"' in page
    response = post(client, f"/cases/{case_id}/letters/{windows[officer.id].letter_id}/acknowledge",
                    {"expected_version": version_of(bank.engine, case_id)}, follow_redirects=True)
    assert "您已签收认定书" in response.get_data(as_text=True)
    with Session(bank.engine) as s:
        service = s.exec(select(LetterService).where(LetterService.respondent_id == officer.id)).one()
        assert (service.method, service.served_on) == ("in_app", TODAY)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    row = page[page.index(f'id="window-{officer.id}"'):]
    assert f"{service.appeal_deadline.year}年{service.appeal_deadline.month}月{service.appeal_deadline.day}日" \
        in row[:row.index("</tr>")]
    assert client.get(f"/cases/{case_id}/waive").status_code == 200
    assert post(client, f"/cases/{case_id}/waive", {"expected_version": version_of(bank.engine, case_id),
                                                     "statement": ""}).status_code == 400
    assert post(client, f"/cases/{case_id}/waive", {"expected_version": version_of(bank.engine, case_id),
                                                     "statement": "对认定结论无异议，放弃申诉。"}).status_code == 302
    assert "已放弃申诉" in client.get(f"/cases/{case_id}").get_data(as_text=True)


def test_the_facts_form_refuses_a_stage_without_written_findings(bank, app_for):
    set_passwords(bank.engine)
    case_id = drive(bank, "investigating")
    officer = _respondent(bank, case_id, "officer")
    client = _client(bank, app_for, "investigator")
    url = f"/cases/{case_id}/facts/{officer.id}/{bank.loans[0]}/pre_loan"
    page = client.get(url).get_data(as_text=True)
    assert 'id="findings"' in page and "our wording" not in page and "示范文本" in page
    response = post(client, url, {"expected_version": version_of(bank.engine, case_id), "findings": " "})
    assert response.status_code == 400 and "请填写查明事实" in response.get_data(as_text=True)
    response = post(client, url, {"expected_version": version_of(bank.engine, case_id),
                                  "findings": "经查，贷前调查按规定开展。\n走访记录齐全。"})
    assert response.status_code == 302
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "走访记录齐全" in page
