"""API reads of personal data are access-logged like the web's page views: one `api_read` entry per successful
read, naming who, the resource and its case; reference data, failed reads and writes leave none."""

from __future__ import annotations

from sqlmodel import Session, select

from tests.factories import drive
from workflow import engine_of
from workflow.api.core import OPERATIONS
from workflow.models import AccessLog


def reads(api) -> list[AccessLog]:
    with Session(engine_of(api.app)) as s:
        return list(s.exec(select(AccessLog).where(AccessLog.action == "api_read").order_by(AccessLog.id)))


def test_a_read_of_a_cases_respondents_leaves_an_access_log_entry_like_a_page_view(api):
    case_id = drive(api.bank, "under_review")
    response = api.get("chair", f"/api/v1/cases/{case_id}/respondents")
    assert response.status_code == 200 and response.json["items"]
    [entry] = reads(api)
    assert (entry.username, entry.user_id) == ("chair", api.bank.users["chair"])
    assert (entry.target, entry.case_id) == (f"/api/v1/cases/{case_id}/respondents", case_id)
    assert entry.details == {"via": "api", "operation": "list_respondents"}
    # the audit trail, the votes, the staff list and a case list with its query: one entry each
    for url in (f"/api/v1/cases/{case_id}/audit", f"/api/v1/cases/{case_id}/votes", "/api/v1/staff",
                "/api/v1/cases?state=under_review"):
        assert api.get("auditor", url).status_code == 200, url
    logged = reads(api)[1:]
    assert [(e.username, e.target) for e in logged] == [
        ("auditor", f"/api/v1/cases/{case_id}/audit"), ("auditor", f"/api/v1/cases/{case_id}/votes"),
        ("auditor", "/api/v1/staff"), ("auditor", "/api/v1/cases")]
    assert logged[-1].details["query"] == {"state": "under_review"}


def test_reference_data_refused_reads_and_writes_leave_no_read_entry(api):
    case_id = drive(api.bank, "under_review")
    assert api.get("chair", "/api/v1/branches").status_code == 200  # reference data, no person in it
    assert api.get("chair", "/api/v1/cases/999999").status_code == 404
    assert api.get("other_member", f"/api/v1/cases/{case_id}").status_code == 404  # outside their scope
    assert api.client.get(f"/api/v1/cases/{case_id}").status_code == 401  # no token
    assert api.post("chair", f"/api/v1/cases/{case_id}/comments", json={"body": "请补充材料"}).status_code == 201
    assert reads(api) == []


def test_the_document_says_which_operations_are_access_logged(api):
    doc = api.client.get("/api/v1/openapi.json").json
    logged = {(op.method, op.path) for op in OPERATIONS if op.logged}
    assert ("get", "/cases/{case_id}/respondents") in logged and ("get", "/branches") not in logged
    for method, path in logged:
        item = doc["paths"]["/api/v1" + path][method]
        assert item["x-access-logged"] is True and "access log" in item["description"]
    assert all(method == "get" for method, _ in logged)
