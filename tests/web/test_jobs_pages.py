"""The background-job pages without Redis: the batch runs in the app's worker thread; who may start and see."""

from __future__ import annotations

import time

from sqlmodel import Session

from tests.factories import drive
from tests.web.support import login, post, set_passwords
from workflow.models import BackgroundJob


def test_a_chair_starts_a_batch_and_follows_it_others_may_not(bank, app_for):
    drive(bank, "determined")
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    officer = app.test_client()
    login(officer, "officer")
    assert officer.get("/jobs/letter-batch").status_code == 403
    chair = app.test_client()
    login(chair, "chair")
    form = chair.get("/jobs/letter-batch").get_data(as_text=True)
    assert "1 件已认定案件待出具文书" in form
    r = post(chair, "/jobs/letter-batch", {"branch_id": str(bank.branches["T1"])})
    assert r.status_code == 302
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    page = chair.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="job-progress"' in page and "应用内工作线程" in page
    for _ in range(600):
        with Session(bank.engine) as s:
            if s.get(BackgroundJob, job_id).status in ("done", "failed"):
                break
        time.sleep(0.2)
    page = chair.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'data-status="done"' in page and '<dd id="job-issued">4</dd>' in page
    assert 'http-equiv="refresh"' not in page  # it stops polling once the job ended
    jobs = chair.get("/jobs/").get_data(as_text=True)
    assert f'href="/jobs/{job_id}"' in jobs and "已完成" in jobs
    member = app.test_client()
    login(member, "member1")
    assert member.get(f"/jobs/{job_id}").status_code == 403
