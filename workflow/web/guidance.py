"""The precedent library (案例引导) pages: search, one precedent, proposing from a final case, editing,
approving and rejecting. Approved precedents are guidance for every signed-in member of staff; proposals
are seen by their curators and internal auditors (policy.can_view_precedent)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlmodel import select

from ..domain import policy
from ..domain.errors import NotFound as RecordNotFound
from ..domain.errors import ValidationFailed
from ..models import OUTCOMES, STAGES, Branch
from ..services import guidance, guidance_export
from . import access
from .common import (
    actor,
    deny,
    expected_version,
    int_field,
    load_case,
    not_found,
    reading,
    require,
    text_field,
    work,
)
from .messages import translate

bp = Blueprint("guidance", __name__, url_prefix="/precedents")
PRODUCTS = ("inclusive_sme", "farmer_business")


def _load(s, precedent_id: int):
    try:
        p = guidance.get(s, precedent_id)
    except RecordNotFound:
        not_found()
    view = guidance.precedent_view(s, p)
    if not policy.can_view_precedent(current_user.actor, view):
        deny(access.refusal_text(policy.NOT_CURATOR), policy.NOT_CURATOR.code)
    return p, view


def _filters() -> dict[str, str]:
    f = {k: (request.values.get(k) or "").strip()[:100] for k in ("code", "stage", "outcome", "product", "text")}
    f["stage"] = f["stage"] if f["stage"] in STAGES else ""
    f["outcome"] = f["outcome"] if f["outcome"] in OUTCOMES else ""
    f["product"] = f["product"] if f["product"] in PRODUCTS else ""
    return f


@bp.get("/")
@login_required
def index():
    f = _filters()
    with reading() as s:
        found = guidance.search(s, current_user, **f)
        proposed = guidance.search(s, current_user, status="proposed")
        names = {b.id: b.name for b in s.exec(select(Branch).where(Branch.level <= 1))}
    return render_template("guidance/index.html", found=found, proposed=proposed, names=names, f=f, stages=STAGES,
                           outcomes=OUTCOMES, products=PRODUCTS)


def _download(body: bytes, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/booklet.pdf", methods=["GET", "POST"])
@login_required
def booklet():
    """The approved precedents matching the search, as a PDF booklet in Chinese, recorded as an export with the
    stated reason (a POST; a GET only returns to the search)."""
    return _export(lambda s, found, f, reason: guidance_export.booklet_pdf(s, actor(s), found, f, reason),
                   "application/pdf", "mianze-precedents.pdf")


@bp.route("/export.xlsx", methods=["GET", "POST"])
@login_required
def export():
    """The approved precedents matching the search, as an XLSX workbook in Chinese, recorded as an export with
    the stated reason (a POST; a GET only returns to the search)."""
    return _export(lambda s, found, f, reason: guidance_export.precedents_xlsx(s, actor(s), found, f, reason),
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "mianze-precedents.xlsx")


def _export(write, mimetype: str, name: str):
    f = _filters()
    back = url_for("guidance.index", **{k: v for k, v in f.items() if v})
    if request.method != "POST":
        return redirect(back)
    try:
        with work() as s:
            body = write(s, guidance.search(s, current_user, **f), f, request.form.get("reason"))
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(back)
    return _download(body, mimetype, name)


@bp.route("/<int:precedent_id>", methods=["GET", "POST"])
@login_required
def show(precedent_id: int):
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with work() as s:
                p, view = _load(s, precedent_id)
                refusal = policy.why_not_edit_precedent(current_user.actor, view)
                if refusal:
                    deny(access.refusal_text(refusal), refusal.code)
                findings = {n: request.form.get(f"findings_{n}", "") for n in range(len(p.stages))}
                guidance.edit(s, precedent_id, actor(s), title=text_field("title"), reasoning=text_field("reasoning"),
                              findings=findings)
        except ValidationFailed as exc:
            errors = {exc.details.get("field", "_"): _("The texts still name a person, the enterprise, a loan or a "
                                                       "number of the case.") if exc.details.get("found")
                      else _("Check this field.")}
        else:
            flash(_("The precedent has been saved."), "success")
            return redirect(url_for("guidance.show", precedent_id=precedent_id))
    with reading() as s:
        p, view = _load(s, precedent_id)
        branch = s.get(Branch, p.branch_id)
        may_edit = p.status == "proposed" and policy.why_not_edit_precedent(current_user.actor, view) is None
        may_decide = p.status == "proposed" and policy.why_not_decide_precedent(current_user.actor, view) is None
        why_not_decide = policy.why_not_decide_precedent(current_user.actor, view)
    return render_template("guidance/show.html", p=p, branch=branch, may_edit=may_edit, may_decide=may_decide,
                           why_not_decide=access.refusal_text(why_not_decide) if why_not_decide else None,
                           errors=errors, form=request.form), (400 if errors else 200)


def _decide(precedent_id: int, verb: str):
    try:
        with work() as s:
            _p, view = _load(s, precedent_id)
            refusal = policy.why_not_decide_precedent(current_user.actor, view)
            if refusal:
                deny(access.refusal_text(refusal), refusal.code)
            if verb == "approve":
                guidance.approve(s, precedent_id, actor(s))
            else:
                guidance.reject(s, precedent_id, actor(s), text_field("reason"))
    except ValidationFailed as exc:
        flash(_("The texts still name a person, the enterprise, a loan or a number of the case.")
              if exc.details.get("found") else _("Give a reason."), "error")
        return redirect(url_for("guidance.show", precedent_id=precedent_id)), 303
    flash(_("The precedent has been approved.") if verb == "approve" else _("The precedent has been rejected."),
          "success")
    return redirect(url_for("guidance.show", precedent_id=precedent_id))


@bp.post("/<int:precedent_id>/approve")
@login_required
def approve(precedent_id: int):
    return _decide(precedent_id, "approve")


@bp.post("/<int:precedent_id>/reject")
@login_required
def reject(precedent_id: int):
    return _decide(precedent_id, "reject")


@bp.post("/propose/<int:case_id>")
@login_required
def propose(case_id: int):
    version = expected_version()
    respondent_id = int_field("respondent_id")
    with work() as s:
        case, cf = load_case(s, case_id)
        require(cf, "propose_precedent")
        if respondent_id is None:
            flash(_("Choose a respondent."), "error")
            return redirect(url_for("cases.show", case_id=case_id)), 303
        p = guidance.propose(s, case, actor(s), respondent_id, expected_version=version)
        pid = p.id
    flash(_("The precedent has been proposed; a second person approves it."), "success")
    return redirect(url_for("guidance.show", precedent_id=pid))
