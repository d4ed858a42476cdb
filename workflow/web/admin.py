"""Administration: branches, users and roles, rule-set versions, the holiday calendar, reported NPL figures."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlmodel import select

from ..domain import policy, rules
from ..domain.errors import ConflictError, DomainError, NotFound, PermissionDenied, ValidationFailed
from ..models import ROLES, Branch, CalendarOverride, CalendarYear, RuleSetDraft, RuleSetVersion, User, utcnow
from ..services import (
    accounts,
    deadlines,
    holidays,
    invitations,
    jobs,
    outbox,
    rulesets,
    staff,
    tabular,
    tolerance,
)
from . import access
from .common import (
    actor,
    bad_request,
    deny,
    expected_version,
    int_field,
    not_found,
    reading,
    text_field,
    today,
    work,
)
from .i18n import _l
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
    with reading() as s:
        timer = jobs.timer_status(s)
        counts = outbox.status_counts(s)
    return render_template("admin/index.html", timer=timer, failed=counts.get("failed", 0),
                           may_see_deliveries=policy.why_not_manage_deliveries(current_user.actor) is None)


# --- the deadline timer -----------------------------------------------------------------------------------------

TIMER_PAGE = 50


@bp.get("/timer")
def timer():
    """The deadline timer's runs, newest first (50 a page), and whether it is stale."""
    page = request.args.get("page", "1")
    page = max(1, int(page)) if page.isdigit() and len(page) < 7 else 1
    with reading() as s:
        status = jobs.timer_status(s)
        runs = jobs.timer_runs(s, limit=TIMER_PAGE, offset=(page - 1) * TIMER_PAGE)
    pages = max(1, (status["runs"] + TIMER_PAGE - 1) // TIMER_PAGE)
    return render_template("admin/timer.html", timer=status, runs=runs, page=page, pages=pages,
                           may_run=policy.why_not_run_timer(current_user.actor) is None)


@bp.post("/timer")
def run_timer():
    """Run the timer now (head-office administrators): it moves and notifies cases of the whole bank."""
    refusal = policy.why_not_run_timer(current_user.actor)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)
    summary = jobs.run_timer_now(current_app.extensions["mianze.engine"], current_user)
    if summary.errors:
        flash(_("The timer ran, but %(n)d case(s) could not be handled: see the run below.", n=len(summary.errors)),
              "error")
    else:
        flash(_("The timer ran: %(moved)d case(s) moved on, %(notified)d notification(s).",
                moved=sum(summary.moved.values()), notified=summary.notified), "success")
    return redirect(url_for("admin.timer"))


# --- branches -----------------------------------------------------------------------------------------------

@bp.route("/branches", methods=["GET", "POST"])
def branches():
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with work() as s:
                accounts.create_branch(s, actor(s), code=text_field("code"), name=text_field("name"),
                                       name_en=text_field("name_en"), parent_id=int_field("parent_id") or 0)
        except ValidationFailed as exc:
            errors = _errors_from(exc, "code")
        else:
            flash(_("The branch has been added."), "success")
            return redirect(url_for("admin.branches"))
    with reading() as s:
        rows = _subtree(s)
    robots = {b.id: accounts.masked_webhook(b.webhook_url) for b in rows}
    return render_template("admin/branches.html", branches=rows, errors=errors, form=request.form, robots=robots), \
        (400 if errors else 200)


@bp.post("/branches/<int:branch_id>")
def update_branch(branch_id: int):
    try:
        with work() as s:
            accounts.update_branch(s, actor(s), branch_id, name=text_field("name"), name_en=text_field("name_en"),
                                   active=request.form.get("active") == "1")
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
    else:
        flash(_("The branch has been updated."), "success")
    return redirect(url_for("admin.branches"))


@bp.post("/branches/<int:branch_id>/webhook")
def set_branch_webhook(branch_id: int):
    """Set or remove the branch's 企业微信 group robot (its webhook address)."""
    url = "" if request.form.get("remove") == "1" else text_field("webhook_url")
    try:
        with work() as s:
            accounts.set_branch_webhook(s, actor(s), branch_id, url)
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
    except NotFound:
        not_found()
    else:
        flash(_("The branch's WeCom group robot has been saved.") if url else
              _("The branch's WeCom group robot has been removed."), "success")
    return redirect(url_for("admin.branches"))


# --- notification deliveries --------------------------------------------------------------------------------

DELIVERY_PAGE = 50


@bp.get("/notifications")
def deliveries():
    """The notification deliveries that were given up (head-office administrators), newest first."""
    refusal = policy.why_not_manage_deliveries(current_user.actor)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)
    page = request.args.get("page", "1")
    page = max(1, int(page)) if page.isdigit() and len(page) < 7 else 1
    with reading() as s:
        counts = outbox.status_counts(s)
        rows = outbox.failed(s, actor(s), limit=DELIVERY_PAGE, offset=(page - 1) * DELIVERY_PAGE,
                             locale="en" if str(get_locale()).startswith("en") else "zh")
    pages = max(1, (counts.get("failed", 0) + DELIVERY_PAGE - 1) // DELIVERY_PAGE)
    return render_template("admin/deliveries.html", rows=rows, counts=counts, page=page, pages=pages,
                           mail_configured=bool(current_app.config.get("SMTP_HOST")))


@bp.post("/notifications/<int:delivery_id>/resend")
def resend_delivery(delivery_id: int):
    """Send a failed delivery again (it may have arrived once already: the page says so)."""
    refusal = policy.why_not_manage_deliveries(current_user.actor)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)
    try:
        with work() as s:
            outbox.resend(s, actor(s), delivery_id)
    except NotFound:
        not_found()
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
    else:
        flash(_("The notification will be sent again within a minute."), "success")
    return redirect(url_for("admin.deliveries"))


# --- users --------------------------------------------------------------------------------------------------

def _grantable() -> set[str]:
    """The roles the signed-in administrator may give or take away (the policy's answer)."""
    me = policy.Actor(id=current_user.id, roles=current_user.roles, branch_id=current_user.branch_id,
                      branch_path=current_user.branch_path, branch_level=current_user.branch_level)
    return {r for r in ROLES if policy.may_grant(me, r)}


def _refused(exc: PermissionDenied) -> dict[str, str]:
    """A refused grant as an error next to the field it concerns."""
    if exc.details.get("reason") == policy.TYPED_PASSWORDS_OFF.code:
        return {"password": translate(exc.message)}
    roles = exc.details.get("reason") in (policy.BANK_WIDE_ROLE.code, policy.AUDIT_INDEPENDENCE.code)
    return {"roles" if roles else "branch_id": translate(exc.message)}


# What the HR import says of a bad row, in the UI language (services/staff.py ROW_REASONS, by code).
_ROW_MESSAGES = {
    "header": _l("The header row is wrong (unknown columns: %(unknown)s; missing columns: %(missing)s; repeated "
                 "columns: %(repeated)s)."),
    "fields": _l("The row has %(found)d fields, the header has %(expected)d."),
    "beyond_header": _l("The row has values beyond the last column of the header."),
    "required": _l("%(column)s is required."),
    "too_long": _l("%(column)s may have at most %(max)d characters."),
    "username": _l("The username may contain letters, digits, “.”, “-” and “_” only."),
    "unknown_branch": _l("There is no branch with the code %(branch)s."),
    "unknown_role": _l("Unknown role(s): %(roles)s."),
    "active": _l("active must be yes or no, not “%(value)s”."),
    "locale": _l("locale must be zh or en, not “%(value)s”."),
    "repeated_employee_no": _l("Employee number %(employee_no)s is already on line %(other)d."),
    "repeated_username": _l("Username %(username)s is already on line %(other)d."),
    "username_taken": _l("The username %(username)s belongs to employee %(other)s."),
    "own_account": _l("You cannot remove your own administrator role or deactivate yourself."),
}


def _row_message(error: dict) -> str:
    """A bad row of the HR file, in the UI language."""
    if error["code"] == "refused":
        return translate(error["values"]["refusal"])
    return str(_ROW_MESSAGES[error["code"]]) % error["values"]


def _invitation_settings() -> invitations.InvitationSettings:
    return invitations.InvitationSettings.from_config(current_app.config)


def _typed_allowed() -> bool:
    """Whether the bank's policy lets administrators type someone's password (MIANZE_ALLOW_TYPED_PASSWORDS)."""
    return bool(current_app.config.get("ALLOW_TYPED_PASSWORDS"))


def _users_page(errors: dict[str, str] | None = None, status: int = 200, import_errors: list[dict] | None = None,
                issued: list | None = None):
    """The users list (paged, natural order, filtered by branch, role and status) with its two forms."""
    errors = errors or {}
    args = {k: (request.args.get(k) or "").strip() for k in ("q", "branch", "role", "status", "sort", "order")}
    page = int(request.args["page"]) if (request.args.get("page") or "").isdigit() else 1
    with reading() as s:
        branch_rows = _subtree(s)
        try:
            result = staff.list_staff(s, current_user.branch_path, q=args["q"],
                                      branch_id=int(args["branch"]) if args["branch"].isdigit() else None,
                                      role=args["role"], status=args["status"], sort=args["sort"] or "username",
                                      descending=args["order"] == "desc", page=page)
        except ValidationFailed:
            bad_request(_("Unknown filter or sort."))
    shown = {k: v for k, v in args.items() if v}
    return render_template("admin/users.html", result=result, users=result.users, args=shown,
                           branches={b.id: b for b in branch_rows}, branch_list=branch_rows, roles=ROLES,
                           statuses=staff.STATUSES, sorts=staff.SORTS, grantable=_grantable(), errors=errors,
                           incompatible=policy.INCOMPATIBLE_ROLES, form=request.form, q=args["q"],
                           import_errors=[(e["line"], e["employee_no"], _row_message(e)) for e in import_errors or []],
                           columns=staff.COLUMNS, issued=issued or [], typed_allowed=_typed_allowed(),
                           hours=_invitation_settings().hours), (status if errors or import_errors else 200)


@bp.route("/users", methods=["GET", "POST"])
def users():
    if request.method == "GET":
        return _users_page()
    password = request.form.get("password", "")
    try:
        with work() as s:
            me = actor(s)
            user = accounts.create_user(s, me, username=text_field("username"), name=text_field("name"),
                                        employee_no=text_field("employee_no"), branch_id=int_field("branch_id") or 0,
                                        roles=request.form.getlist("roles"), password=password or None,
                                        locale=request.form.get("locale", "zh"), email=text_field("email"),
                                        typed_allowed=_typed_allowed(), hasher=current_app.extensions["mianze.hasher"])
            # no password typed: the invitation, in the same transaction (its mail leaves after the commit)
            issued = [] if password else [invitations.invite(s, me, user.id, _invitation_settings())]
    except ValidationFailed as exc:
        return _users_page(_errors_from(exc, "username"), 400)
    except PermissionDenied as exc:  # roles or a branch beyond the administrator's own scope, a typed password
        return _users_page(_refused(exc), 403)
    if not issued:
        flash(_("The user has been created."), "success")
        return redirect(url_for("admin.users"))
    flash(_("The user has been created and invited to set a password."), "success")
    return _users_page(issued=issued)  # the link is shown this once


@bp.post("/users/import")
def import_users():
    """Create and update staff from an HR file (CSV or XLSX): every row is checked first, all or nothing."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _users_page({"file": _("Choose an HR file (.csv or .xlsx).")}, 400)
    try:  # read from werkzeug's spooled temporary file, row by row
        rows = staff.read_hr_file(upload.stream, upload.filename, tabular.Limits.from_config(current_app.config))
        with work() as s:
            me = actor(s)
            result = staff.import_staff(s, me, rows, source_sha256=rows.sha256)
            issued = invitations.invite_many(s, me, result.created_ids, _invitation_settings())  # same transaction
    except staff.StaffImportRejected as exc:
        return _users_page(import_errors=exc.details["errors"], status=422)
    except ValidationFailed as exc:
        return _users_page({"file": translate(exc.message)}, 400)
    flash(_("The HR file has been imported: %(created)d staff added, %(updated)d updated, %(unchanged)d unchanged.",
            created=result.created, updated=result.updated, unchanged=result.unchanged), "success")
    if rows.encoding:
        flash(_("The CSV file was read as %(encoding)s.", encoding=_ENCODINGS.get(rows.encoding, rows.encoding)),
              "info")
    if not issued:
        return redirect(url_for("admin.users"))
    flash(ngettext("%(num)d new member of staff has been invited to set a password.",
                   "%(num)d new members of staff have been invited to set a password.", len(issued)), "success")
    return _users_page(issued=issued)  # the links are shown this once


# How a CSV file was read (services/tabular.py), in the UI language.
_ENCODINGS = {"UTF-8": _l("UTF-8"), "UTF-8 with BOM": _l("UTF-8 with a byte order mark"),
              "GB18030": _l("GB18030 (which includes GBK)")}


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user(user_id: int, issued=None):
    errors: dict[str, str] = {}
    status = 400
    if request.method == "POST" and issued is None:
        try:
            with work() as s:
                if request.form.get("form") == "password":
                    accounts.set_password(s, actor(s), user_id, request.form.get("password", ""),
                                          typed_allowed=_typed_allowed(),
                                          hasher=current_app.extensions["mianze.hasher"])
                    done = _("The password has been set.")
                else:
                    accounts.update_user(s, actor(s), user_id, name=text_field("name"),
                                         branch_id=int_field("branch_id") or 0, roles=request.form.getlist("roles"),
                                         active=request.form.get("active") == "1")
                    done = _("The user has been updated.")
        except ValidationFailed as exc:
            errors = _errors_from(exc, "name")
        except PermissionDenied as exc:  # roles or a branch beyond the administrator's own scope
            errors, status = _refused(exc), 403
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
        invitation = invitations.latest(s, row.id)
    return render_template("admin/user.html", user=row, branch_list=branch_rows, roles=ROLES,
                           grantable=_grantable(), errors=errors, typed_allowed=_typed_allowed(),
                           invitation=invitation, invitation_status=invitation.status(utcnow()) if invitation else None,
                           issued=issued), (status if errors else 200)


@bp.post("/users/<int:user_id>/invite")
def invite_user(user_id: int):
    """Send a member of staff a new invitation (an earlier link stops working); its link is shown once."""
    try:
        with work() as s:
            issued = invitations.resend(s, actor(s), user_id, _invitation_settings())
    except NotFound:
        not_found()
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("admin.user", user_id=user_id))
    flash(_("A new invitation has been sent; the earlier link no longer works."), "success")
    return user(user_id, issued=[issued])


@bp.post("/users/<int:user_id>/invite/revoke")
def revoke_invitation(user_id: int):
    try:
        with work() as s:
            invitations.revoke(s, actor(s), user_id)
    except NotFound:
        not_found()
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
    else:
        flash(_("The invitation has been revoked: its link no longer works."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


# --- rule sets ----------------------------------------------------------------------------------------------

# What the drafts service says, in the UI language (messages with variable parts are built from `details`).
_DRAFT_MESSAGES = {
    "the rule set must be a JSON object": _l("The rule set must be a JSON object."),
    "say what changed in this version": _l("Say what changed in this version."),
    "the draft was changed by someone else in the meantime; reload it and try again":
        _l("Someone else changed this draft in the meantime. Your change was not saved: reload the draft and make "
           "it again."),
    "the draft has already been published": _l("This draft has already been published."),
    "the draft has already been discarded": _l("This draft has already been discarded."),
    "the draft has already been submitted": _l("This draft has been submitted for approval: it can no longer be "
                                               "edited until it is approved or rejected."),
    "the draft has not been submitted for approval": _l("This draft has not been submitted for approval."),
    "an effective date before today needs a stated reason": _l("An effective date before today needs a stated "
                                                                "reason."),
    "say why the draft is rejected": _l("Say why the draft is rejected."),
}


def _draft_message(exc: DomainError) -> str:
    details = exc.details or {}
    if "used_by" in details:
        return _("The label “%(label)s” is already used by version %(n)d. Give the draft a label of its own (the "
                 "“version” field).", label=details.get("label"), n=details["used_by"])
    if "max_length" in details:
        if details.get("field") != "note":
            return _("The reason may have at most %(n)d characters.", n=details["max_length"])
        return _("The note may have at most %(n)d characters.", n=details["max_length"])
    if details.get("field") == "based_on":
        return _("Choose a published version to start from.")
    if exc.message.startswith("invalid rule set: "):
        return _("The rule set is not valid: %(problems)s", problems=exc.message.removeprefix("invalid rule set: "))
    known = _DRAFT_MESSAGES.get(exc.message)
    return str(known) if known is not None else translate(exc.message)


# The rule-set document's sections, as the changes against the version in force name them.
SECTION_NAMES = {
    "version": _l("Label"), "name": _l("Name"), "outcomes": _l("Outcomes"), "liability_kinds": _l("Kinds of liability"),
    "stages": _l("Credit stages"), "positive": _l("Positive list"), "mitigating": _l("Mitigating list"),
    "negative": _l("Negative list"), "duties": _l("Duties"), "steps": _l("Procedure steps"),
    "tolerance": _l("Tolerance"), "scope": _l("Scope"), "time_limits": _l("Time limits"),
    "committee": _l("Committee"), "batch": _l("Batch cases"), "sanctions": _l("Sanctions"),
    "bank_document": _l("The bank's own rules"),
}


def _people(s, ids) -> dict[int, User]:
    wanted = {i for i in ids if i is not None}
    return {u.id: u for u in s.exec(select(User).where(User.id.in_(wanted)))} if wanted else {}


def _in_field_order(data: dict) -> dict:
    """The document's sections in the RuleSet model's order (the database keeps keys sorted)."""
    order = {name: n for n, name in enumerate(rules.RuleSet.model_fields)}
    return {k: data[k] for k in sorted(data, key=lambda k: (order.get(k, len(order)), k))}


def _rule_sets_page(errors: dict[str, str] | None = None):
    errors = errors or {}
    with reading() as s:
        rows = list(s.exec(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())))
        in_force = rulesets.version_in_force(s, today())
        drafts = rulesets.open_drafts(s) if current_user.head_office else []
        people = _people(s, [d.created_by_id for d in drafts] + [d.updated_by_id for d in drafts])
    versions = {r.id: r.version for r in rows}
    return render_template("admin/rulesets.html", rows=rows, in_force=in_force, drafts=drafts, people=people,
                           versions=versions, errors=errors, form=request.form), (400 if errors else 200)


@bp.get("/rulesets")
def rule_sets():
    return _rule_sets_page()


@bp.get("/rulesets/<int:version>")
def rule_set(version: int):
    with reading() as s:
        row = s.exec(select(RuleSetVersion).where(RuleSetVersion.version == version)).first()
        if row is None:
            not_found()
        rs = rulesets.parsed(row)
    return render_template("admin/ruleset.html", row=row, rs=rs)


@bp.post("/rulesets/drafts")
def create_rule_set_draft():
    """Start a draft from a published version (head office)."""
    _head_office_only()
    based_on = int_field("based_on")
    if based_on is None:
        return _rule_sets_page({"based_on": _("Choose a published version to start from.")})
    try:
        with work() as s:
            draft_id = rulesets.create_draft(s, actor(s), based_on=based_on, note=text_field("note")).id
    except ValidationFailed as exc:
        return _rule_sets_page({exc.details.get("field") or "based_on": _draft_message(exc)})
    flash(_("Draft %(n)d has been created from version %(v)d.", n=draft_id, v=based_on), "success")
    return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))


def _draft_page(draft_id: int, errors: dict[str, str] | None = None, *, text: str | None = None,
                note: str | None = None, effective: str | None = None, reason: str = "", rejection: str = "",
                item: dict | None = None, status: int = 200):
    """The draft's page: its document and note to edit, publishing with a date, discarding."""
    errors = errors or {}
    with reading() as s:
        row = s.get(RuleSetDraft, draft_id)
        if row is None:
            not_found()
        based_on = s.get(RuleSetVersion, row.based_on_id) if row.based_on_id else None
        published = s.get(RuleSetVersion, row.published_version_id) if row.published_version_id else None
        people = _people(s, (row.created_by_id, row.updated_by_id, row.submitted_by_id, row.reviewed_by_id))
        in_force = rulesets.version_in_force(s, today())
        changes = rulesets.diff_documents(in_force.data, row.data)
        reviewer = actor(s)
        refusal = policy.why_not_review_rule_set(
            accounts._policy_actor(s, reviewer),
            author_ids=(row.created_by_id, row.updated_by_id, row.submitted_by_id)) if reviewer else None
    if text is None:
        text = json.dumps(_in_field_order(row.data), ensure_ascii=False, indent=2)
    if item is None:  # "?edit=duties:PO04" fills the item form with that item
        section, _sep, code = request.args.get("edit", "").partition(":")
        found = [i for i in row.data.get(section) or [] if i.get("code") == code] \
            if section in rulesets.ITEM_LISTS else []
        item = {**found[0], "section": section, "original_code": code} if found else {"section": "positive"}
    return render_template("admin/ruleset_draft.html", draft=row, based_on=based_on, published=published,
                           people=people, text=text, note=row.note if note is None else note,
                           effective=effective or (row.effective_from or today()).isoformat(), reason=reason,
                           rejection=rejection, in_force=in_force, changes=changes, section_names=SECTION_NAMES, today=today(),
                           review_refusal=translate(refusal.message) if refusal else None, item=item,
                           item_lists=rulesets.ITEM_LISTS, errors=errors), \
        (status if status != 200 else (400 if errors else 200))


@bp.route("/rulesets/drafts/<int:draft_id>", methods=["GET", "POST"])
def rule_set_draft(draft_id: int):
    """Read and edit a draft: the document is checked first, and nothing is saved when it is not valid."""
    _head_office_only()
    if request.method == "GET":
        return _draft_page(draft_id)
    revision = expected_version()
    text, note = request.form.get("data", ""), request.form.get("note", "")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return _draft_page(draft_id, {"data": _("The document is not valid JSON (line %(line)d, column %(col)d).",
                                                line=exc.lineno, col=exc.colno)}, text=text, note=note)
    try:
        with work() as s:
            rulesets.update_draft(s, actor(s), draft_id, data, note, expected_revision=revision)
    except ValidationFailed as exc:
        return _draft_page(draft_id, {exc.details.get("field") or "data": _draft_message(exc)}, text=text, note=note)
    except ConflictError as exc:
        return _draft_page(draft_id, {"_": _draft_message(exc)}, text=text, note=note, status=409)
    flash(_("The draft has been saved."), "success")
    return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))


_ITEM_MESSAGES = {
    "this field is required": _l("Fill in this field."),
    "choose the list the item belongs to": _l("Choose the list the item belongs to."),
}


def _item_message(exc: ValidationFailed) -> str:
    details = exc.details or {}
    if "code" in details and details.get("field") == "code":
        return _("The code %(code)s is already used in this list.", code=details["code"])
    if "stage" in details and details.get("field") == "stage":
        return _("The rule set has no stage %(stage)s.", stage=details["stage"])
    if exc.message.startswith("the item "):
        return _("The item is no longer in this list: reload the draft.")
    known = _ITEM_MESSAGES.get(exc.message)
    return str(known) if known is not None else _draft_message(exc)


@bp.post("/rulesets/drafts/<int:draft_id>/items")
def save_rule_set_item(draft_id: int):
    """Add an item to one of the draft's lists or change one, in a form (checked like every save)."""
    _head_office_only()
    revision = expected_version()
    form = {k: request.form.get(k, "") for k in (*rulesets.ITEM_TEXT_FIELDS, "stage", "section", "original_code")}
    form["verified"] = bool(request.form.get("verified"))
    try:
        with work() as s:
            rulesets.save_item(s, actor(s), draft_id, form["section"], form,
                               original_code=form["original_code"] or None, expected_revision=revision)
    except ValidationFailed as exc:
        return _draft_page(draft_id, {f"item_{exc.details.get('field') or 'code'}": _item_message(exc)}, item=form)
    except ConflictError as exc:
        return _draft_page(draft_id, {"_": _draft_message(exc)}, item=form, status=409)
    flash(_("The item %(code)s has been saved in the draft.", code=form["code"].strip()), "success")
    return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))


@bp.post("/rulesets/drafts/<int:draft_id>/items/retire")
def retire_rule_set_item(draft_id: int):
    """Take an item out of one of the draft's lists (published versions keep it)."""
    _head_office_only()
    revision = expected_version()
    section, code = request.form.get("section", ""), request.form.get("code", "")
    try:
        with work() as s:
            rulesets.retire_item(s, actor(s), draft_id, section, code, expected_revision=revision)
    except ValidationFailed as exc:
        return _draft_page(draft_id, {"_": _item_message(exc)})
    except ConflictError as exc:
        flash(_draft_message(exc), "error")
        return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))
    flash(_("The item %(code)s has been retired from the draft.", code=code), "success")
    return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))


@bp.post("/rulesets/drafts/<int:draft_id>/submit")
def submit_rule_set_draft(draft_id: int):
    """The author asks for the draft to be published from a date (a date in the past needs a reason)."""
    _head_office_only()
    revision = expected_version()
    effective, reason = request.form.get("effective_from", ""), request.form.get("reason", "")
    try:
        effective_from = date.fromisoformat(effective)
    except ValueError:
        return _draft_page(draft_id, {"effective_from": _("Enter the date from which the version applies.")},
                           effective=effective, reason=reason)
    try:
        with work() as s:
            rulesets.submit_draft(s, actor(s), draft_id, effective_from, reason=reason, expected_revision=revision,
                                  today=today())
    except ValidationFailed as exc:
        return _draft_page(draft_id, {exc.details.get("field") or "_": _draft_message(exc)}, effective=effective,
                           reason=reason)
    except ConflictError as exc:
        flash(_draft_message(exc), "error")
        return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))
    flash(_("The draft has been submitted: a second head-office administrator approves or rejects it."), "success")
    return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))


@bp.post("/rulesets/drafts/<int:draft_id>/publish")
def publish_rule_set_draft(draft_id: int):
    """A second head-office administrator approves the submitted draft: it is published as the next version."""
    _head_office_only()
    revision = expected_version()
    try:
        with work() as s:
            version = rulesets.publish_draft(s, actor(s), draft_id, expected_revision=revision,
                                             today=today()).version
    except PermissionDenied as exc:
        return _draft_page(draft_id, {"_": translate(exc.message)}, status=403)
    except ValidationFailed as exc:
        return _draft_page(draft_id, {exc.details.get("field") or "_": _draft_message(exc)})
    except ConflictError as exc:
        flash(_draft_message(exc), "error")
        return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))
    flash(_("Version %(n)d has been approved and published.", n=version), "success")
    return redirect(url_for("admin.rule_set", version=version))


@bp.post("/rulesets/drafts/<int:draft_id>/reject")
def reject_rule_set_draft(draft_id: int):
    """A second head-office administrator sends the submitted draft back to its author with a reason."""
    _head_office_only()
    revision = expected_version()
    reason = request.form.get("rejection_reason", "")
    try:
        with work() as s:
            rulesets.reject_draft(s, actor(s), draft_id, reason, expected_revision=revision)
    except PermissionDenied as exc:
        return _draft_page(draft_id, {"_": translate(exc.message)}, rejection=reason, status=403)
    except ValidationFailed as exc:
        return _draft_page(draft_id, {exc.details.get("field") or "_": _draft_message(exc)}, rejection=reason)
    except ConflictError as exc:
        flash(_draft_message(exc), "error")
        return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))
    flash(_("The draft has been rejected and is a draft again."), "success")
    return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))


@bp.post("/rulesets/drafts/<int:draft_id>/discard")
def discard_rule_set_draft(draft_id: int):
    """Discard the draft (it stays on record as discarded)."""
    _head_office_only()
    revision = expected_version()
    try:
        with work() as s:
            rulesets.discard_draft(s, actor(s), draft_id, expected_revision=revision)
    except ConflictError as exc:
        flash(_draft_message(exc), "error")
        return redirect(url_for("admin.rule_set_draft", draft_id=draft_id))
    flash(_("Draft %(n)d has been discarded.", n=draft_id), "success")
    return redirect(url_for("admin.rule_sets"))


# --- calendar -----------------------------------------------------------------------------------------------

@bp.route("/calendar", methods=["GET", "POST"])
def calendar():
    """One date's override: "preview" (the default) shows the appeal deadlines it would move; "apply" writes
    it and restates them (head office)."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        _head_office_only()
        working = request.form.get("working") == "1"
        try:
            day = date.fromisoformat(request.form.get("day", ""))
        except ValueError:
            errors["day"] = _("Enter a date.")
        else:
            try:
                with work() as s:
                    if request.form.get("step") != "apply":
                        if not text_field("note"):
                            raise ValidationFailed("a note saying why is required", field="note")
                        moved = holidays.preview_override(s, actor(s), day, working, today=today())
                        return _calendar_page(override_plan={"day": day, "working": working, "moved": moved})
                    n = holidays.set_override(s, actor(s), day, working, text_field("note"), today=today())
            except ValidationFailed as exc:
                errors = _errors_from(exc, "note")
            else:
                flash(ngettext("The calendar has been updated; %(num)d appeal deadline has been moved.",
                               "The calendar has been updated; %(num)d appeal deadlines have been moved.", n)
                      if n else _("The calendar has been updated."), "success")
                return redirect(url_for("admin.calendar"))
    return _calendar_page(errors=errors), (400 if errors else 200)


def _calendar_page(**context):
    """The calendar page: a month (?month=YYYY-MM, default this one) with each day's source, the overrides,
    the forms (one date; a year's schedule, previewed first)."""
    raw = request.args.get("month", "")
    try:
        first = date.fromisoformat(f"{raw}-01") if raw else today().replace(day=1)
    except ValueError:
        first = today().replace(day=1)
    with reading() as s:
        rows = list(s.exec(select(CalendarOverride).order_by(CalendarOverride.day.desc()).limit(200)))
        weeks = holidays.month(s, first)
        years = {y.year: y for y in s.exec(select(CalendarYear))}
        warnings = deadlines.calendar_warnings(s)
    prev_month = (first - timedelta(days=1)).replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return render_template("admin/calendar.html", rows=rows, weeks=weeks, month=first, prev_month=prev_month,
                           next_month=next_month, years=years, warnings=warnings,
                           form=request.form, **{"errors": {}, "schedule_errors": [], "plan": None,
                                                 "override_plan": None, **context})


_SCHEDULE_PROBLEMS = {
    "date": _l("write a date (YYYY-MM-DD) or a range (YYYY-MM-DD~YYYY-MM-DD), then its name"),
    "note": _l("say which holiday it is"),
    "year": _l("the dates must lie in %(year)s"),
    "range": _l("a holiday range runs forward and lasts at most 15 days"),
    "one_date": _l("a working weekend day is one date"),
    "weekday": _l("%(date)s is not a Saturday or Sunday"),
    "clash": _l("%(date)s is both a holiday and a working day"),
    "empty": _l("enter the year's holidays"),
}


def _schedule_problem(p: dict) -> str:
    """One problem of a year's schedule in the user's language (services/holidays.PROBLEMS)."""
    text = str(_SCHEDULE_PROBLEMS[p["code"]]) % {"year": p.get("year", ""), "date": p.get("date", "")}
    if not p.get("line"):
        return text
    where = _("Holidays, line %(n)s", n=p["line"]) if p["field"] == "holidays" else \
        _("Working weekend days, line %(n)s", n=p["line"])
    return f"{where}: {text}"


@bp.post("/calendar/schedule")
def calendar_schedule():
    """A year's schedule (holiday ranges, working weekend days): "preview" shows what it writes and which
    appeal deadlines it moves; "apply" does it (head office)."""
    _head_office_only()
    year = int_field("year") or 0
    try:
        with work() as s:
            schedule = holidays.parse(year, request.form.get("holidays", ""), request.form.get("workdays", ""))
            if request.form.get("step") == "apply":
                done = holidays.apply(s, actor(s), schedule, today=today())
            else:
                plan = holidays.preview(s, actor(s), schedule, today=today())
                return _calendar_page(plan=plan, schedule=schedule)
    except ValidationFailed as exc:
        problems = [_schedule_problem(p) for p in exc.details.get("problems", [])] or [translate(exc.message)]
        return _calendar_page(schedule_errors=problems), 400
    flash(_("The %(year)s schedule has been entered: %(n)s override(s) written, %(m)s appeal deadline(s) moved.",
            year=year, n=len(done["overrides"]), m=done["moved_count"]), "success")
    return redirect(url_for("admin.calendar", month=f"{year}-01"))


@bp.post("/calendar/<day>/delete")
def delete_override(day: str):
    _head_office_only()
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        not_found()
    with work() as s:
        n = holidays.remove_override(s, actor(s), parsed, today=today())
    flash(ngettext("The override has been removed; %(num)d appeal deadline has been moved.",
                   "The override has been removed; %(num)d appeal deadlines have been moved.", n)
          if n else _("The override has been removed."), "success")
    return redirect(url_for("admin.calendar"))


# --- NPL figures reported to the regulator ------------------------------------------------------------------

def _percent_as_fraction(name: str, errors: dict[str, str]) -> str | None:
    """A percentage typed in the form ("5.01") as the fraction the service takes ("0.0501")."""
    raw = text_field(name).rstrip("%").strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors[name] = _("Enter a percentage between 0 and 100, e.g. 5.01.")
        return None
    if not value.is_finite() or not 0 <= value <= 100:
        errors[name] = _("Enter a percentage between 0 and 100, e.g. 5.01.")
        return None
    return str(value / 100)


@bp.route("/tolerance", methods=["GET", "POST"])
def tolerance_figures():
    """Import the SME and all-loans NPL ratios a branch reported to the regulator for a period; they replace
    the ratios computed from the loan book when cases of that branch and period are judged."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        branch_id = int_field("branch")
        with reading() as s:
            allowed = {b.id for b in _subtree(s)}
        if branch_id not in allowed:
            errors["branch"] = _("Choose a branch of your own branch's subtree.")
        try:
            period = date.fromisoformat(request.form.get("period", ""))
        except ValueError:
            errors["period"] = _("Enter a date.")
        sme = _percent_as_fraction("sme_ratio", errors)
        all_ = _percent_as_fraction("all_ratio", errors)
        if not text_field("reason"):
            errors["reason"] = _("Say where the figures come from (the report filed with the regulator).")
        if not errors:
            try:
                with work() as s:
                    tolerance.import_figure(s, actor(s), branch_id, period, sme, all_, text_field("reason"))
            except ValidationFailed as exc:
                field = {"sme_npl_ratio": "sme_ratio", "all_npl_ratio": "all_ratio"}.get(
                    exc.details.get("field") or "", exc.details.get("field") or "_")
                errors = {field: translate(exc.message)}
            else:
                flash(_("The reported figures have been recorded."), "success")
                return redirect(url_for("admin.tolerance_figures"))
    with reading() as s:
        branches = _subtree(s)
        names = {b.id: b for b in branches}
        judged = tolerance.reported_figures(s, names)
        people = _people(s, {f.imported_by_id for f, _r in judged})
        rows = [{"figure": f, "branch": names[f.branch_id], "by": people.get(f.imported_by_id), "result": result}
                for f, result in judged]
        margin_pp = Decimal(str(tolerance.margin_in_force(s, today()))) * 100
    return render_template("admin/tolerance.html", rows=rows, branches=branches, errors=errors, form=request.form,
                           margin_pp=margin_pp), (400 if errors else 200)
