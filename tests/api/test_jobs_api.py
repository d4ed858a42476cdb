"""Background jobs over the API: the same rules as in the browser (the policy), progress by polling."""

from __future__ import annotations

import time

from tests.factories import drive


def test_a_letter_batch_through_the_api(api):
    bank = api.bank
    drive(bank, "determined")
    r = api.post("officer", "/api/v1/jobs/letter-batch", json={"branch_id": bank.branches["T1"]})
    assert r.status_code == 403, r.json
    r = api.post("chair", "/api/v1/jobs/letter-batch", json={"branch_id": bank.branches["T1"]})
    assert r.status_code == 202, r.json
    job_id = r.json["id"]
    for _ in range(600):
        job = api.get("chair", f"/api/v1/jobs/{job_id}").json
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert job["status"] == "done" and job["backend"] == "thread" and job["result"]["letters_issued"] == 4, job
    assert (job["done"], job["total"]) == (1, 1)
    assert api.get("member1", f"/api/v1/jobs/{job_id}").status_code == 403
    r = api.post("chair", f"/api/v1/jobs/{job_id}/retry")
    assert r.status_code in (400, 422) and "failed or stalled" in r.json["message"]


def test_the_case_file_through_the_api_is_refused_to_a_respondent(api):
    case_id = drive(api.bank, "determined")
    r = api.get("chair", f"/api/v1/cases/{case_id}/case-file")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    r = api.get("officer", f"/api/v1/cases/{case_id}/case-file")
    assert r.status_code == 403 and r.json["details"]["reason"] == "need_to_know"
