"""Background jobs: a committee's letter batch runs on an RQ worker (real Redis, a real `flask jobs worker`
process) or, without Redis, in the app's worker thread; killed mid-batch with SIGKILL and run again, it
issues only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from tests.factories import drive, make_bank
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, ValidationFailed
from workflow.models import BackgroundJob, Case, Letter
from workflow.services import background

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("MIANZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _determined_bank(engine, cases: int):
    bank = make_bank(engine, n_loans=cases, loans_per_enterprise=1)
    ids = [drive(replace(bank, loans=[loan]), "determined") for loan in bank.loans]
    return bank, ids


def _wait(engine, job_id: int, until, timeout: float = 240.0) -> BackgroundJob:
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as s:
            job = s.get(BackgroundJob, job_id)
            if until(job):
                s.expunge(job)
                return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job.status} ({job.done}/{job.total}) after {timeout} s")
        time.sleep(0.2)


def _letters(engine) -> tuple[int, int]:
    with Session(engine) as s:
        n = s.exec(select(func.count()).select_from(Letter).where(Letter.kind == "determination")).one()
        distinct = s.exec(select(func.count(func.distinct(Letter.respondent_id)))
                          .where(Letter.kind == "determination")).one()
        return n, distinct


def test_without_redis_the_batch_runs_in_the_apps_worker_thread(engine):
    bank, ids = _determined_bank(engine, 3)
    with Session(engine) as s:
        chair = bank.user(s, "chair")
        officer = bank.user(s, "officer")
    with pytest.raises(PermissionDenied):
        background.start_letter_batch(engine, officer, bank.branches["T1"])
    job_id = background.start_letter_batch(engine, chair, bank.branches["T1"], redis_url=None)
    with pytest.raises(ValidationFailed, match="already under way|awaits its letters"):
        background.start_letter_batch(engine, chair, bank.branches["T1"])
    job = _wait(engine, job_id, lambda j: j.status in ("done", "failed"))
    assert (job.status, job.backend, job.done, job.total) == ("done", "thread", 3, 3), job.error
    assert job.result["letters_issued"] == 3 * 4  # three respondents' letters and the minutes, per case
    with Session(engine) as s:
        assert {c.state for c in s.exec(select(Case).where(Case.id.in_(ids)))} == {"determined"}
    assert _letters(engine) == (9, 9)
    # Redis named but not answering: the job still runs, in the thread.
    with unit_of_work(engine) as s:
        job = BackgroundJob(kind="letter_batch", params={"branch_id": bank.branches["T1"], "actor_id": chair.id},
                            created_by_id=chair.id)
        s.add(job)
        s.flush()
        again = job.id
    assert background.dispatch(engine, again, redis_url="redis://127.0.0.1:1/0") == "thread"
    job = _wait(engine, again, lambda j: j.status == "done")
    assert job.result["letters_issued"] == 0 and _letters(engine) == (9, 9)  # nothing twice


def _worker(db_url: str, queue: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "MIANZE_JOBS_QUEUE": queue,
           "FLASK_APP": "wsgi"}
    return subprocess.Popen([str(Path(sys.executable).parent / "flask"), "jobs", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_an_rq_worker_killed_mid_batch_finishes_on_a_rerun_without_duplicates(engine, db_url):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not running at {REDIS_URL} (.ci/run starts it)")
    bank, _ids = _determined_bank(engine, 12)
    queue = f"mianze-test-{uuid.uuid4().hex[:8]}"
    with Session(engine) as s:
        chair = bank.user(s, "chair")
    job_id = background.start_letter_batch(engine, chair, bank.branches["T1"], redis_url=REDIS_URL, queue=queue,
                                           workers=1)
    worker = _worker(db_url, queue)
    try:
        _wait(engine, job_id, lambda j: j.status == "running" and 1 <= j.done)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its rendering process, mid-batch
        worker.wait(10)
        with Session(engine) as s:
            job = s.get(BackgroundJob, job_id)
            assert job.status == "running" and job.backend == "rq" and job.done < 12
        first, distinct = _letters(engine)
        assert first < 36 and first == distinct
        with Session(engine) as s:
            documents_before = s.exec(select(func.count()).select_from(Letter)
                                      .where(Letter.kind.in_(("determination", "minutes")))).one()
        with pytest.raises(ValidationFailed, match="failed or stalled"):  # its heartbeat is still fresh
            background.retry(engine, chair, job_id, redis_url=REDIS_URL, queue=queue)
        assert background.retry(engine, chair, job_id, redis_url=REDIS_URL, queue=queue, force=True) == "rq"
        worker = _worker(db_url, queue)
        job = _wait(engine, job_id, lambda j: j.status in ("done", "failed"))
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    assert job.status == "done" and job.attempts == 2, job.error
    assert _letters(engine) == (36, 36)  # every letter once: the rerun issued only what was missing
    assert job.result["letters_issued"] == 48 - documents_before  # three letters and the minutes per case
    assert documents_before > 0
