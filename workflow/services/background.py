"""Background jobs: long work (a committee's letter batch) run apart from the request that starts it.

A job is a row (`BackgroundJob`) first, in the starter's unit of work; then it is handed to a runner: an RQ
worker when Redis carries the jobs (`REDIS_URL`; production, `flask jobs worker` on machines of their own),
else a worker thread of the app process (the embedded default, which needs nothing else running). Whoever
runs it reports progress into the row, so the job's page polls the database alike in both cases.

Jobs are idempotent: a letter batch issues only what is missing, so running a job again after its worker
was killed (`retry`) finishes the work without duplicates. A running job whose heartbeat (`updated_at`) is
older than STALL_SECONDS has stalled: its worker died; it can be retried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlmodel import Session, select

from ..db import read_session, unit_of_work
from ..domain import policy
from ..domain.errors import DomainError, NotFound, ValidationFailed
from ..models import BackgroundJob, Branch, Case, User, utcnow
from . import queries

log = logging.getLogger(__name__)

STALL_SECONDS = 120
QUEUE = "mianze"


# --- the kinds of job ---------------------------------------------------------------------------------------

def _letter_batch(engine, job: BackgroundJob, progress: Callable[[int, int | None], None]) -> dict:
    """Every missing document of the branch's determined cases (letters.issue_batch, resumable)."""
    from . import letters

    branch_id, actor_id = job.params["branch_id"], job.params["actor_id"]
    total = awaiting_letters(engine, branch_id)
    done = [0]
    progress(0, total)

    def tick(_documents: int) -> None:
        done[0] += 1
        progress(done[0], max(total, done[0]))

    return letters.issue_batch(engine, branch_id, actor_id, workers=int(job.params.get("workers", 2)), progress=tick)


class _Bar:
    """The progress callback the export jobs expect (a tqdm-like bar), reporting into the job's row at most
    twice a second."""

    def __init__(self, report: Callable[[int, int | None], None], total: int | None):
        self.report, self.total, self.done, self.last = report, total, 0, 0.0

    def __enter__(self):
        self.report(0, self.total)
        return self

    def __exit__(self, *exc) -> None:
        self.report(self.done, self.total if self.total is not None else self.done)

    def update(self, n: int = 1) -> None:
        import time

        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self.report(self.done, self.total)


FILE_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "zip": "application/zip"}


def _output(job: BackgroundJob, ext: str) -> str:
    import os

    os.makedirs(job.params["out_dir"], exist_ok=True)
    return os.path.join(job.params["out_dir"], f"job-{job.id}.{ext}")


def _file_result(path: str, name: str, mimetype: str, **extra) -> dict:
    import os

    return {"file": os.path.basename(path), "name": name, "mimetype": mimetype, "bytes": os.path.getsize(path),
            **extra}


def _export(engine, job: BackgroundJob, progress) -> dict:
    """An audit export to a file (XLSX, or a ZIP of CSV / JSON Lines files): jobs.run_export."""
    from . import export
    from .jobs import run_export

    p = job.params
    ext = "xlsx" if p["fmt"] == "xlsx" else "zip"
    path = _output(job, ext)
    counts = run_export(engine, kind=p["kind"], fmt=p["fmt"], out=path, username=p["username"],
                        filters=p["filters"], full=p["full"], reason=p["reason"],
                        records=tuple(p["records"]) if p.get("records") else None, locale=p.get("locale", "zh"),
                        progress=lambda _desc, total, _unit: _Bar(progress, total))
    return _file_result(path, export.filename(p["kind"], ext), FILE_TYPES[ext], rows=counts)


def _bundle(engine, job: BackgroundJob, progress) -> dict:
    """The evidence bundle of the selected cases (ZIP with a hashed manifest): jobs.run_bundle."""
    from . import export
    from .jobs import run_bundle

    p = job.params
    path = _output(job, "zip")
    manifest = run_bundle(engine, out=path, username=p["username"], filters=p["filters"], full=p["full"],
                          reason=p["reason"], evidence_dir=p["evidence_dir"], locale=p.get("locale", "zh"),
                          progress=lambda _desc, total, _unit: _Bar(progress, total))
    return _file_result(path, export.filename("bundle", "zip"), FILE_TYPES["zip"],
                        cases=len(manifest.get("cases", [])) if isinstance(manifest, dict) else None)


def _loan_import(engine, job: BackgroundJob, progress) -> dict:
    """A loan book file imported in one all-or-nothing transaction (imports.import_loans), read row by row from
    the file the request spooled; the result is the import's summary, or its row errors (nothing written).
    Rerun after a kill, it imports the same file again: what the first run committed (nothing, or all of it)
    compares as unchanged."""
    import os

    from . import imports, tabular

    p = job.params
    limits = tabular.Limits(**p["limits"]) if p.get("limits") else tabular.Limits()
    if not os.path.isfile(p["path"]):
        raise ValidationFailed("the uploaded file of this import is gone; upload it again")
    size = os.path.getsize(p["path"])
    read = [0]

    def step(n: int) -> None:
        read[0] += n
        progress(read[0], None)

    progress(0, None)
    rows = imports.read_file(p["path"], p["fmt"], limits)
    # The rows read are reported as they go on PostgreSQL; SQLite has one writer, which the import holds
    # until it commits, so there the count is reported when the import ends.
    live = engine.dialect.name != "sqlite"
    try:
        with unit_of_work(engine) as s:
            actor = s.get(User, job.created_by_id)
            result = imports.import_loans(s, actor, rows, dry_run=bool(p.get("dry_run")), limits=limits,
                                          progress=step if live else None)
    except imports.ImportRejected as exc:
        return {"imported": False, "message": exc.message, **exc.details, "bytes": size}
    progress(result.rows, result.rows)
    return {"imported": True, **result.to_dict(), "bytes": size}


def create_loan_import(s: Session, user: User, *, path: str, fmt: str, filename: str, dry_run: bool,
                       limits: dict | None = None) -> BackgroundJob:
    """The queued job of a loan import from a file already on disk (the request spooled it), in the caller's
    unit of work. Raises PermissionDenied (policy.why_not_import_loans)."""
    actor = queries.actor_of(s, s.get(User, user.id))
    refusal = policy.why_not_import_loans(actor)
    if refusal is not None:
        raise policy.refuse(refusal)
    job = BackgroundJob(kind="loan_import", created_by_id=user.id, params={
        "path": path, "fmt": fmt, "filename": filename, "dry_run": dry_run, "limits": limits})
    s.add(job)
    s.flush()
    return job


KINDS: dict[str, Callable] = {"letter_batch": _letter_batch, "export": _export, "bundle": _bundle,
                              "loan_import": _loan_import}


def create_export(s: Session, user: User, *, kind: str, fmt: str, filters: dict, full: bool, reason: str | None,
                  records: tuple[str, ...] | None, out_dir: str, evidence_dir: str | None = None,
                  locale: str = "zh") -> BackgroundJob:
    """The queued job of an audit export (`kind` "bundle": the evidence bundle), in the caller's unit of work.

    Checked now (`export.check_request`), so that a refusal is immediate and nothing is queued: the auditor
    role, the kind, format and record types, the filters (a branch in the auditor's scope) and the stated
    reason. The export itself is authorised and logged again when it runs (export.authorize), as from the
    command line; `locale` is the language of its labels.
    """
    from . import export

    f = export.ExportFilter.parse(**filters)
    reason = export.check_request(s, user, kind=kind, fmt="zip" if kind == "bundle" else fmt, f=f, reason=reason,
                                  records=records or ())
    job = BackgroundJob(kind="bundle" if kind == "bundle" else "export", created_by_id=user.id, params={
        "username": user.username, "kind": kind, "fmt": "zip" if kind == "bundle" else fmt, "filters": filters,
        "full": bool(full), "reason": reason, "records": list(records or ()), "locale": locale,
        "out_dir": out_dir, "evidence_dir": evidence_dir})
    s.add(job)
    s.flush()
    return job


def output_path(job: BackgroundJob) -> str | None:
    """The file a finished export job wrote, or None (not done, not a file job, or the file is gone)."""
    import os

    name = (job.result or {}).get("file")
    if job.status != "done" or not name:
        return None
    path = os.path.join(job.params["out_dir"], name)
    return path if os.path.isfile(path) else None


def awaiting_letters(engine, branch_id: int) -> int:
    """How many of the branch's cases are determined (their letters are issued by a batch)."""
    from sqlalchemy import func

    with read_session(engine) as s:
        return s.exec(select(func.count()).select_from(Case).where(Case.branch_id == branch_id,
                                                                   Case.state == "determined")).one()


# --- starting, running, retrying --------------------------------------------------------------------------

def start_letter_batch(engine, user: User, branch_id: int, *, redis_url: str | None = None,
                       queue: str = QUEUE, workers: int = 2) -> int:
    """Create the letter batch of a committee in a unit of work of its own and hand it to a runner; returns
    the job's id. Raises what `create_letter_batch` raises."""
    with unit_of_work(engine) as s:
        job_id = create_letter_batch(s, s.get(User, user.id), branch_id, workers=workers).id
    dispatch(engine, job_id, redis_url=redis_url, queue=queue)
    return job_id


def create_letter_batch(s: Session, user: User, branch_id: int, *, workers: int = 2) -> BackgroundJob:
    """The queued job of a committee's letter batch (the branch's determined cases), in the caller's unit of
    work; hand it to a runner (`dispatch`) once that unit is committed.

    Raises PermissionDenied (policy.why_not_issue_batch), NotFound (no such branch), ValidationFailed
    (no determined case, or a batch of the branch is already queued or running).
    """
    branch = s.get(Branch, branch_id)
    if branch is None:
        raise NotFound(f"branch {branch_id} does not exist")
    actor = queries.actor_of(s, s.get(User, user.id))
    refusal = policy.why_not_issue_batch(actor, branch.id, branch.path)
    if refusal is not None:
        raise policy.refuse(refusal)
    busy = s.exec(select(BackgroundJob.id).where(BackgroundJob.kind == "letter_batch",
                                                 BackgroundJob.status.in_(("queued", "running")))).all()
    for other in busy:
        row = s.get(BackgroundJob, other)
        if row.params.get("branch_id") == branch_id and not stalled(row):
            raise ValidationFailed(f"a letter batch of this committee is already under way (job {other})",
                                   field="branch", job_id=other)
    if not s.exec(select(Case.id).where(Case.branch_id == branch_id, Case.state == "determined")).first():
        raise ValidationFailed("no determined case of this committee awaits its letters", field="branch")
    job = BackgroundJob(kind="letter_batch", params={"branch_id": branch_id, "actor_id": user.id,
                                                     "workers": workers},
                        created_by_id=user.id)
    s.add(job)
    s.flush()
    return job


def dispatch(engine, job_id: int, *, redis_url: str | None = None, queue: str = QUEUE) -> str:
    """Hand a queued job to its runner: RQ when `redis_url` is given and Redis answers, else the app's worker
    thread. Returns the backend used."""
    backend = "thread"
    if redis_url:
        try:
            from redis import Redis
            from redis.exceptions import RedisError
            from rq import Queue

            try:
                Queue(queue, connection=Redis.from_url(redis_url, socket_connect_timeout=2)).enqueue(
                    "workflow.services.background.execute_in_worker", job_id, job_timeout=6 * 3600,
                    result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600)
                backend = "rq"
            except RedisError as exc:
                log.warning("Redis is not reachable (%s): job %s runs in the app's worker thread", exc, job_id)
        except ImportError:  # pragma: no cover - rq is a dependency
            log.warning("rq is not installed: job %s runs in the app's worker thread", job_id)
    with unit_of_work(engine) as s:
        job = s.get(BackgroundJob, job_id)
        job.backend = backend
        s.add(job)
    if backend == "thread":
        _executor().submit(execute, engine, job_id)
    return backend


_EXECUTOR: list[ThreadPoolExecutor] = []
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The process's worker thread (one: jobs run one after another, as on one RQ worker)."""
    with _EXECUTOR_LOCK:
        if not _EXECUTOR:
            _EXECUTOR.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="mianze-jobs"))
        return _EXECUTOR[0]


def execute(engine, job_id: int) -> None:
    """Run one job to its end, recording progress, the result or the error in its row. A job already done
    is not run again."""
    with unit_of_work(engine) as s:
        job = s.get(BackgroundJob, job_id)
        if job is None or job.status == "done":
            return
        job.status, job.attempts, job.error = "running", job.attempts + 1, ""
        job.started_at = job.updated_at = utcnow()
        s.add(job)
    with read_session(engine) as s:
        job = s.get(BackgroundJob, job_id)
        s.expunge(job)

    def progress(done: int, total: int | None) -> None:
        with unit_of_work(engine) as s:
            row = s.get(BackgroundJob, job_id)
            row.done, row.total, row.updated_at = done, total, utcnow()
            s.add(row)

    try:
        result = KINDS[job.kind](engine, job, progress)
    except DomainError as exc:
        _finish(engine, job_id, "failed", error=exc.message)
    except Exception as exc:  # noqa: BLE001 - the job's page says it failed; the log has the traceback
        log.exception("background job %s failed", job_id)
        _finish(engine, job_id, "failed", error=f"{type(exc).__name__}: {exc}")
    else:
        _finish(engine, job_id, "done", result=result)


def _finish(engine, job_id: int, status: str, *, result: dict | None = None, error: str = "") -> None:
    with unit_of_work(engine) as s:
        job = s.get(BackgroundJob, job_id)
        job.status, job.error = status, error[:2000]
        if result is not None:
            job.result = result
            if job.total is not None:
                job.done = job.total
        job.finished_at = job.updated_at = utcnow()
        s.add(job)


# The RQ worker's engine: `flask jobs worker` sets it before it starts working.
_WORKER_ENGINE: list = []


def execute_in_worker(job_id: int) -> None:
    """The function an RQ worker runs for a job (enqueued by name)."""
    if not _WORKER_ENGINE:
        raise RuntimeError("run RQ workers with `flask jobs worker`, which connects them to the database")
    execute(_WORKER_ENGINE[0], job_id)


def stalled(job: BackgroundJob, now: datetime | None = None) -> bool:
    """A running job whose worker stopped reporting (killed, or its machine went down)."""
    now = now or utcnow()
    beat = job.updated_at if job.updated_at.tzinfo else job.updated_at.replace(tzinfo=now.tzinfo)
    return job.status == "running" and now - beat > timedelta(seconds=STALL_SECONDS)


def retry(engine, user: User, job_id: int, *, redis_url: str | None = None, queue: str = QUEUE,
          force: bool = False) -> str:
    """Run a failed or stalled job again (it does only what is missing). `force`: also a running job whose
    heartbeat is recent (an operator who knows its worker is gone). Returns the backend used."""
    with unit_of_work(engine) as s:
        requeue(s, s.get(User, user.id), job_id, force=force)
    return dispatch(engine, job_id, redis_url=redis_url, queue=queue)


def requeue(s: Session, user: User, job_id: int, *, force: bool = False) -> BackgroundJob:
    """Queue a failed or stalled job again in the caller's unit of work (`dispatch` it after the commit)."""
    job = s.get(BackgroundJob, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    refusal = policy.why_not_see_job(queries.actor_of(s, user), job.created_by_id)
    if refusal is not None:
        raise policy.refuse(refusal)
    if not (job.status == "failed" or stalled(job) or (force and job.status == "running")):
        raise ValidationFailed("only a failed or stalled job can be run again", field="job")
    job.status, job.error = "queued", ""
    s.add(job)
    s.flush()
    return job


def get(session: Session, user: User, job_id: int) -> BackgroundJob:
    """A job the user may see (policy.why_not_see_job), or NotFound / PermissionDenied."""
    job = session.get(BackgroundJob, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    refusal = policy.why_not_see_job(queries.actor_of(session, user), job.created_by_id)
    if refusal is not None:
        raise policy.refuse(refusal)
    return job


def recent(session: Session, user: User, limit: int = 20) -> list[BackgroundJob]:
    """The user's latest jobs (a head-office administrator's and an auditor's: everyone's)."""
    actor = queries.actor_of(session, user)
    query = select(BackgroundJob).order_by(BackgroundJob.id.desc()).limit(limit)
    if policy.why_not_see_job(actor, None) is not None:
        query = query.where(BackgroundJob.created_by_id == user.id)
    return list(session.exec(query))
