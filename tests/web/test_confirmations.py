"""Irreversible steps in the web UI are confirmed first: the first POST only says what will happen (who is told,
what is issued, what can no longer change) and changes nothing; the POST that carries confirm=1 acts."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from tests.factories import TODAY, drive, hear_all, liable_officer, record_all_facts
from tests.web.support import login, post, set_passwords, version_of
from workflow.db import unit_of_work
from workflow.models import AuditHead, Case, Letter, Respondent


def _investigated(bank) -> int:
    case_id = drive(bank, "investigating")
    record_all_facts(bank, case_id, None, TODAY)
    hear_all(bank, case_id)
    return case_id


def _voted(bank) -> int:
    from workflow.services import cases

    case_id = drive(bank, "under_review")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for member in ("member1", "member2", "chair"):
            for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
                cases.record_vote(s, case, bank.user(s, member), r.id, r.recommended_outcome)
    return case_id


def _letters_issued(bank) -> int:
    from workflow.services import letters

    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"), today=TODAY)
    return case_id


def _letter_count(s, case_id: int) -> int:
    return len(s.exec(select(Letter.id).where(Letter.case_id == case_id)).all())


# step, who, how the case is prepared, path, extra form fields, the confirmation's own words, what acting does
STEPS = [
    ("submit", "investigator", _investigated, "submit", {}, "免责认定委员会", "under_review"),
    ("determine", "chair", _voted, "determine", {}, "表决结束", "determined"),
    ("issue_letters", "chair", lambda bank: drive(bank, "determined"), "letters", {}, "评议会议纪要", None),
    ("start_publicity", "chair", _letters_issued, "publicity", {}, "公示期", "in_publicity"),
    ("refer", "chair", lambda bank: drive(bank, "final", facts_for=liable_officer), "refer", {}, "移交问责函",
     "referred"),
    ("close", "chair", lambda bank: drive(bank, "final"), "close", {}, "已结案件只读", "closed"),
    ("withdraw", "chair", lambda bank: drive(bank, "investigating"), "withdraw", {"reason": "贷款已收回"},
     "不作认定即告终止", "withdrawn"),
]


@pytest.mark.parametrize("step,who,prepare,path,extra,words,after", STEPS, ids=[s[0] for s in STEPS])
def test_an_irreversible_step_shows_what_will_happen_and_acts_only_when_confirmed(bank, app_for, step, who, prepare,
                                                                                  path, extra, words, after):
    case_id = prepare(bank)
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, who)
    with Session(bank.engine) as s:
        state, seq, letters = s.get(Case, case_id).state, s.get(AuditHead, 1).seq, _letter_count(s, case_id)
    form = {"expected_version": str(version_of(bank.engine, case_id)), **extra}

    response = post(client, f"/cases/{case_id}/{path}", form)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "此步骤不可撤回" in page and "通知对象" in page and "此后不能再更改的内容" in page
    assert words in page
    assert 'name="confirm" value="1"' in page and 'id="confirm-step"' in page
    for name, value in form.items():  # the confirming POST carries what was posted, the version included
        assert f'name="{name}" value="{value}"' in page
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == state
        assert s.get(AuditHead, 1).seq == seq
        assert _letter_count(s, case_id) == letters

    response = post(client, f"/cases/{case_id}/{path}", {**form, "confirm": "1"})
    assert response.status_code == 302
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == (after or state)
        assert s.get(AuditHead, 1).seq > seq
        if step == "issue_letters":
            assert _letter_count(s, case_id) > letters


def test_the_confirmation_speaks_the_users_language(bank, app_for):
    case_id = _investigated(bank)
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, "investigator")
    post(client, "/language", {"locale": "en"})
    response = post(client, f"/cases/{case_id}/submit", {"expected_version": str(version_of(bank.engine, case_id))})
    page = response.get_data(as_text=True)
    assert "This step cannot be undone" in page and "Yes, submit the investigation" in page
