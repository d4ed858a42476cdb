"""The loser of a race gets 409 `conflict`, like every other conflict, and nothing of its request is written."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from tests.factories import drive
from workflow.models import Appeal


def _at_once(api, username: str, url: str, body: dict, n: int = 2) -> list:
    """POST the same request from `n` clients released together; their responses."""
    start = threading.Barrier(n)
    responses = []

    def send():
        client = api.app.test_client()
        start.wait()
        responses.append(client.post(url, json=body, headers=api.headers(username)))

    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(responses, key=lambda r: r.status_code)


def _lost(response, state: str) -> None:
    assert response.status_code == 409, response.json
    assert response.json["code"] == "conflict"
    assert response.json["details"]["state"] == state and isinstance(response.json["details"]["version"], int)


def test_two_appeals_filed_at_once_for_one_respondent_store_one_and_the_other_gets_409(api):
    case_id = drive(api.bank, "appeal_window")
    won, lost = _at_once(api, "officer", f"/api/v1/cases/{case_id}/appeals", {"grounds": "违规认定证据不足"})
    assert won.status_code == 201, won.json
    _lost(lost, "appeal_window")
    with Session(api.bank.engine) as s:
        assert len(s.exec(select(Appeal).where(Appeal.case_id == case_id)).all()) == 1


def test_an_appeal_filed_a_second_time_is_409_conflict(api):
    case_id = drive(api.bank, "appeal_window")
    url = f"/api/v1/cases/{case_id}/appeals"
    assert api.post("officer", url, json={"grounds": "违规认定证据不足"}).status_code == 201
    again = api.post("officer", url, json={"grounds": "再次申诉"})
    _lost(again, "appeal_window")
    assert "already filed" in again.json["message"]


def test_two_decisions_of_one_appeal_at_once_record_one_and_the_other_gets_409(api):
    case_id = drive(api.bank, "appeal_review")
    with Session(api.bank.engine) as s:
        appeal_id = s.exec(select(Appeal.id).where(Appeal.case_id == case_id)).one()
    for who in ("appeal", "appeal2", "appeal_chair"):
        assert api.post(who, f"/api/v1/cases/{case_id}/appeals/{appeal_id}/votes",
                        json={"decision": "upheld"}).status_code == 201
    won, lost = _at_once(api, "appeal_chair", f"/api/v1/cases/{case_id}/appeals/{appeal_id}/decision",
                         {"reason": "事实清楚，维持原认定"})
    assert won.status_code == 200 and won.json["decision"] == "upheld", won.json
    _lost(lost, "appeal_review")
    later = api.post("appeal_chair", f"/api/v1/cases/{case_id}/appeals/{appeal_id}/decision",
                     json={"reason": "改判"})
    _lost(later, "appeal_review")
    assert "already been decided" in later.json["message"]
    assert api.get("appeal", f"/api/v1/cases/{case_id}/appeals").json["items"][0]["decision"] == "upheld"
