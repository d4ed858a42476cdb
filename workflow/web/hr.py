"""The HR list (扣发与返还): for head-office administrators and internal auditors (`policy.why_not_hr_export`),
the month's deductions and refunds per person, and its export as CSV or XLSX.

`bp` is registered by the application (url prefix /hr). Exporting is a POST with a stated reason, written to
the access log and the audit chain with the file in the same unit of work; following an export link (a GET)
changes nothing and logs nothing, it returns to the page.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..domain import hr as hr_domain
from ..domain import policy
from ..domain.errors import ValidationFailed
from ..services import hr
from ..services.export import CST
from .access import refusal_text
from .common import actor, deny, reading, work
from .messages import translate

bp = Blueprint("hr", __name__, url_prefix="/hr")
MIME = {"csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@bp.before_request
@login_required
def _hr_only():
    refusal = policy.why_not_hr_export(current_user.actor)
    if refusal is not None:
        deny(refusal_text(refusal), refusal.code)
    return None


def _month(raw: str | None) -> str:
    return hr_domain.parse_month(raw) if (raw or "").strip() else hr_domain.month_of(datetime.now(CST).date())


@bp.get("/")
def index():
    """The month's list (this month by default) and the export form."""
    error = None
    try:
        month = _month(request.args.get("month"))
    except ValidationFailed as exc:
        error, month = translate(exc.message), hr_domain.month_of(datetime.now(CST).date())
    with reading() as s:
        lines = hr.month_lines(s, month)
    return render_template("hr/index.html", month=month, lines=lines, summary=hr.summary(lines), error=error,
                           sanction_types=hr_domain.SANCTION_TYPES, decisions=hr_domain.IMPROVING_DECISIONS), \
        (400 if error else 200)


@bp.route("/export", methods=["GET", "POST"])
def export():
    """The month's list as a file, logged with its reason; a GET only returns to the page."""
    if request.method != "POST":
        return redirect(url_for("hr.index"))
    month, fmt = (request.form.get("month") or "").strip(), (request.form.get("format") or "xlsx").strip()
    try:
        with work() as s:
            details = hr.authorize_export(s, actor(s), month=month, fmt=fmt, reason=request.form.get("reason"))
            body = hr.render(details["format"], details["month"], hr.month_lines(s, details["month"]))
    except ValidationFailed as exc:
        with reading() as s:
            shown = month if _valid(month) else hr_domain.month_of(datetime.now(CST).date())
            lines = hr.month_lines(s, shown)
        return render_template("hr/index.html", month=shown, lines=lines, summary=hr.summary(lines),
                               error=translate(exc.message), sanction_types=hr_domain.SANCTION_TYPES,
                               decisions=hr_domain.IMPROVING_DECISIONS), 400
    response = Response(body, content_type=MIME[details["format"]])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{hr.filename(details["month"], details["format"])}"')
    response.headers["Cache-Control"] = "no-store"
    return response


def _valid(month: str) -> bool:
    try:
        hr_domain.parse_month(month)
    except ValidationFailed:
        return False
    return True
