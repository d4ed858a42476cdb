"""The API's case says which committee decides it and why (issue 19, point 8)."""

from __future__ import annotations

from tests.authority_support import HEAD_OFFICE_TIER, add_head_office_committee, publish_tiers
from workflow.db import unit_of_work
from workflow.services import tokens


def test_a_large_case_opened_over_the_api_is_registered_to_head_office_with_its_reason(api):
    bank = api.bank
    add_head_office_committee(bank)
    publish_tiers(bank, HEAD_OFFICE_TIER)
    with unit_of_work(bank.engine) as s:
        api.tokens["ho_chair"] = tokens.create(s, None, bank.users["ho_chair"], "ho_chair integration")[1]
    created = api.post("admin", "/api/v1/cases", json={"loan_ids": bank.loans})
    assert created.status_code == 201, created.json
    body = api.get("ho_chair", f"/api/v1/cases/{created.json['id']}").json
    assert body["branch_id"] == bank.branches["HO"]
    why = body["authority"]
    assert (why["rule"], why["committee_branch_id"], why["committee_level"]) == ("HO15", bank.branches["HO"], 0)
    assert (why["origin_branch_id"], why["branch_level"], why["total_amount"]) == (bank.branches["OU"], 3,
                                                                                    "2000000.00")
    assert why["reason"]["en"].startswith("Cases whose loans total more than 1.5 million") and why["basis"] == "bank_policy"
