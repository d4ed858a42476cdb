"""The API's answers to bad requests: one error shape, the right status."""

from __future__ import annotations

import io

import pytest

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
    assert r.status_code == 422 and r.json["code"] == "invalid_input" and "X99" in r.json["message"], \
        "the document allows any code; the rule set has no X99"


def test_the_openapi_document_and_its_explorer_are_served_without_external_resources(sqlite_api):
    doc = sqlite_api.client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/cases/{case_id}/events" in doc["paths"]
    page = sqlite_api.client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html


WHAT_IF = {"rule_set": "current", "respondents": [{"id": "E1001", "stages": [
    {"stage": "pre_loan", "positive": ["P02"], "mitigating": [], "negative": [], "violation": False,
     "unperformed": [], "dissented": False}]}]}


def _error_shape(r) -> dict:
    assert r.mimetype == "application/json", r.get_data(as_text=True)[:200]
    assert set(r.json) == {"code", "message", "details"} and isinstance(r.json["details"], dict), r.json
    return r.json


def test_a_write_without_a_token_is_401_naming_the_bearer_header_not_a_csrf_error(sqlite_api):
    r = sqlite_api.client.post("/api/v1/evaluations", json=WHAT_IF)
    assert r.status_code == 401
    body = _error_shape(r)
    assert body["code"] == "unauthorized" and "Authorization: Bearer" in body["message"]
    assert "csrf" not in body["message"].lower()
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signed_in_browser_session_does_not_authenticate_the_api(sqlite_api):
    from tests.web.support import login, set_passwords

    set_passwords(sqlite_api.bank.engine)
    client = sqlite_api.app.test_client()
    assert login(client, "admin").status_code == 302, "signed in through the sign-in form"
    for method, url, body in (("GET", "/api/v1/cases", None), ("POST", "/api/v1/evaluations", WHAT_IF),
                              ("POST", "/api/v1/cases", {"loan_ids": sqlite_api.bank.loans})):
        r = client.open(url, method=method, json=body)
        assert r.status_code == 401 and _error_shape(r)["code"] == "unauthorized", (method, url)
    assert sqlite_api.get("auditor", "/api/v1/cases").json["items"] == [], "the cookie opened no case"


@pytest.mark.parametrize("depth", [65, 10_000])
def test_a_body_nested_deeper_than_64_levels_is_400_malformed_json(sqlite_api, depth):
    r = sqlite_api.post("admin", "/api/v1/evaluations", data="[" * depth + "]" * depth,
                        content_type="application/json")
    assert r.status_code == 400
    body = _error_shape(r)
    assert body["code"] == "malformed_json" and body["details"]["max_depth"] == 64 and "64" in body["message"]


def test_a_body_nested_64_levels_deep_is_read_and_then_validated(sqlite_api):
    r = sqlite_api.post("admin", "/api/v1/evaluations", data="[" * 64 + "]" * 64, content_type="application/json")
    assert r.status_code == 400 and _error_shape(r)["code"] == "invalid_input", "parsed; only its shape is wrong"


def test_unknown_paths_anywhere_under_api_are_404_with_details(sqlite_api):
    for method, url in (("GET", "/api/v1/nothing-here"), ("POST", "/api/v1/cases/1/nothing"), ("GET", "/api/"),
                        ("GET", "/api/v2/cases"), ("TRACE", "/api/v1/nothing-here"), ("GET", "/api/v1/cases/x")):
        r = sqlite_api.client.open(url, method=method, headers=sqlite_api.headers("admin"))
        assert r.status_code == 404, (method, url)
        body = _error_shape(r)
        assert body["code"] == "not_found" and body["details"] == {"path": url.split("?")[0]}, (method, url)


def test_a_method_a_path_does_not_take_is_405_listing_the_methods_it_does_in_allow(sqlite_api):
    for method, url, allowed in (("DELETE", "/api/v1/cases", {"GET", "POST"}), ("TRACE", "/api/v1/branches", {"GET"}),
                                 ("PATCH", "/api/v1/cases/1", {"GET"}), ("GET", "/api/v1/evaluations", {"POST"}),
                                 ("POST", "/api/v1/openapi.json", {"GET"})):
        r = sqlite_api.client.open(url, method=method)
        assert r.status_code == 405, (method, url)
        body = _error_shape(r)
        listed = {m.strip() for m in r.headers["Allow"].split(",")}
        assert body["code"] == "method_not_allowed" and set(body["details"]["allowed"]) == listed, (method, url)
        assert listed - {"HEAD", "OPTIONS"} == allowed, (method, url)


def test_an_oversized_or_non_json_body_answers_in_the_error_shape(sqlite_url):
    api = build_api(sqlite_url, max_content_length=1024)
    r = api.post("admin", "/api/v1/evaluations", data=b"[" + b"1," * 2000 + b"1]", content_type="application/json")
    assert r.status_code == 413 and _error_shape(r)["details"] == {"limit": 1024}
    r = api.post("admin", "/api/v1/evaluations", data="x", content_type="text/plain")
    assert r.status_code == 415 and _error_shape(r)["code"] == "unsupported_media_type"
    engine_of(api.app).dispose()


def test_what_the_document_refuses_is_400_and_what_only_the_data_refuses_is_422(sqlite_api):
    from tests.factories import open_case

    open_case(sqlite_api.bank)
    shape = sqlite_api.post("admin", "/api/v1/cases", json={"loan_ids": [1], "colour": "red"})
    assert shape.status_code == 400 and _error_shape(shape)["code"] == "invalid_input"
    busy = sqlite_api.post("admin", "/api/v1/cases", json={"loan_ids": sqlite_api.bank.loans})
    assert busy.status_code == 422 and _error_shape(busy)["code"] == "invalid_input"
    assert "already in open case" in busy.json["message"]


def test_each_event_takes_only_what_the_document_says_it_takes(sqlite_api):
    from tests.factories import open_case

    case_id = open_case(sqlite_api.bank)
    url = f"/api/v1/cases/{case_id}/events"
    for body in ({"event": "close", "payload": {"reason": "x"}}, {"event": "assign_investigator"},
                 {"event": "assign_investigator", "payload": {"reason": "x"}}, {"event": "no_such_event"}):
        r = sqlite_api.post("chair", url, json=body)
        assert r.status_code == 400 and _error_shape(r)["code"] == "invalid_input", body
    investigator = sqlite_api.bank.users["investigator"]
    r = sqlite_api.post("chair", url, json={"event": "assign_investigator", "payload": {"investigator_id": float(investigator)}})
    assert r.status_code == 200 and r.json["investigator_id"] == investigator, "JSON Schema's integers include 26.0"


def test_any_cursor_the_document_allows_reads_as_a_page(sqlite_api):
    assert sqlite_api.get("admin", "/api/v1/branches?cursor=2147483647").json == {"items": [], "next_cursor": None}
    for bad in ("0", "abc", "12345678901", "-1"):
        r = sqlite_api.get("admin", f"/api/v1/branches?cursor={bad}")
        assert r.status_code == 400 and r.json["details"]["errors"][0]["field"] == "query.cursor", bad


def test_a_period_is_a_date_not_a_number(sqlite_api):
    branch = sqlite_api.get("admin", "/api/v1/branches").json["items"][0]["id"]
    for bad in ("0", "20251231", "2025-02-30"):
        r = sqlite_api.get("admin", f"/api/v1/branches/{branch}/loan-book?period={bad}")
        assert r.status_code == 400, bad
    assert sqlite_api.get("admin", f"/api/v1/branches/{branch}/loan-book?period=2025-12-31").status_code == 200


def test_an_uploaded_json_file_nested_thousands_deep_is_refused_not_a_server_error(sqlite_api):
    nested = "[" * 100_000 + "]" * 100_000
    r = sqlite_api.post("admin", "/api/v1/imports/loans?dry_run=true", content_type="multipart/form-data",
                        data={"file": (io.BytesIO(nested.encode()), "loans.json")})
    assert r.status_code == 422 and _error_shape(r)["details"]["field"] == "file"
