"""The NPL intake over the API: the list, registering a group as one case, recording why no case is opened."""

from __future__ import annotations


def test_the_intake_list_registers_and_dismisses_through_the_api(api):
    bank = api.bank
    r = api.get("chair", "/api/v1/intake")
    assert r.status_code == 200, r.json
    [group] = r.json["items"]
    assert group["enterprise"] == "示范小微制造有限公司" and group["in_scope"] and r.json["total"] == 1
    assert [lo["loan_no"] for lo in group["loans"]] == ["L2024-0001", "L2024-0002"]
    assert {h["name"] for h in group["handlers"]} == {"张三", "李四", "王五"}
    assert api.get("officer", "/api/v1/intake").status_code == 403

    r = api.post("chair", f"/api/v1/intake/{group['enterprise_id']}/dismissal", json={"reason": "forgotten"})
    assert r.status_code in (400, 422)
    r = api.post("chair", f"/api/v1/intake/{group['enterprise_id']}/case", json={})
    assert r.status_code == 201, r.json
    assert r.json["state"] == "registered" and sorted(r.json["loan_ids"]) == sorted(bank.loans)
    assert api.get("chair", "/api/v1/intake").json["items"] == []
    r = api.post("chair", f"/api/v1/intake/{group['enterprise_id']}/dismissal", json={"reason": "recovered"})
    assert r.status_code == 404  # nothing of the enterprise awaits a case any more
