"""Background jobs in the browser: start a committee's letter batch, follow a job's progress (the page polls
itself, with or without JavaScript), run a failed or stalled job again."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func
from sqlmodel import select

from ..domain import policy
from ..domain.errors import NotFound as RecordNotFound
from ..domain.errors import ValidationFailed
from ..models import Branch, Case
from ..services import access_log, background
from ..unit import after_commit, write_now
from .common import actor, deny, int_field, not_found, reading, work
from .messages import translate

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def _runner() -> dict:
    return {"redis_url": current_app.config.get("REDIS_URL"),
            "queue": current_app.config.get("JOBS_QUEUE") or background.QUEUE}


def _dispatch_after_commit(job_id: int) -> None:
    """Hand the job to its runner once the request's unit of work (which created or queued it) is committed."""
    engine, runner = current_app.extensions["mianze.engine"], _runner()
    after_commit(lambda: background.dispatch(engine, job_id, **runner))


def _committees(s) -> list[tuple[Branch, int]]:
    """The committees whose letter batch the user may start, with their determined cases."""
    me = current_user.actor
    waiting = dict(s.exec(select(Case.branch_id, func.count()).where(Case.state == "determined")
                          .group_by(Case.branch_id)).all())
    out = []
    for b in s.exec(select(Branch).where(Branch.level <= 1).order_by(Branch.path)):
        if policy.why_not_issue_batch(me, b.id, b.path) is None:
            out.append((b, waiting.get(b.id, 0)))
    return out


@bp.route("/")
@login_required
def index():
    with reading() as s:
        jobs = background.recent(s, actor(s))
    return render_template("jobs/index.html", jobs=jobs, stalled=background.stalled)


@bp.route("/letter-batch", methods=["GET", "POST"])
@login_required
def letter_batch():
    with reading() as s:
        committees = _committees(s)
    if not committees:
        deny(str(policy.NOT_BATCH.text()), policy.NOT_BATCH.code)
    errors: dict[str, str] = {}
    if request.method == "POST":
        branch_id = int_field("branch_id")
        try:
            with work() as s:
                job_id = background.create_letter_batch(s, actor(s), branch_id or 0).id
            _dispatch_after_commit(job_id)
        except (ValidationFailed, RecordNotFound) as exc:
            errors["branch_id"] = translate(exc.message)
        else:
            flash(_("The letter batch has started: this page shows its progress."), "success")
            return redirect(url_for("jobs.show", job_id=job_id))
    return render_template("jobs/letter_batch.html", committees=committees, errors=errors), (400 if errors else 200)


@bp.route("/<int:job_id>")
@login_required
def show(job_id: int):
    with reading() as s:
        job = background.get(s, actor(s), job_id)  # NotFound: 404; PermissionDenied: 403 with the reason
        is_stalled = background.stalled(job)
    return render_template("jobs/show.html", job=job, stalled=is_stalled,
                           polling=job.status in ("queued", "running") and not is_stalled)


@bp.route("/<int:job_id>/download")
@login_required
def download(job_id: int):
    """The file an export or bundle job wrote, for whoever may see the job; the download is logged."""
    with reading() as s:
        job = background.get(s, actor(s), job_id)  # NotFound: 404; PermissionDenied: 403 with the reason
        path = background.output_path(job)
        if path is None:
            not_found()
        result = dict(job.result)
    access_log.record(write_now(), current_user, "export", target=f"download:job-{job_id}",
                      details={"file": result["name"], "bytes": result["bytes"]})
    response = send_file(path, mimetype=result["mimetype"], as_attachment=True, download_name=result["name"])
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:job_id>/retry", methods=["POST"])
@login_required
def retry(job_id: int):
    try:
        with work() as s:
            background.requeue(s, actor(s), job_id)
        _dispatch_after_commit(job_id)
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
    else:
        flash(_("The job runs again: it does only what is still missing."), "success")
    return redirect(url_for("jobs.show", job_id=job_id))
