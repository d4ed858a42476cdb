"""The NPL intake list (新增不良待立案): non-performing loans awaiting a case, grouped by enterprise, with the
staff who handled them and the scope check's verdict; register a case from a group in one step, or record
why none is opened. Committee chairs and administrators, for loans in their scope (policy.why_not_triage)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..domain import intake as rules
from ..domain import policy
from ..domain.errors import NotFound as RecordNotFound
from ..domain.errors import ValidationFailed
from ..models import Branch
from ..services import intake, queries
from . import access
from .common import actor, deny, reading, text_field, work
from .i18n import is_zh
from .messages import translate

bp = Blueprint("intake", __name__, url_prefix="/intake")


def _may_triage() -> None:
    refusal = policy.why_not_register(current_user.actor)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)


@bp.route("/")
@login_required
def index():
    _may_triage()
    q = request.args.get("q", "").strip()
    raw = request.args.get("page", "1")
    page = min(int(raw), 100_000) if raw.isdigit() and int(raw) > 0 else 1
    with reading() as s:
        groups, total = intake.groups(s, actor(s), q=q, offset=(page - 1) * intake.PAGE)
    pages = max((total + intake.PAGE - 1) // intake.PAGE, 1)
    return render_template("intake/index.html", groups=groups, total=total, q=q, page=page, pages=pages,
                           reasons=rules.DISMISSAL_REASONS)


@bp.route("/<int:enterprise_id>/register", methods=["POST"])
@login_required
def register(enterprise_id: int):
    _may_triage()
    try:
        with work() as s:
            case = intake.register(s, actor(s), enterprise_id, batch_report=request.form.get("batch_report") == "1")
            case_id, number = case.id, case.number
            # Registered to a committee above the registrar's branch (delegated authority): it leaves their scope.
            committee = s.get(Branch, case.branch_id)
            visible = policy.can_view(current_user.actor, queries.aggregate(s, case).view())
    except (ValidationFailed, RecordNotFound) as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("intake.index"))
    if not visible:
        flash(_("The case has been registered to the committee of %(branch)s, which has authority over it; it is "
                "now in that committee's hands.",
                branch=committee.name if is_zh() else (committee.name_en or committee.name)), "success")
        return redirect(url_for("intake.index"))
    flash(_("Case %(number)s has been registered for the enterprise's non-performing loans.", number=number),
          "success")
    return redirect(url_for("cases.show", case_id=case_id))


@bp.route("/<int:enterprise_id>/dismiss", methods=["POST"])
@login_required
def dismiss(enterprise_id: int):
    _may_triage()
    reason = request.form.get("reason", "")
    try:
        with work() as s:
            n = intake.dismiss(s, actor(s), enterprise_id, reason, text_field("note") or "")
    except (ValidationFailed, RecordNotFound) as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("intake.index"))
    flash(_("No case is opened for %(n)s loan(s); the reason is recorded.", n=n), "success")
    return redirect(url_for("intake.index"))

