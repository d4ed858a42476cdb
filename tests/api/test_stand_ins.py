"""Stand-ins over the API (issue 19, point 8): named and revoked as resources; a stand-in votes on behalf of
the member within the period, and is refused once revoked or when conflicted on the case."""

from __future__ import annotations

from datetime import timedelta

from tests.authority_support import add_deputy
from tests.factories import TODAY, drive
from workflow.db import unit_of_work
from workflow.services import tokens


def _vote(api, who, case_id, respondent_id, **extra):
    version = api.get("chair", f"/api/v1/cases/{case_id}").json["version"]
    return api.post(who, f"/api/v1/cases/{case_id}/votes", json={
        "respondent_id": respondent_id, "outcome": "exempt", "expected_version": version, **extra})


def test_a_stand_in_votes_on_behalf_of_the_member_until_revoked_and_never_when_conflicted(api):
    bank = api.bank
    add_deputy(bank)
    with unit_of_work(bank.engine) as s:
        api.tokens["deputy"] = tokens.create(s, None, bank.users["deputy"], "deputy integration")[1]
    case_id = drive(bank, "under_review")
    first = api.get("chair", f"/api/v1/cases/{case_id}/respondents").json["items"][0]["id"]
    period = {"starts_on": TODAY.isoformat(), "ends_on": (TODAY + timedelta(days=3)).isoformat(), "reason": "出差"}
    named = api.post("member1", "/api/v1/stand-ins", json={"stand_in_id": bank.users["deputy"], **period})
    assert named.status_code == 201, named.json
    assert api.get("deputy", "/api/v1/stand-ins").json["items"][0]["principal_id"] == bank.users["member1"]

    cast = _vote(api, "deputy", case_id, first, on_behalf_of=bank.users["member1"])
    assert cast.status_code == 201, cast.json
    assert (cast.json["member_id"], cast.json["on_behalf_of_id"]) == (bank.users["deputy"], bank.users["member1"])
    assert _vote(api, "deputy", case_id, first, on_behalf_of=bank.users["member2"]).json["details"]["reason"] == \
        "not_stand_in"

    # passed on: the stand-in may not name a further one
    again = api.post("deputy", "/api/v1/stand-ins", json={"stand_in_id": bank.users["approver"], **period})
    assert again.status_code == 403 and again.json["details"]["reason"] == "passed_on"

    revoked = api.post("member1", f"/api/v1/stand-ins/{named.json['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    assert _vote(api, "deputy", case_id, first).status_code == 403

    # conflicted: the investigator as member2's stand-in
    assert api.post("member2", "/api/v1/stand-ins", json={"stand_in_id": bank.users["investigator"],
                                                           **period}).status_code == 201
    refused = _vote(api, "investigator", case_id, first, on_behalf_of=bank.users["member2"])
    assert refused.status_code == 403 and refused.json["details"]["reason"] == "stand_in_conflicted"
