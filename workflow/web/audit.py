"""Internal audit in the web UI (auditors only): exports, evidence bundles and the access log.

`bp` is registered by the application (url prefix /audit). Every route needs a signed-in user with the
auditor role (403 otherwise). Downloads stream: CSV and JSON Lines of one record type row batch by row batch;
XLSX workbooks, multi-file ZIPs and bundles are written to a temporary file first (a ZIP and a workbook need
a seekable file) and then streamed in chunks. Texts are translated with Flask-Babel like the rest of the web UI.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from ..db import read_session, unit_of_work
from ..domain.errors import ValidationFailed
from ..models import OUTCOMES, User
from ..services import access_log, background, export
from ..unit import after_commit
from .common import work
from .i18n import _l, user_locale
from .messages import translate

bp = Blueprint("audit", __name__, url_prefix="/audit")

MIME = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "zip": "application/zip"}


def _engine():
    return current_app.extensions["mianze.engine"]


def _roles(user) -> frozenset[str]:
    roles = getattr(user, "role_set", None) or getattr(user, "roles", None) or ""
    return frozenset(roles.split()) if isinstance(roles, str) else frozenset(roles)


@bp.before_request
def _auditors_only():
    if not getattr(current_user, "is_authenticated", False):
        manager = getattr(current_app, "login_manager", None)
        if manager is not None:
            return manager.unauthorized()
        abort(401)
    if "auditor" not in _roles(current_user):
        abort(403)
    return None


ACTION_LABELS = {
    "view_case": _l("Case viewed"), "download_letter": _l("Letter downloaded"),
    "download_evidence": _l("Evidence downloaded"), "preview_evidence": _l("Evidence previewed"),
    "download_case_file": _l("Case file downloaded"), "export": _l("Export"), "api_read": _l("API read"),
    "sign_in": _l("Signed in"), "sign_in_failed": _l("Sign-in failed"), "sign_out": _l("Signed out"),
}


def action_label(code: str) -> str:
    """An access-log action in the UI language (the code itself for an action without a label)."""
    label = ACTION_LABELS.get(code)
    return str(label) if label is not None else code


def _render(template: str, **context):
    return render_template(template, action_label=action_label, **context)


def _params() -> dict:
    src = request.form if request.method == "POST" else request.args
    return {k: (src.get(k) or "").strip() for k in ("kind", "format", "records", "branch", "from", "to", "state",
                                                    "outcome", "reason", "full")}


def _filters(p: dict) -> dict:
    return {"branch": p["branch"] or None, "date_from": p["from"] or None, "date_to": p["to"] or None,
            "state": p["state"] or None, "outcome": p["outcome"] or None}


def _download(body, fmt: str, name: str) -> Response:
    response = Response(body, mimetype=MIME[fmt].split(";")[0], content_type=MIME[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(*, failed: str | None = None, errors: dict | None = None, form: dict | None = None, status: int = 200):
    """The auditor's page: export forms, the bundle form, a link to the access log. After a refused request
    (`failed`: "export" or "bundle") that form comes back with what was entered and its errors."""
    from ..domain.states import STATE_CODES

    with read_session(_engine()) as s:
        branches = export.branch_choices(s, s.get(User, current_user.id))
    return _render("audit/index.html", kinds=list(export.KINDS), records=export.RECORD_TYPES,
                   case_records=export.CASE_RECORDS, states=STATE_CODES, outcomes=OUTCOMES,
                   formats=export.FORMATS, branches=branches, failed=failed, errors=errors or {},
                   form=form or {}), status


def _form_back(which: str, exc: ValidationFailed, p: dict):
    """The form again (400) with the values entered and the refusal next to its field, in the UI language."""
    field = exc.details.get("field")
    key = field if field in ("branch", "from", "to", "state", "outcome", "reason", "format", "records") else "_"
    return _page(failed=which, errors={key: translate(exc.message)}, form=p, status=400)


@bp.get("/")
def index():
    """The auditor's page: export forms, the bundle form, a link to the access log."""
    return _page()


@bp.route("/export", methods=["GET", "POST"])
def export_download():
    """Download an export: CSV/JSON Lines of one record type stream directly; the rest is a background job.
    Only the audit page's form (a POST) exports: following a link (a GET) changes nothing and logs nothing.
    Every export states its reason; a refused request gives the form back with the refusal."""
    if request.method != "POST":
        return redirect(url_for("audit.index"))
    p = _params()
    try:
        return _export(p)
    except ValidationFailed as exc:
        return _form_back("export", exc, p)


def _export(p: dict):
    kind, fmt, full = p["kind"] or "cases", p["format"] or "xlsx", p["full"] in ("1", "on", "true", "yes")
    if fmt not in export.FORMATS:
        raise ValidationFailed(_("Unknown format “%(format)s”.", format=fmt), field="format")
    names = export.record_names(kind)
    if p["records"] and p["records"] != "all":
        if p["records"] not in names:
            raise ValidationFailed(_("Unknown record type “%(records)s”.", records=p["records"]), field="records")
        names = (p["records"],)
    f = export.ExportFilter.parse(**_filters(p))
    locale = user_locale()
    if fmt in ("csv", "jsonl") and len(names) == 1:
        with unit_of_work(_engine()) as s:
            details = export.authorize(s, s.get(User, current_user.id), kind=kind, fmt=fmt, f=f, full=full,
                                       reason=p["reason"], locale=locale)
        name = names[0]

        def generate():
            with read_session(_engine()) as s:
                yield from export.chunks(fmt, name, export.rows(s, name, f, full=full, locale=locale))

        response = _download(stream_with_context(generate()), fmt, export.filename(name.replace("_", "-"), fmt))
        if details.get("checkpoint"):  # a single CSV or JSON Lines file has no room of its own for it
            response.headers["X-Audit-Checkpoint"] = "seq={seq} sha256={hash}".format(**details["checkpoint"])
        return response
    # A workbook, or several files in a ZIP: a background job writes it; its page offers the download.
    return _start_job(kind=kind, fmt=fmt, full=full, reason=p["reason"], records=names, filters=_filters(p),
                      locale=locale)


@bp.route("/bundle", methods=["GET", "POST"])
def bundle_download():
    """Download the evidence bundle of the selected cases (ZIP with a hashed manifest)."""
    if request.method != "POST":
        return redirect(url_for("audit.index"))
    p = _params()
    full = p["full"] in ("1", "on", "true", "yes")
    try:
        export.ExportFilter.parse(**_filters(p))
        return _start_job(kind="bundle", fmt="zip", full=full, reason=p["reason"], records=None,
                          filters=_filters(p), locale=user_locale())
    except ValidationFailed as exc:
        return _form_back("bundle", exc, p)


def _start_job(**spec):
    """Queue an export or bundle job in the request's unit of work, hand it to its runner after the commit,
    and send the auditor to its page (progress, then the download)."""
    with work() as s:
        job = background.create_export(s, s.get(User, current_user.id), out_dir=current_app.config["JOBS_DIR"],
                                       evidence_dir=current_app.config["EVIDENCE_DIR"], **spec)
        job_id = job.id
    engine = _engine()
    redis_url, queue = current_app.config.get("REDIS_URL"), current_app.config.get("JOBS_QUEUE") or background.QUEUE
    after_commit(lambda: background.dispatch(engine, job_id, redis_url=redis_url, queue=queue))
    flash(_("The export is being prepared in the background: this page offers it once it is ready."), "success")
    return redirect(url_for("jobs.show", job_id=job_id))


@bp.get("/access-log")
def access_log_list():
    """The access log, newest first, filtered by user, action, case and period (China Standard Time days)."""
    a = request.args
    try:
        since = datetime.combine(datetime.fromisoformat(a["from"]).date(), time(0), export.CST) if a.get("from") \
            else None
        until = (datetime.combine(datetime.fromisoformat(a["to"]).date() + timedelta(days=1), time(0), export.CST)
                 if a.get("to") else None)
        case_id = int(a["case_id"]) if a.get("case_id") else None
        page = int(a.get("page") or 1)
    except ValueError:
        raise ValidationFailed(_("The dates must be YYYY-MM-DD and the case and page numbers whole numbers.")) \
            from None
    with read_session(_engine()) as s:
        result = access_log.entries(s, username=a.get("username") or None, action=a.get("action") or None,
                                    case_id=case_id, since=since, until=until, page=page)
    return _render("audit/access_log.html", result=result, actions=access_log.ACTIONS, args=a)
