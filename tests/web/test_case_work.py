"""Case work in the web UI: conflicts, form errors, evidence checks, appeals that can only improve, inboxes."""

from __future__ import annotations

from sqlmodel import Session, select

from tests.factories import drive
from tests.web.support import login, post, set_passwords, version_of
from workflow.models import Appeal, AuditHead, Case, Evidence, Respondent


def _signed_in(bank, app_for, username):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def test_acting_on_a_case_someone_else_just_changed_shows_a_conflict_page_and_saves_nothing(bank, app_for):
    case_id = drive(bank, "under_review")
    client = _signed_in(bank, app_for, "member1")
    seen = version_of(bank.engine, case_id)
    other = _signed_in(bank, app_for, "member2")
    with Session(bank.engine) as s:
        rids = s.exec(select(Respondent.id).where(Respondent.case_id == case_id)).all()
    votes = {f"outcome_{r}": "exempt" for r in rids}
    assert post(other, f"/cases/{case_id}/vote", {"expected_version": str(seen), **votes}).status_code == 302
    with Session(bank.engine) as s:
        before = s.get(AuditHead, 1).seq
    response = post(client, f"/cases/{case_id}/vote", {"expected_version": str(seen), **votes})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "案件已发生变化" in page and "重新加载案件" in page
    with Session(bank.engine) as s:
        assert s.get(AuditHead, 1).seq == before


def test_a_vote_form_without_an_outcome_shows_the_error_next_to_the_field_and_saves_nothing(bank, app_for):
    case_id = drive(bank, "under_review")
    client = _signed_in(bank, app_for, "member1")
    with Session(bank.engine) as s:
        rids = s.exec(select(Respondent.id).where(Respondent.case_id == case_id)).all()
    data = {"expected_version": str(version_of(bank.engine, case_id)), f"outcome_{rids[0]}": "exempt"}
    response = post(client, f"/cases/{case_id}/vote", data)
    assert response.status_code == 400
    assert f'id="error-outcome_{rids[1]}"' in response.get_data(as_text=True)
    with Session(bank.engine) as s:
        from workflow.models import Vote

        assert s.exec(select(Vote).where(Vote.member_id == bank.users["member1"])).all() == []


def test_the_chair_must_give_a_reason_for_deviating_from_the_recommendation(bank, app_for):
    case_id = drive(bank, "under_review")
    votes = {}
    with Session(bank.engine) as s:
        rids = s.exec(select(Respondent.id).where(Respondent.case_id == case_id)).all()
    for member in ("member1", "member2", "chair"):
        c = _signed_in(bank, app_for, member)
        votes = {f"outcome_{r}": "reduced" for r in rids}
        assert post(c, f"/cases/{case_id}/vote",
                    {"expected_version": str(version_of(bank.engine, case_id)), **votes}).status_code == 302
    chair = _signed_in(bank, app_for, "chair")
    response = post(chair, f"/cases/{case_id}/determine", {"expected_version": str(version_of(bank.engine, case_id))})
    assert response.status_code == 400
    assert f'id="error-deviation_{rids[0]}"' in response.get_data(as_text=True)
    reasons = {f"deviation_{r}": "贷后检查流于形式" for r in rids} | {"confirm": "1"}
    response = post(chair, f"/cases/{case_id}/determine",
                    {"expected_version": str(version_of(bank.engine, case_id)), **reasons})
    assert response.status_code == 302
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "determined"
        assert {r.deviation_reason for r in s.exec(select(Respondent).where(Respondent.case_id == case_id))} == \
            {"贷后检查流于形式"}


def test_an_upload_whose_content_does_not_match_its_type_is_refused_next_to_the_file_field(bank, app_for):
    case_id = drive(bank, "investigating")
    client = _signed_in(bank, app_for, "investigator")
    from io import BytesIO

    response = post(client, f"/cases/{case_id}/evidence",
                    {"expected_version": "1", "file": (BytesIO(b"not a pdf"), "report.pdf", "application/pdf")},
                    content_type="multipart/form-data")
    assert response.status_code == 400
    assert 'id="error-file"' in response.get_data(as_text=True)
    with Session(bank.engine) as s:
        assert s.exec(select(Evidence)).all() == []


def test_the_appeal_vote_offers_only_outcomes_less_severe_than_the_appealed_one(bank, app_for):
    from tests.factories import liable_officer

    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    client = _signed_in(bank, app_for, "appeal")
    with Session(bank.engine) as s:
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()
    assert appeal.appealed_outcome == "liable"
    page = client.get(f"/cases/{case_id}/appeals/{appeal.id}/vote").get_data(as_text=True)
    assert 'value="reduced"' in page and 'value="exempt"' in page and 'option value="liable"' not in page


def test_the_panel_votes_on_its_pages_and_the_chair_signs_once_the_quorum_is_reached(bank, app_for):
    from tests.factories import liable_officer

    case_id = drive(bank, "appeal_review", facts_for=liable_officer)
    with Session(bank.engine) as s:
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()
    chair = _signed_in(bank, app_for, "appeal_chair")
    decide = f"/cases/{case_id}/appeals/{appeal.id}/decide"
    page = chair.get(decide).get_data(as_text=True)
    assert 'id="no-quorum"' in page and 'id="decide" disabled' in page
    refused = post(chair, decide, {"expected_version": str(version_of(bank.engine, case_id)), "reason": "维持"})
    assert refused.status_code == 409  # the chair alone cannot decide
    for member in ("appeal", "appeal2", "appeal_chair"):
        client = chair if member == "appeal_chair" else _signed_in(bank, app_for, member)
        vote = f"/cases/{case_id}/appeals/{appeal.id}/vote"
        if member == "appeal":  # a member sees nobody's vote before voting
            assert 'id="panel-tally"' not in client.get(vote).get_data(as_text=True)
        response = post(client, vote, {"expected_version": str(version_of(bank.engine, case_id)),
                                       "decision": "altered", "new_outcome": "reduced", "reason": "情节较轻"})
        assert response.status_code == 302, member
    page = chair.get(decide).get_data(as_text=True)
    assert 'id="panel-tally"' in page and 'id="no-quorum"' not in page
    response = post(chair, decide, {"expected_version": str(version_of(bank.engine, case_id)),
                                    "reason": "经复核，改为减责。"})
    assert response.status_code == 302
    with Session(bank.engine) as s:
        decided = s.get(Appeal, appeal.id)
        assert (decided.decision, decided.new_outcome) == ("altered", "reduced")


def test_a_credit_officer_sees_the_case_waiting_for_their_statement_and_then_no_more(bank, app_for):
    case_id = drive(bank, "investigating")
    client = _signed_in(bank, app_for, "officer")
    inbox = client.get("/inbox").get_data(as_text=True)
    assert f"/cases/{case_id}" in inbox and 'id="nav-waiting">1<' in inbox
    post(client, f"/cases/{case_id}/statement", {"expected_version": str(version_of(bank.engine, case_id)),
                                                   "statement": "已尽职"})
    assert f"/cases/{case_id}" not in client.get("/inbox").get_data(as_text=True)
    assert f"/cases/{case_id}" in client.get("/inbox?tab=all").get_data(as_text=True)


def test_the_inbox_finds_cases_by_loan_number_enterprise_and_person_and_filters_by_state(bank, app_for):
    case_id = drive(bank, "registered")
    client = _signed_in(bank, app_for, "auditor")
    for q in ("L2024-0001", "示范小微", "张三"):
        assert f"/cases/{case_id}" in client.get(f"/inbox?tab=all&q={q}").get_data(as_text=True), q
    assert f"/cases/{case_id}" not in client.get("/inbox?tab=all&q=L9999").get_data(as_text=True)
    assert f"/cases/{case_id}" in client.get("/inbox?tab=all&state=registered").get_data(as_text=True)
    assert f"/cases/{case_id}" not in client.get("/inbox?tab=all&state=closed").get_data(as_text=True)
    assert f"/cases/{case_id}" not in client.get("/inbox?tab=all&outcome=liable").get_data(as_text=True)


def test_staff_of_another_branch_neither_list_nor_open_the_case(bank, app_for):
    case_id = drive(bank, "registered")
    client = _signed_in(bank, app_for, "other_member")
    assert f"/cases/{case_id}" not in client.get("/inbox?tab=all").get_data(as_text=True)
    response = client.get(f"/cases/{case_id}")
    assert response.status_code == 403
    assert "不在您所在机构的权限范围内" in response.get_data(as_text=True)


def test_a_chair_re_judges_a_case_under_another_rule_set_version_from_the_case_page(sqlite_engine, app_for):
    from sqlmodel import Session, select

    from tests.factories import drive, make_bank
    from tests.web.support import login, post, set_passwords, version_of
    from workflow.models import AuditEvent

    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "under_review")
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, "chair")
    # Under review the facts are locked: re-judging is offered again only after a return for investigation.
    assert "按其他规则集版本重新评议" not in client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert post(client, f"/cases/{case_id}/return", {"reason": "适用版本待复核",
                "expected_version": version_of(bank.engine, case_id)}).status_code == 302
    assert "按其他规则集版本重新评议" in client.get(f"/cases/{case_id}").get_data(as_text=True)
    refused = post(client, f"/cases/{case_id}/reevaluate",
                   {"rule_set_version": "1", "reason": "", "expected_version": version_of(bank.engine, case_id)})
    assert refused.status_code == 400
    done = post(client, f"/cases/{case_id}/reevaluate",
                {"rule_set_version": "1", "reason": "复核适用版本", "expected_version": version_of(bank.engine, case_id)})
    assert done.status_code == 302
    with Session(bank.engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "reevaluate")).one()
        assert event.actor == "chair" and event.payload["version"] == 1
