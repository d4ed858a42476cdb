"""A letter batch of 200 documents started from the browser runs as an RQ job on a real `flask jobs worker`
process, and the page shows its progress bar moving until it is done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, SQLModel, select
from werkzeug.serving import make_server

from tests.browser.test_lifecycle import Person, browser  # noqa: F401  (the fixture)
from tests.factories import drive, make_bank
from tests.web.support import make_app, set_passwords
from workflow.db import make_engine, unit_of_work
from workflow.models import BackgroundJob, Letter
from workflow.services import rulesets

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("MIANZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CASES = 50  # three respondents' letters and the minutes each: 200 documents


@pytest.fixture
def determined(tmp_path):
    """50 determined cases of the T1 committee (set up before the browser starts: signing the investigation
    reports runs its own event loop, which Playwright's would refuse)."""
    url = f"sqlite:///{tmp_path / 'batch.sqlite3'}"
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine, n_loans=CASES, loans_per_enterprise=1)
    for loan in bank.loans:
        drive(replace(bank, loans=[loan]), "determined")
    set_passwords(engine)
    yield url, engine
    engine.dispose()


@pytest.mark.browser
def test_a_batch_of_200_documents_runs_on_an_rq_worker_with_a_progress_bar(determined, browser, tmp_path):  # noqa: F811
    url, engine = determined
    queue = f"mianze-browser-{uuid.uuid4().hex[:8]}"
    app = make_app(engine, tmp_path, REDIS_URL=REDIS_URL, JOBS_QUEUE=queue)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "MIANZE_JOBS_QUEUE": queue, "FLASK_APP": "wsgi"}
    worker = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "jobs", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        chair = Person(browser, f"http://127.0.0.1:{httpd.server_port}", "chair")
        page = chair.page
        page.click("#nav-jobs")
        page.click("#new-letter-batch")
        assert f"{CASES} 件已认定案件待出具文书" in page.inner_text("#branch_id")
        page.click("#start-batch")
        page.wait_for_selector("#job-progress")
        assert "RQ 任务进程" in page.inner_text("#job-status")
        seen = set()
        for _ in range(600):  # the page refreshes itself every two seconds
            page.wait_for_timeout(500)
            state = page.get_attribute("#job", "data-status")
            seen.add(int(page.get_attribute("#job-progress", "value") or 0))
            if state in ("done", "failed"):
                break
        assert page.get_attribute("#job", "data-status") == "done", page.inner_text("#job")
        assert page.inner_text("#job-issued") == "200"
        assert len(seen) >= 3  # the bar moved: it was seen between empty and full
        chair.shot("20-letter-batch-done")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        httpd.shutdown()
        app.extensions["mianze.engine"].dispose()
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Letter).where(Letter.kind == "determination")).one() == 150
        assert s.exec(select(BackgroundJob.backend)).one() == "rq"
