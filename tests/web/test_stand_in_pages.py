"""Stand-ins in the browser (issue 19, point 8): a member names one on their stand-ins page after a confirmation;
the stand-in votes in their seat, shown "on behalf of" them on the case page and in the timeline; after the
period, or when conflicted on the case, the vote is refused."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from tests.authority_support import add_deputy, respondent_ids
from tests.factories import TODAY, drive
from tests.web.support import login, post, set_passwords, version_of
from workflow.models import AuditEvent, StandIn, Vote


def _client(bank, app_for, username):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def _name_on_the_page(client, bank, stand_in: str, ends=TODAY + timedelta(days=7)):
    form = {"stand_in_id": str(bank.users[stand_in]), "starts_on": TODAY.isoformat(), "ends_on": ends.isoformat(),
            "reason": "外出培训"}
    confirm = post(client, "/account/stand-ins", form)
    assert confirm.status_code == 200 and 'id="confirmation"' in confirm.get_data(as_text=True)
    with Session(bank.engine) as s:
        assert s.exec(select(StandIn)).all() == []  # nothing until confirmed
    done = post(client, "/account/stand-ins", {**form, "confirm": "1"})
    assert done.status_code == 302
    return confirm.get_data(as_text=True)


def _vote_form(bank, case_id, on_behalf_of=None):
    with Session(bank.engine) as s:
        votes = {f"outcome_{r}": "exempt" for r in respondent_ids(s, case_id)}
    extra = {"on_behalf_of": str(on_behalf_of)} if on_behalf_of else {}
    return {"expected_version": str(version_of(bank.engine, case_id)), **votes, **extra}


def test_a_member_names_a_stand_in_who_votes_on_their_behalf_on_the_case_page(bank, app_for):
    add_deputy(bank)
    case_id = drive(bank, "under_review")
    member = _client(bank, app_for, "member1")
    confirm = _name_on_the_page(member, bank, "deputy")
    assert "许代" in confirm and "您的席位" in confirm
    listing = member.get("/account/stand-ins").get_data(as_text=True)
    assert 'id="stand-in-list"' in listing, listing
    assert "许代" in listing and "外出培训" in listing and "生效中" in listing

    deputy = _client(bank, app_for, "deputy")
    assert 'id="nav-stand-ins"' in deputy.get("/inbox").get_data(as_text=True)
    form = deputy.get(f"/cases/{case_id}/vote").get_data(as_text=True)
    assert 'id="on_behalf_of"' in form and "代钱七" in form
    assert post(deputy, f"/cases/{case_id}/vote", _vote_form(bank, case_id, bank.users["member1"])).status_code == 302
    with Session(bank.engine) as s:
        votes = s.exec(select(Vote).where(Vote.case_id == case_id, Vote.member_id == bank.users["deputy"])).all()
        assert votes and {v.on_behalf_of_id for v in votes} == {bank.users["member1"]}
    page = _client(bank, app_for, "chair").get(f"/cases/{case_id}").get_data(as_text=True)
    assert page.count("代钱七") >= 2  # the vote list and the timeline


def test_after_the_period_the_stand_ins_vote_is_refused(bank, app_for):
    add_deputy(bank)
    case_id = drive(bank, "under_review")
    _name_on_the_page(_client(bank, app_for, "member1"), bank, "deputy")
    with Session(bank.engine) as s:
        row = s.exec(select(StandIn)).one()
        row.starts_on, row.ends_on = TODAY - timedelta(days=9), TODAY - timedelta(days=2)
        s.add(row)
        s.commit()
    deputy = _client(bank, app_for, "deputy")
    response = post(deputy, f"/cases/{case_id}/vote", _vote_form(bank, case_id, bank.users["member1"]))
    assert response.status_code == 403
    with Session(bank.engine) as s:
        assert s.exec(select(Vote).where(Vote.member_id == bank.users["deputy"])).all() == []
    listing = _client(bank, app_for, "member1").get("/account/stand-ins").get_data(as_text=True)
    assert "已结束" in listing


def test_a_conflicted_stand_in_is_refused_and_told_why(bank, app_for):
    case_id = drive(bank, "under_review")
    _name_on_the_page(_client(bank, app_for, "member1"), bank, "investigator")
    investigator = _client(bank, app_for, "investigator")
    response = post(investigator, f"/cases/{case_id}/vote", _vote_form(bank, case_id, bank.users["member1"]))
    assert response.status_code == 403
    assert "不得代为履职" in response.get_data(as_text=True)


def test_revoking_is_confirmed_and_audited(bank, app_for):
    add_deputy(bank)
    member = _client(bank, app_for, "member1")
    _name_on_the_page(member, bank, "deputy")
    with Session(bank.engine) as s:
        row_id = s.exec(select(StandIn)).one().id
    other = _client(bank, app_for, "member2")  # nobody else reads or revokes it
    assert post(other, f"/account/stand-ins/{row_id}/revoke").status_code == 403
    assert post(other, f"/account/stand-ins/{row_id}/revoke", {"confirm": "1"}).status_code == 403
    confirm = post(member, f"/account/stand-ins/{row_id}/revoke")
    assert confirm.status_code == 200 and "撤销" in confirm.get_data(as_text=True)
    assert post(member, f"/account/stand-ins/{row_id}/revoke", {"confirm": "1"}).status_code == 302
    with Session(bank.engine) as s:
        assert s.get(StandIn, row_id).revoked_at is not None
        assert [e.event for e in s.exec(select(AuditEvent).where(AuditEvent.event.like("%stand_in")))] == [
            "name_stand_in", "revoke_stand_in"]


def test_a_stand_in_outside_the_branch_is_refused_next_to_the_field(bank, app_for):
    member = _client(bank, app_for, "member1")
    response = post(member, "/account/stand-ins", {"stand_in_id": str(bank.users["other_member"]),
                                                   "starts_on": TODAY.isoformat(), "ends_on": TODAY.isoformat(),
                                                   "reason": "休假"})
    assert response.status_code == 403 and 'id="error-stand_in_id"' in response.get_data(as_text=True)
