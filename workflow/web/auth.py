"""Sign-in, sign-out, the user's language and password."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlmodel import select
from werkzeug.exceptions import NotFound

from ..db import read_session, unit_of_work
from ..domain import policy
from ..domain.errors import ConflictError, PermissionDenied, ValidationFailed
from ..models import Branch, StandIn, User
from ..services import access_log, accounts, invitations, stand_ins
from . import access
from .access import SESSION_EPOCH
from .common import actor, deny, engine, reading, text_field, work
from .i18n import BABEL_LOCALES, _l
from .messages import translate

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative targets, so the sign-in page cannot be used to redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("inbox.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    error = None
    status = 200
    headers = {}
    username = ""
    if request.method == "POST":
        username = text_field("username")
        password = request.form.get("password") or ""
        throttle = current_app.extensions["mianze.login_throttle"]
        address = request.remote_addr or "-"  # the proxy's X-Forwarded-For when PROXY_FIX_X_FOR is set
        wait = throttle.attempt(username, address)
        if wait:
            error = _("Too many failed attempts. Wait %(minutes)d minute(s) and try again.",
                      minutes=max(1, (wait + 59) // 60))
            status = 429
            headers["Retry-After"] = str(wait)
        else:
            with unit_of_work(engine()) as s:
                user = accounts.authenticate(s, username, password, current_app.extensions["mianze.hasher"])
                principal = access.load_principal(s, user.id) if user else None
                # Who signed in, and every failed attempt, with the address it came from.
                access_log.record(s, user if principal else None, "sign_in" if principal else "sign_in_failed",
                                  target=username[:64], details={"address": address})
            if principal is None:
                error = _("The username or password is wrong.")  # the attempt stays counted
                status = 401
            else:
                throttle.succeeded(username, address)
                next_url = _safe_next(request.args.get("next"))
                session.clear()  # a fresh session on sign-in: no fixation
                session.permanent = True
                login_user(principal)
                session[SESSION_EPOCH] = user.session_epoch
                return redirect(next_url)
    return render_template("auth/login.html", error=error, username=username), status, headers


@bp.post("/logout")
@login_required
def logout():
    with unit_of_work(engine()) as s:
        access_log.record(s, current_user, "sign_out", target=current_user.username)
        accounts.end_sessions(s, current_user.id)  # in every browser, not only this one
    logout_user()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/language")
def language():
    """Switch the interface language: stored on the user when signed in, in the session otherwise."""
    locale = request.form.get("locale", "")
    if locale not in BABEL_LOCALES:
        locale = "zh"
    if current_user.is_authenticated:
        with unit_of_work(engine()) as s:
            accounts.set_locale(s, actor(s), locale)
    else:
        session["locale"] = locale
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    errors: dict[str, str] = {}
    if request.method == "POST":
        new = request.form.get("password") or ""
        if new != (request.form.get("password_again") or ""):
            errors["password_again"] = _("The two new passwords differ.")
        else:
            try:
                with unit_of_work(engine()) as s:
                    me = actor(s)
                    changed = accounts.set_password(s, me, me.id, new,
                                                    current_password=request.form.get("current_password"),
                                                    hasher=current_app.extensions["mianze.hasher"])
                    epoch = changed.session_epoch
            except ValidationFailed as exc:
                errors[exc.details.get("field") or "password"] = translate(exc.message)
            else:
                session[SESSION_EPOCH] = epoch  # every other session of the user has ended; this one goes on
                flash(_("Your password has been changed."), "success")
                return redirect(url_for("inbox.index"))
    return render_template("auth/password.html", errors=errors), (400 if errors else 200)


# --- invitations: setting one's first password from a one-time link ----------------------------------------

UNUSABLE = {  # why a link cannot be used, and what to do: (title, text)
    "unknown": (_l("This invitation link is not valid"),
                _l("Check that the whole link was copied. If it still does not work, ask your administrator to send "
                   "a new invitation.")),
    "used": (_l("This invitation link has already been used"),
             _l("Each link works once and your password has been set with it: sign in with your username and "
                "password. If you have forgotten the password, ask your administrator for a new invitation.")),
    "expired": (_l("This invitation link has expired"),
                _l("Invitation links work for a limited time only. Ask your administrator to send a new invitation.")),
    "revoked": (_l("This invitation link has been withdrawn"),
                _l("An administrator has withdrawn it, or sent a newer invitation that replaces it. Use the newest "
                   "invitation you received, or ask your administrator for a new one.")),
}


def _unusable(status: str):
    title, text = UNUSABLE[status]
    return render_template("auth/invite_unusable.html", status=status, title=title, text=text), \
        (404 if status == "unknown" else 410)


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invitation(token: str):
    """The invitee sets their password (the password rules apply) and is signed in; a used, expired or
    withdrawn link says so."""
    with read_session(engine()) as s:
        opened = invitations.look_up(s, token)
        who = (opened.user.name, opened.user.username, opened.user.locale) if opened.user else None
        expires_at = opened.invitation.expires_at if opened.invitation else None
    if opened.status != "open":
        return _unusable(opened.status)
    if "locale" not in session and not current_user.is_authenticated:
        session["locale"] = who[2]  # the language the administrator chose for them, until they choose
    errors: dict[str, str] = {}
    if request.method == "POST":
        new = request.form.get("password") or ""
        if new != (request.form.get("password_again") or ""):
            errors["password_again"] = _("The two new passwords differ.")
        else:
            try:
                with unit_of_work(engine()) as s:
                    user = invitations.accept(s, token, new, current_app.extensions["mianze.hasher"])
                    principal = access.load_principal(s, user.id)
                    access_log.record(s, user, "sign_in", target=user.username[:64],
                                      details={"address": request.remote_addr or "-", "by": "invitation"})
                    epoch = user.session_epoch
            except invitations.InvitationUnusable as exc:
                return _unusable(exc.details["status"])
            except ValidationFailed as exc:
                errors[exc.details.get("field") or "password"] = translate(exc.message)
            else:
                session.clear()  # a fresh session: no fixation
                session.permanent = True
                login_user(principal)
                session[SESSION_EPOCH] = epoch
                flash(_("Your password has been set and you are signed in."), "success")
                return redirect(url_for("inbox.index"))
    return render_template("auth/invite.html", name=who[0], username=who[1], errors=errors,
                           expires_at=expires_at), (400 if errors else 200)


# --- stand-ins (代理) ---------------------------------------------------------------------------------------

def _stand_in_page(errors: dict[str, str] | None = None, status: int = 200):
    me = current_user._get_current_object()
    with reading() as s:
        rows = stand_ins.stand_ins_of(s, me.id)
        people = {u.id: u for u in s.exec(select(User).where(User.id.in_(
            {r.principal_id for r in rows} | {r.stand_in_id for r in rows} or {0})))}
        candidates = stand_ins.candidates(s, actor(s)) if me.has(*policy.STAND_IN_SEATS) else []
    return render_template("auth/stand_ins.html", rows=rows, people=people, candidates=candidates,
                           errors=errors or {}, form=request.form, today=date.today()), status


@bp.get("/account/stand-ins")
@login_required
def stand_in_list():
    return _stand_in_page()


@bp.post("/account/stand-ins")
@login_required
def name_stand_in():
    """Name a stand-in: a confirmation page says what it means, the POST with confirm=1 names them."""
    form = request.form
    errors: dict[str, str] = {}
    try:
        starts, ends = date.fromisoformat(form.get("starts_on", "")), date.fromisoformat(form.get("ends_on", ""))
    except ValueError:
        errors["ends_on"] = _("Give the first and the last day of the period.")
    stand_in_id = int(form["stand_in_id"]) if form.get("stand_in_id", "").isdigit() else None
    if stand_in_id is None:
        errors["stand_in_id"] = _("Choose the stand-in.")
    if errors:
        return _stand_in_page(errors, 400)
    try:
        with work() as s:
            if form.get("confirm") != "1":  # every check of the service, nothing stored
                who = stand_ins.check_stand_in(s, actor(s), stand_in_id, starts, ends, text_field("reason"))
                return render_template("auth/stand_in_confirm.html", who=who, starts=starts, ends=ends,
                                       reason=text_field("reason"), revoke=None)
            stand_ins.name_stand_in(s, actor(s), stand_in_id, starts, ends, text_field("reason"))
    except ValidationFailed as exc:
        return _stand_in_page({exc.details.get("field") or "reason": translate(exc.message)}, 400)
    except ConflictError as exc:
        return _stand_in_page({"ends_on": translate(exc.message)}, 409)
    except PermissionDenied as exc:
        refusal = getattr(exc, "refusal", None)
        text = access.refusal_text(refusal) if refusal else translate(exc.message)
        return _stand_in_page({"stand_in_id": text}, 403)
    flash(_("The stand-in has been named; they have been told."), "success")
    return redirect(url_for("auth.stand_in_list"))


@bp.post("/account/stand-ins/<int:stand_in_id>/revoke")
@login_required
def revoke_stand_in(stand_in_id: int):
    """Revoke a stand-in (confirmed first)."""
    if request.form.get("confirm") != "1":
        with reading() as s:
            row = s.get(StandIn, stand_in_id)
            if row is None:
                raise NotFound()
            principal = s.get(User, row.principal_id)
            refusal = policy.why_not_revoke_stand_in(current_user.actor, principal_id=principal.id,
                                                     principal_branch_path=s.get(Branch, principal.branch_id).path)
            if refusal is not None:
                deny(access.refusal_text(refusal), refusal.code)
            return render_template("auth/stand_in_confirm.html", who=s.get(User, row.stand_in_id), starts=row.starts_on,
                                   ends=row.ends_on, reason=row.reason, revoke=row)
    with work() as s:
        stand_ins.revoke_stand_in(s, actor(s), stand_in_id)
    flash(_("The stand-in has been revoked; they have been told."), "success")
    return redirect(url_for("auth.stand_in_list"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """The user's profile: their mail address and the channels of their notifications."""
    from sqlmodel import select

    from ..models import Branch, User

    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with unit_of_work(engine()) as s:
                accounts.set_notification_channels(s, actor(s), email=text_field("email"),
                                                   mail=request.form.get("notify_mail") == "1",
                                                   webhook=request.form.get("notify_webhook") == "1")
        except ValidationFailed as exc:
            errors[exc.details.get("field") or "email"] = translate(exc.message)
        else:
            flash(_("Your notification settings have been saved."), "success")
            return redirect(url_for("auth.account"))
    with read_session(engine()) as s:
        user, robot = s.exec(select(User, Branch.webhook_url).join(Branch, Branch.id == User.branch_id)
                             .where(User.id == current_user.id)).one()
        return render_template("auth/account.html", user=user, errors=errors, form=request.form,
                               has_robot=bool(robot), mail_configured=bool(current_app.config.get("SMTP_HOST")),
                               mail_domain=current_app.config.get("SMTP_MAIL_DOMAIN")), (400 if errors else 200)
