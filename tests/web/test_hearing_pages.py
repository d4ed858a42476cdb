"""The right to be heard in the browser's pages: the respondent sees their deadline and declines in writing;
the investigator is told whose statement is awaited; the committee reads each one's position."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from tests.factories import drive, record_all_facts
from tests.web.support import login, post, set_passwords, version_of
from workflow.db import unit_of_work
from workflow.models import Case, Respondent
from workflow.services import cases


def test_a_respondent_declines_the_investigator_waits_for_the_rest_and_the_committee_reads_positions(
        bank, app_for, monkeypatch):
    set_passwords(bank.engine)
    case_id = drive(bank, "investigating")
    record_all_facts(bank, case_id)
    app = app_for(bank.engine)

    officer = app.test_client()
    login(officer, "officer")
    page = officer.get(f"/cases/{case_id}/statement").get_data(as_text=True)
    assert 'id="statement-deadline"' in page and "银行内部政策默认期限" in page and 'id="decline-statement"' in page
    r = post(officer, f"/cases/{case_id}/statement/decline",
             {"note": "对调查事实无异议", "expected_version": str(version_of(bank.engine, case_id))})
    assert r.status_code == 302
    page = officer.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "书面表示不提交陈述" in page
    assert 'id="decline-statement"' not in officer.get(f"/cases/{case_id}/statement").get_data(as_text=True)

    investigator = app.test_client()
    login(investigator, "investigator")
    page = investigator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="action-submit"' not in page and "尚在等待被评议人于陈述期限内提交或放弃免责陈述" in page  # why not yet
    r = post(investigator, f"/cases/{case_id}/submit",
             {"expected_version": str(version_of(bank.engine, case_id)), "confirm": "1"})
    refused = r.get_data(as_text=True)
    assert r.status_code == 409
    assert "尚在等待被评议人于陈述期限内提交或放弃免责陈述" in refused and "李四" in refused and "王五" in refused
    assert "张三" not in refused.split("尚在等待", 1)[1][:200]  # the officer declined: not awaited
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "investigating"
        due = s.exec(select(Respondent.statement_due).where(Respondent.case_id == case_id)).first()

    with unit_of_work(bank.engine) as s:
        cases.file_statement(s, s.get(Case, case_id), bank.user(s, "reviewer"), "审查环节已按规定核实全部材料。")
    # The approver lets the deadline pass: the pages run on the day after it.
    from workflow.web import cases as web_cases

    monkeypatch.setattr(web_cases, "today", lambda: due + timedelta(days=1))
    r = post(investigator, f"/cases/{case_id}/submit",
             {"expected_version": str(version_of(bank.engine, case_id)), "confirm": "1"})
    assert r.status_code == 302, r.get_data(as_text=True)

    member = app.test_client()
    login(member, "member1")
    page = member.get(f"/cases/{case_id}").get_data(as_text=True)
    with Session(bank.engine) as s:
        rid = {r.user_id: r.id for r in s.exec(select(Respondent).where(Respondent.case_id == case_id))}
    for who, position in (("officer", "declined"), ("reviewer", "filed"), ("approver", "lapsed")):
        assert f'id="statement-{rid[bank.users[who]]}" data-position="{position}"' in page
    assert "逾期未提交陈述" in page and "审查环节已按规定核实全部材料。" in page
    vote = member.get(f"/cases/{case_id}/vote").get_data(as_text=True)
    assert "书面表示不提交陈述" in vote and "逾期未提交陈述" in vote
