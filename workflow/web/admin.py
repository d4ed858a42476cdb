"""Administration: branches, users and roles, rule-set versions, the holiday calendar."""

from __future__ import annotations

import json
from datetime import date

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlmodel import select

from ..db import unit_of_work
from ..domain import rules
from ..domain.errors import ValidationFailed
from ..models import ROLES, Branch, CalendarOverride, RuleSetVersion, User
from ..services import accounts, deadlines, rulesets
from .common import actor, deny, engine, int_field, not_found, reading, text_field, today
from .messages import translate

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def _admins_only():
    if not current_user.has("admin"):
        deny(_("Administration is for administrators."))


def _head_office_only():
    if not current_user.head_office:
        deny(_("Only head-office administrators change bank-wide settings."))


def _subtree(s):
    return list(s.exec(select(Branch).where(Branch.path.like(current_user.branch_path + "%")).order_by(Branch.path)))


def _errors_from(exc: ValidationFailed, default: str = "_") -> dict[str, str]:
    return {exc.details.get("field") or default: translate(exc.message)}


@bp.get("/")
def index():
    return render_template("admin/index.html")


# --- branches -----------------------------------------------------------------------------------------------

@bp.route("/branches", methods=["GET", "POST"])
def branches():
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with unit_of_work(engine()) as s:
                accounts.create_branch(s, actor(s), code=text_field("code"), name=text_field("name"),
                                       name_en=text_field("name_en"), parent_id=int_field("parent_id") or 0)
        except ValidationFailed as exc:
            errors = _errors_from(exc, "code")
        else:
            flash(_("The branch has been added."), "success")
            return redirect(url_for("admin.branches"))
    with reading() as s:
        rows = _subtree(s)
    return render_template("admin/branches.html", branches=rows, errors=errors, form=request.form), \
        (400 if errors else 200)


@bp.post("/branches/<int:branch_id>")
def update_branch(branch_id: int):
    try:
        with unit_of_work(engine()) as s:
            accounts.update_branch(s, actor(s), branch_id, name=text_field("name"), name_en=text_field("name_en"),
                                   active=request.form.get("active") == "1")
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
    else:
        flash(_("The branch has been updated."), "success")
    return redirect(url_for("admin.branches"))


# --- users --------------------------------------------------------------------------------------------------

@bp.route("/users", methods=["GET", "POST"])
def users():
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with unit_of_work(engine()) as s:
                accounts.create_user(s, actor(s), username=text_field("username"), name=text_field("name"),
                                     employee_no=text_field("employee_no"), branch_id=int_field("branch_id") or 0,
                                     roles=request.form.getlist("roles"), password=request.form.get("password", ""),
                                     locale=request.form.get("locale", "zh"),
                                     hasher=current_app.extensions["mianze.hasher"])
        except ValidationFailed as exc:
            errors = _errors_from(exc, "username")
        else:
            flash(_("The user has been created."), "success")
            return redirect(url_for("admin.users"))
    q = (request.args.get("q") or "").strip()
    with reading() as s:
        branch_rows = _subtree(s)
        query = select(User).where(User.branch_id.in_([b.id for b in branch_rows])).order_by(User.username)
        if q:
            query = query.where((User.username.like(f"%{q}%")) | (User.name.like(f"%{q}%")))
        rows = list(s.exec(query.limit(500)))
    return render_template("admin/users.html", users=rows, branches={b.id: b for b in branch_rows},
                           branch_list=branch_rows, roles=ROLES, errors=errors, form=request.form, q=q), \
        (400 if errors else 200)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user(user_id: int):
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with unit_of_work(engine()) as s:
                if request.form.get("form") == "password":
                    accounts.set_password(s, actor(s), user_id, request.form.get("password", ""),
                                          hasher=current_app.extensions["mianze.hasher"])
                    done = _("The password has been set.")
                else:
                    accounts.update_user(s, actor(s), user_id, name=text_field("name"),
                                         branch_id=int_field("branch_id") or 0, roles=request.form.getlist("roles"),
                                         active=request.form.get("active") == "1")
                    done = _("The user has been updated.")
        except ValidationFailed as exc:
            errors = _errors_from(exc, "name")
        else:
            flash(done, "success")
            return redirect(url_for("admin.user", user_id=user_id))
    with reading() as s:
        row = s.get(User, user_id)
        if row is None:
            not_found()
        branch_rows = _subtree(s)
        if row.branch_id not in {b.id for b in branch_rows}:
            deny(_("This user belongs to a branch outside your subtree."))
    return render_template("admin/user.html", user=row, branch_list=branch_rows, roles=ROLES, errors=errors), \
        (400 if errors else 200)


# --- rule sets ----------------------------------------------------------------------------------------------

@bp.get("/rulesets")
def rule_sets():
    with reading() as s:
        rows = list(s.exec(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())))
        in_force = rulesets.version_in_force(s, today())
    return render_template("admin/rulesets.html", rows=rows, in_force=in_force)


@bp.get("/rulesets/<int:version>")
def rule_set(version: int):
    with reading() as s:
        row = s.exec(select(RuleSetVersion).where(RuleSetVersion.version == version)).first()
        if row is None:
            not_found()
        rs = rulesets.parsed(row)
    return render_template("admin/ruleset.html", row=row, rs=rs)


@bp.route("/rulesets/draft", methods=["GET", "POST"])
def draft_rule_set():
    """Edit a draft (the JSON document), check it, and publish it as a new version effective from a date."""
    _head_office_only()
    errors: dict[str, str] = {}
    checked = False
    if request.method == "POST":
        text = request.form.get("data", "")
        note = text_field("note")
        effective = request.form.get("effective_from", "")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            errors["data"] = _("The document is not valid JSON (line %(line)d, column %(col)d).",
                               line=exc.lineno, col=exc.colno)
            data = None
        try:
            effective_from = date.fromisoformat(effective)
        except ValueError:
            errors["effective_from"] = _("Enter the date from which the version applies.")
            effective_from = None
        if data is not None and effective_from is not None:
            try:
                rules.parse_rule_set({**data, "effective_from": effective_from.isoformat()})
            except ValidationFailed as exc:
                errors["data"] = exc.message
        if not errors and request.form.get("publish") == "1":
            if not note:
                errors["note"] = _("Say what changed in this version.")
            else:
                with unit_of_work(engine()) as s:
                    row = rulesets.publish(s, actor(s), data, effective_from, note)
                    version = row.version
                flash(_("Version %(n)d has been published.", n=version), "success")
                return redirect(url_for("admin.rule_set", version=version))
        checked = not errors
    else:
        with reading() as s:
            current = rulesets.version_in_force(s, today())
            data = dict(current.data)
        text = json.dumps(data, ensure_ascii=False, indent=2)
        note, effective = "", today().isoformat()
    return render_template("admin/ruleset_draft.html", text=text, note=note, effective=effective, errors=errors,
                           checked=checked), (400 if errors else 200)


# --- calendar -----------------------------------------------------------------------------------------------

@bp.route("/calendar", methods=["GET", "POST"])
def calendar():
    errors: dict[str, str] = {}
    if request.method == "POST":
        _head_office_only()
        try:
            day = date.fromisoformat(request.form.get("day", ""))
        except ValueError:
            errors["day"] = _("Enter a date.")
        else:
            try:
                with unit_of_work(engine()) as s:
                    accounts.set_calendar_override(s, actor(s), day, request.form.get("working") == "1",
                                                   text_field("note"))
            except ValidationFailed as exc:
                errors = _errors_from(exc, "note")
            else:
                flash(_("The calendar has been updated."), "success")
                return redirect(url_for("admin.calendar"))
    with reading() as s:
        rows = list(s.exec(select(CalendarOverride).order_by(CalendarOverride.day.desc())))
        cal = deadlines.calendar(s)
        start = today()
        upcoming = [(start.fromordinal(start.toordinal() + n)) for n in range(21)]
        working = {d: cal.is_working_day(d) for d in upcoming}
    return render_template("admin/calendar.html", rows=rows, upcoming=upcoming, working=working, errors=errors,
                           form=request.form), (400 if errors else 200)


@bp.post("/calendar/<day>/delete")
def delete_override(day: str):
    _head_office_only()
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        not_found()
    with unit_of_work(engine()) as s:
        accounts.remove_calendar_override(s, actor(s), parsed)
    flash(_("The override has been removed."), "success")
    return redirect(url_for("admin.calendar"))
