"""Administration of the documents' form: the bank's full name, 抄送, and each organ's names, short form for
document numbers, signatory and 印发 line (head-office administrators; every change audited)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..domain.errors import ValidationFailed
from ..services import document_form
from .common import actor, deny, reading, text_field, work
from .messages import translate

bp = Blueprint("documents", __name__, url_prefix="/admin/documents")


@bp.before_request
@login_required
def _admins_only():
    if not current_user.has("admin"):
        deny(_("Administration is for administrators."))


def _page(errors: dict[str, str] | None = None, editing: int | None = None, status: int = 200):
    with reading() as s:
        form = document_form.form(s)
        organs = document_form.organs(s)
    return render_template("admin/documents.html", form=form, organs=organs, errors=errors or {}, editing=editing,
                           values=request.form, may_edit=current_user.head_office), status


@bp.get("/")
def settings():
    return _page()


@bp.post("/")
def save_form():
    if not current_user.head_office:
        deny(_("Only head-office administrators change bank-wide settings."))
    try:
        with work() as s:
            document_form.save_form(s, actor(s), bank_name=text_field("bank_name"), cc=text_field("cc"))
    except ValidationFailed as exc:
        return _page({exc.details.get("field") or "bank_name": translate(exc.message)}, status=400)
    flash(_("The form of the documents has been saved; documents issued from now on use it."), "success")
    return redirect(url_for("documents.settings"))


@bp.post("/organs/<int:branch_id>")
def save_organ(branch_id: int):
    if not current_user.head_office:
        deny(_("Only head-office administrators change bank-wide settings."))
    try:
        with work() as s:
            document_form.save_organ(s, actor(s), branch_id, short_name=text_field("short_name"),
                                     committee_name=text_field("committee_name"),
                                     appeal_committee_name=text_field("appeal_committee_name"),
                                     signatory=text_field("signatory"), printed_by=text_field("printed_by"))
    except ValidationFailed as exc:
        return _page({exc.details.get("field") or "short_name": translate(exc.message)}, editing=branch_id,
                     status=400)
    flash(_("The organ has been saved; documents issued from now on use it."), "success")
    return redirect(url_for("documents.settings") + f"#organ-{branch_id}")
