"""The API's answers to bad requests: one error shape, the right status."""

from __future__ import annotations

from tests.api.conftest import build_api
from workflow import engine_of
from workflow.db import unit_of_work
from workflow.services import tokens


def test_a_request_without_a_token_is_refused_with_401(sqlite_api):
    r = sqlite_api.client.get("/api/v1/cases")
    assert r.status_code == 401
    assert set(r.json) == {"code", "message", "details"} and r.json["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_no_longer_works_and_both_steps_are_audited(sqlite_api):
    from sqlmodel import select

    from workflow.models import ApiToken, AuditEvent, User

    engine = engine_of(sqlite_api.app)
    assert sqlite_api.get("officer", "/api/v1/cases").status_code == 200
    with unit_of_work(engine) as s:
        token = s.exec(select(ApiToken).where(ApiToken.user_id == sqlite_api.bank.users["officer"])).one()
        assert token.token_hash == tokens.hash_token(sqlite_api.tokens["officer"])
        tokens.revoke(s, s.get(User, sqlite_api.bank.users["admin"]), token.id)
        events = [e.event for e in s.exec(select(AuditEvent))]
    assert sqlite_api.get("officer", "/api/v1/cases").status_code == 401
    assert "create_api_token" in events and "revoke_api_token" in events


def test_only_administrators_create_tokens(sqlite_api):
    import pytest

    from workflow.domain.errors import PermissionDenied
    from workflow.models import User

    with unit_of_work(engine_of(sqlite_api.app)) as s:
        with pytest.raises(PermissionDenied):
            tokens.create(s, s.get(User, sqlite_api.bank.users["chair"]), sqlite_api.bank.users["chair"], "mine")


def test_malformed_json_unknown_fields_and_wrong_types_are_400(sqlite_api):
    bad = [b"{not json", b'{"loan_ids": [1], "colour": "red"}', b'{"loan_ids": ["1"]}', b'{"loan_ids": []}']
    for body in bad:
        r = sqlite_api.post("admin", "/api/v1/cases", data=body, content_type="application/json")
        assert r.status_code == 400, body
        assert set(r.json) == {"code", "message", "details"}


def test_a_body_that_is_not_json_is_415(sqlite_api):
    r = sqlite_api.post("admin", "/api/v1/cases", data="loan_ids=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and r.json["code"] == "unsupported_media_type"


def test_unknown_ids_and_paths_are_404_in_the_error_shape(sqlite_api):
    for url in ("/api/v1/cases/999", "/api/v1/loans/999", "/api/v1/letters/5", "/api/v1/nothing-here",
                "/api/v1/cases/99999999999999"):
        r = sqlite_api.get("admin", url)
        assert r.status_code == 404 and r.json["code"] == "not_found", url


def test_an_oversized_body_is_413(sqlite_url):
    api = build_api(sqlite_url, max_content_length=1024)
    r = api.post("admin", "/api/v1/evaluations", data=b'{"x": "' + b"a" * 4000 + b'"}',
                 content_type="application/json")
    assert r.status_code == 413 and r.json["code"] == "payload_too_large"
    engine_of(api.app).dispose()


def test_cases_outside_the_branch_scope_are_invisible(sqlite_api):
    from tests.factories import open_case

    cid = open_case(sqlite_api.bank)
    assert sqlite_api.get("other_member", f"/api/v1/cases/{cid}").status_code == 404
    assert sqlite_api.get("other_member", "/api/v1/cases").json["items"] == []
    assert sqlite_api.get("member1", f"/api/v1/cases/{cid}").status_code == 200
    assert sqlite_api.get("officer", f"/api/v1/cases/{cid}").status_code == 200, "a respondent sees their case"


def test_the_case_list_pages_with_a_cursor(sqlite_api):
    from tests.factories import open_case
    from workflow.db import unit_of_work as uow
    from workflow.services import cases

    first = open_case(sqlite_api.bank)
    with uow(sqlite_api.bank.engine) as s:
        from workflow.models import Case, User

        cases.withdraw(s, s.get(Case, first), s.get(User, sqlite_api.bank.users["chair"]), "贷款已收回")
    second = open_case(sqlite_api.bank)
    page = sqlite_api.get("auditor", "/api/v1/cases?limit=1").json
    assert [c["id"] for c in page["items"]] == [first] and page["next_cursor"]
    page2 = sqlite_api.get("auditor", f"/api/v1/cases?limit=1&cursor={page['next_cursor']}").json
    assert [c["id"] for c in page2["items"]] == [second] and page2["next_cursor"] is None
    assert [c["id"] for c in sqlite_api.get("auditor", "/api/v1/cases?state=withdrawn").json["items"]] == [first]
    assert sqlite_api.get("auditor", "/api/v1/cases?cursor=garbage").status_code == 400


def test_the_what_if_evaluation_answers_the_worked_example(sqlite_api):
    body = {"rule_set": "current", "tolerance": {"sme_npl_ratio": "0.0501", "all_npl_ratio": "0.0200"},
            "respondents": [{"id": "E1001", "stages": [
                {"stage": "pre_loan", "positive": ["P02"], "mitigating": [], "negative": [], "violation": False,
                 "unperformed": [{"duty": "PL03", "causal": True}], "dissented": False}]}]}
    r = sqlite_api.post("officer", "/api/v1/evaluations", json=body)
    assert r.status_code == 200 and r.json["respondents"][0]["outcome"] == "exempt"
    body["respondents"][0]["stages"][0]["negative"] = ["N05"]
    assert sqlite_api.post("officer", "/api/v1/evaluations", json=body).json["respondents"][0]["outcome"] == "liable"
    body["respondents"][0]["stages"][0]["negative"] = ["X99"]
    r = sqlite_api.post("officer", "/api/v1/evaluations", json=body)
    assert r.status_code == 400 and "X99" in r.json["message"]


def test_the_openapi_document_and_its_explorer_are_served_without_external_resources(sqlite_api):
    doc = sqlite_api.client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/cases/{case_id}/events" in doc["paths"]
    page = sqlite_api.client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
