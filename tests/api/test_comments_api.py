"""Comments through the API: the case's staff list and add them; a respondent is refused."""

from __future__ import annotations

from tests.factories import drive


def test_the_api_lists_and_adds_comments_and_refuses_a_respondent(api):
    case_id = drive(api.bank, "under_review")
    made = api.post("chair", f"/api/v1/cases/{case_id}/comments", json={"body": "请 @member2 关注"})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["mentions"] == [api.bank.users["member2"]]
    assert made.get_json()["author_username"] == "chair"
    listed = api.get("chair", f"/api/v1/cases/{case_id}/comments?size=10").get_json()
    assert (listed["total"], listed["page"], listed["pages"]) == (1, 1, 1)
    assert listed["items"][0]["body"] == "请 @member2 关注"
    refused = api.get("officer", f"/api/v1/cases/{case_id}/comments")
    assert refused.status_code == 403 and refused.get_json()["details"]["reason"] == "comments_staff_only"
    assert api.post("officer", f"/api/v1/cases/{case_id}/comments", json={"body": "补充"}).status_code == 403
    too_long = api.post("chair", f"/api/v1/cases/{case_id}/comments", json={"body": "x" * 2001})
    assert too_long.status_code in (400, 422)
    mention_respondent = api.post("chair", f"/api/v1/cases/{case_id}/comments", json={"body": "@officer 请说明"})
    assert mention_respondent.status_code in (400, 422) and "@officer" in mention_respondent.get_json()["message"]
