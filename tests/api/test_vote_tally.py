"""No anchoring over the API: a committee member who has not voted on every respondent gets only their own
votes; once they have voted they get all of them; the chair gets all of them throughout."""

from __future__ import annotations

from tests.factories import drive


def test_a_member_who_has_not_voted_does_not_get_the_tally(api):
    case_id = drive(api.bank, "under_review")
    respondents = api.get("chair", f"/api/v1/cases/{case_id}/respondents").json["items"]
    for r in respondents:
        version = api.get("member2", f"/api/v1/cases/{case_id}").json["version"]
        assert api.post("member2", f"/api/v1/cases/{case_id}/votes", json={
            "respondent_id": r["id"], "outcome": "liable", "expected_version": version}).status_code == 201
    assert api.get("member1", f"/api/v1/cases/{case_id}/votes").json["items"] == []
    assert len(api.get("chair", f"/api/v1/cases/{case_id}/votes").json["items"]) == len(respondents)
    # Nor through the case's audit trail: the other member's vote events are left out until member1 votes.
    trail = api.get("member1", f"/api/v1/cases/{case_id}/audit")
    assert trail.status_code == 200 and [e for e in trail.json["items"] if e["event"] == "record_vote"] == []
    chairs = api.get("chair", f"/api/v1/cases/{case_id}/audit").json["items"]
    assert len([e for e in chairs if e["event"] == "record_vote"]) == len(respondents)

    version = api.get("member1", f"/api/v1/cases/{case_id}").json["version"]
    assert api.post("member1", f"/api/v1/cases/{case_id}/votes", json={
        "respondent_id": respondents[0]["id"], "outcome": "exempt", "expected_version": version}).status_code == 201
    if len(respondents) > 1:  # one respondent voted on is not every respondent: still only their own vote
        items = api.get("member1", f"/api/v1/cases/{case_id}/votes").json["items"]
        assert [v["outcome"] for v in items] == ["exempt"]
    for r in respondents[1:]:
        version = api.get("member1", f"/api/v1/cases/{case_id}").json["version"]
        api.post("member1", f"/api/v1/cases/{case_id}/votes", json={
            "respondent_id": r["id"], "outcome": "exempt", "expected_version": version})
    assert len(api.get("member1", f"/api/v1/cases/{case_id}/votes").json["items"]) == 2 * len(respondents)
    trail = api.get("member1", f"/api/v1/cases/{case_id}/audit").json["items"]
    assert len([e for e in trail if e["event"] == "record_vote"]) == 2 * len(respondents)
