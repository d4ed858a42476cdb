"""A whole case lifecycle driven only through the API, each step by the token of the user who may take it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest


class _Later(date):
    """`date.today()` three weeks ahead: publicity and appeal windows have elapsed."""

    offset = timedelta(0)

    @classmethod
    def today(cls):
        return date.fromordinal(date.today().toordinal() + cls.offset.days)


@pytest.fixture
def clock(monkeypatch):
    from workflow.services import cases, letters

    monkeypatch.setattr(cases, "date", _Later)
    monkeypatch.setattr(letters, "date", _Later)
    _Later.offset = timedelta(0)

    def advance(days: int):
        _Later.offset += timedelta(days=days)

    return advance


def event(api, who, case_id, name, version, **payload):
    return api.post(who, f"/api/v1/cases/{case_id}/events",
                    json={"event": name, "payload": payload, "expected_version": version})


def test_a_case_runs_from_opening_to_closing_through_the_api_alone(api, clock):
    bank = api.bank
    r = api.post("admin", "/api/v1/cases", json={"loan_ids": bank.loans})
    assert r.status_code == 201, r.json
    case = r.json
    cid, v = case["id"], case["version"]
    assert case["state"] == "registered" and case["allowed_events"] == ["assign_investigator", "withdraw"]

    r = event(api, "chair", cid, "assign_investigator", v, investigator_id=bank.users["investigator"])
    assert r.status_code == 200, r.json
    assert r.json["state"] == "investigating"
    v = r.json["version"]

    r = api.post("officer", f"/api/v1/cases/{cid}/statement", json={"statement": "我已尽职调查，见附件。"})
    assert r.status_code == 200, r.json
    respondents = api.get("investigator", f"/api/v1/cases/{cid}/respondents").json["items"]
    officer = next(x for x in respondents if x["user_id"] == bank.users["officer"])
    v = api.get("investigator", f"/api/v1/cases/{cid}").json["version"]
    for resp in respondents:
        for held in resp["stages"]:
            facts = {"positive": [], "negative": [], "violation": False, "unperformed": [], "dissented": False,
                     "findings": "经查阅贷款档案，本环节业务按规定办理。"}
            if resp["id"] == officer["id"] and held["stage"] == "pre_loan":
                facts.update(violation=True, unperformed=[{"duty": "PL03", "causal": True}],
                             findings="经查，未对照纳税记录核实借款用途。")
            r = api.put("investigator", f"/api/v1/cases/{cid}/respondents/{resp['id']}/facts",
                        json={"loan_id": held["loan_id"], "stage": held["stage"], "facts": facts,
                              "expected_version": v})
            assert r.status_code == 200, r.json
            v += 1

    # The others' statements are awaited until their deadline: submission waits for them, naming them.
    r = event(api, "investigator", cid, "submit_investigation", v)
    assert r.status_code == 409 and "statements are awaited" in r.json["message"], r.json
    username = {uid: name for name, uid in bank.users.items()}
    for resp in respondents:
        if resp["user_id"] != bank.users["officer"]:
            assert resp["statement_position"] == "awaited" and resp["statement_due"]
            r = api.post(username[resp["user_id"]], f"/api/v1/cases/{cid}/statement/decline",
                         json={"note": "本人不再另行陈述"})
            assert r.status_code == 200 and r.json["statement_position"] == "declined", r.json
            v += 1
    r = event(api, "investigator", cid, "submit_investigation", v)
    assert r.status_code == 200, r.json
    assert r.json["state"] == "under_review"
    v = r.json["version"]
    rec = api.get("member1", f"/api/v1/cases/{cid}/recommendation").json
    outcomes = {x["respondent_id"]: x["outcome"] for x in rec["respondents"]}
    assert outcomes[officer["id"]] == "liable"
    officer_stages = rec["respondents"][[x["respondent_id"] for x in rec["respondents"]].index(officer["id"])]
    assert any(step["fired"] for st in officer_stages["recommendation"]["stages"] for step in st["explanation"])

    for member in ("member1", "member2", "chair"):
        for rid, outcome in outcomes.items():
            r = api.post(member, f"/api/v1/cases/{cid}/votes", json={"respondent_id": rid, "outcome": outcome})
            assert r.status_code == 201, r.json
    v = api.get("chair", f"/api/v1/cases/{cid}").json["version"]
    r = event(api, "chair", cid, "determine", v)
    assert r.status_code == 200, r.json
    assert r.json["state"] == "determined"

    r = api.post("chair", f"/api/v1/cases/{cid}/letters")
    assert r.status_code == 200, r.json
    issued = r.json["items"]
    assert len(issued) == len(outcomes)
    pdf = api.get("officer", issued[0]["pdf_url"])
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"

    v = api.get("chair", f"/api/v1/cases/{cid}").json["version"]
    assert event(api, "chair", cid, "start_publicity", v).json["state"] == "in_publicity"
    clock(10)
    v = api.get("chair", f"/api/v1/cases/{cid}").json["version"]
    assert event(api, "admin", cid, "end_publicity", v).json["state"] == "appeal_window"

    served_on = _Later.today().isoformat()
    for lt in issued:  # the chair hands each letter over; the window of each respondent runs from that day
        r = api.post("chair", f"/api/v1/letters/{lt['id']}/service", json={"method": "in_person",
                                                                          "served_on": served_on})
        assert r.status_code == 201, r.json
        assert r.json["served_on"] == served_on and r.json["appeal_deadline"] > served_on
    r = api.post("officer", f"/api/v1/cases/{cid}/appeals", json={"grounds": "违规认定证据不足"})
    assert r.status_code == 201, r.json
    appeal_id = r.json["id"]
    for who in ("reviewer", "approver"):  # the others waive their appeal: the window closes with the last
        r = api.post(who, f"/api/v1/cases/{cid}/waiver", json={"statement": "放弃申诉"})
        assert r.status_code == 201, r.json
    assert api.get("chair", f"/api/v1/cases/{cid}").json["state"] == "appeal_review"

    r = api.post("appeal_chair", f"/api/v1/cases/{cid}/appeals/{appeal_id}/decision",
                 json={"reason": "违规证据不足，减轻"})
    assert r.status_code == 409 and "quorum" in r.json["message"], r.json  # no single reviewer decides alone
    for who in ("appeal", "appeal2", "appeal_chair"):
        r = api.post(who, f"/api/v1/cases/{cid}/appeals/{appeal_id}/votes",
                     json={"decision": "altered", "new_outcome": "reduced", "reason": "情节较轻"})
        assert r.status_code == 201 and r.json["outcome"] == "reduced", r.json
    r = api.post("appeal_chair", f"/api/v1/cases/{cid}/appeals/{appeal_id}/decision",
                 json={"reason": "违规证据不足，减轻"})
    assert r.status_code == 200, r.json
    assert (r.json["decision"], r.json["new_outcome"], len(r.json["votes"])) == ("altered", "reduced", 3)
    v = api.get("appeal", f"/api/v1/cases/{cid}").json["version"]
    assert event(api, "appeal", cid, "conclude_appeals", v).json["state"] == "final"
    v = api.get("chair", f"/api/v1/cases/{cid}").json["version"]
    assert event(api, "chair", cid, "refer_for_accountability", v).json["state"] == "referred"
    v = api.get("chair", f"/api/v1/cases/{cid}").json["version"]
    assert event(api, "chair", cid, "close", v).json["state"] == "closed"

    final = {x["id"]: x["final_outcome"] for x in api.get("auditor", f"/api/v1/cases/{cid}/respondents").json["items"]}
    assert final[officer["id"]] == "reduced"
    trail = [e["event"] for e in api.get("auditor", f"/api/v1/cases/{cid}/audit").json["items"]]
    for expected in ("open_case", "assign_investigator", "record_facts", "submit_investigation", "record_vote",
                     "determine", "issue_letter", "start_publicity", "end_publicity", "file_appeal",
                     "close_appeal_window", "decide_appeal", "conclude_appeals", "refer_for_accountability", "close"):
        assert expected in trail
    letters = api.get("auditor", f"/api/v1/cases/{cid}/letters").json["items"]
    assert any(lt["supersedes_id"] for lt in letters), "the altered appeal issues a corrected letter version"


def test_a_disallowed_event_answers_409_with_the_current_state_and_version(api):
    r = api.post("admin", "/api/v1/cases", json={"loan_ids": api.bank.loans})
    cid, v = r.json["id"], r.json["version"]
    r = event(api, "chair", cid, "close", v)
    assert r.status_code == 409
    assert r.json["code"] == "transition_not_allowed"
    assert r.json["details"]["state"] == "registered" and r.json["details"]["version"] == v


def test_a_stale_expected_version_answers_409_and_changes_nothing(api):
    r = api.post("admin", "/api/v1/cases", json={"loan_ids": api.bank.loans})
    cid, v = r.json["id"], r.json["version"]
    r = event(api, "chair", cid, "assign_investigator", v - 1, investigator_id=api.bank.users["investigator"])
    assert r.status_code == 409 and r.json["code"] == "conflict"
    assert r.json["details"] == {**r.json["details"], "state": "registered", "version": v}
    assert api.get("chair", f"/api/v1/cases/{cid}").json["state"] == "registered"


def test_a_respondent_cannot_vote_and_gets_403(api):
    from tests.factories import drive

    cid = drive(api.bank, "under_review")
    respondents = api.get("chair", f"/api/v1/cases/{cid}/respondents").json["items"]
    r = api.post("officer", f"/api/v1/cases/{cid}/votes",
                 json={"respondent_id": respondents[0]["id"], "outcome": "exempt"})
    assert r.status_code == 403 and r.json["code"] == "forbidden"


def test_facts_are_locked_under_review_and_the_refusal_names_the_return(api):
    from tests.factories import drive

    cid = drive(api.bank, "under_review")
    case = api.get("chair", f"/api/v1/cases/{cid}").json
    respondent = api.get("chair", f"/api/v1/cases/{cid}/respondents").json["items"][0]
    r = api.put("investigator", f"/api/v1/cases/{cid}/respondents/{respondent['id']}/facts",
                json={"loan_id": api.bank.loans[0], "stage": "pre_loan", "expected_version": case["version"],
                      "facts": {"positive": [], "mitigating": [], "negative": ["N05"], "violation": False,
                                "unperformed": [], "dissented": False}})
    assert r.status_code in (403, 409), r.json
    assert "investigat" in r.json["message"]
    assert api.get("chair", f"/api/v1/cases/{cid}").json["version"] == case["version"]
