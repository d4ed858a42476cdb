"""`flask jobs`: the RQ worker that runs background jobs in production, and the operator's view of jobs."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app


def _engine():
    return current_app.extensions["mianze.engine"]


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def register_cli(app: Flask) -> None:
    @app.cli.group("jobs")
    def jobs_group():
        """Background jobs (letter batches): the RQ worker, the list, running a job again."""

    @jobs_group.command("worker")
    @click.option("--burst", is_flag=True, help="stop once the queue is empty")
    def worker(burst):
        """Run background jobs from the Redis queue (REDIS_URL; MIANZE_JOBS_QUEUE names the queue). One job at a
        time per worker; start as many workers, on as many machines, as the load needs."""
        from redis import Redis
        from rq import Queue, SimpleWorker

        from ..services import background, outbox

        url = current_app.config.get("REDIS_URL")
        if not url:
            _fail("REDIS_URL is not set: without Redis, jobs run in the app's worker thread", 2)
        background._WORKER_ENGINE[:] = [_engine()]
        name = current_app.config.get("JOBS_QUEUE") or background.QUEUE
        # notification deliveries enqueued after their commit (services/notifications.deliveries_queued)
        outbox._WORKER[:] = [(_engine(), outbox.OutboxSettings.from_config(current_app.config), url, name)]
        connection = Redis.from_url(url)
        queue = Queue(name, connection=connection)
        # SimpleWorker runs each job in this process (no fork per job): the job shares the process's
        # database pool and its letter-rendering processes, and a killed worker takes its job with it
        # (the job stalls and is run again with `flask jobs retry`, doing only what is missing). The scheduler
        # starts the deliveries' retries at their time (outbox.deliver_in_worker schedules them).
        SimpleWorker([queue], connection=connection).work(burst=burst, with_scheduler=not burst)

    @jobs_group.command("list")
    @click.option("--limit", default=20, show_default=True)
    def list_jobs(limit):
        """The latest jobs with their status and progress, as JSON lines."""
        from sqlmodel import select

        from ..db import read_session
        from ..models import BackgroundJob
        from ..services import background

        with read_session(_engine()) as s:
            for job in s.exec(select(BackgroundJob).order_by(BackgroundJob.id.desc()).limit(limit)):
                click.echo(json.dumps({"id": job.id, "kind": job.kind, "status": job.status,
                                       "stalled": background.stalled(job), "backend": job.backend,
                                       "done": job.done, "total": job.total, "attempts": job.attempts,
                                       "error": job.error or None}, ensure_ascii=False))

    @jobs_group.command("retry")
    @click.argument("job_id", type=int)
    @click.option("--as", "username", required=True, help="who runs it again (its starter or a head-office admin)")
    @click.option("--force", is_flag=True, help="also a running job whose worker you know is gone")
    def retry(job_id, username, force):
        """Run a failed or stalled job again: it does only what is missing."""
        from sqlmodel import select

        from ..db import read_session
        from ..domain.errors import DomainError
        from ..models import User
        from ..services import background

        with read_session(_engine()) as s:
            user = s.exec(select(User).where(User.username == username)).first()
            if user is None:
                _fail(f"unknown user '{username}'", 2)
            s.expunge(user)
        try:
            backend = background.retry(_engine(), user, job_id, redis_url=current_app.config.get("REDIS_URL"),
                                       queue=current_app.config.get("JOBS_QUEUE") or background.QUEUE, force=force)
        except DomainError as exc:
            _fail(exc.message, 2)
        click.echo(f"job {job_id} queued again ({backend})")
