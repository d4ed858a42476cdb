"""Sign-in, sign-out, the user's language and password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ..db import unit_of_work
from ..domain.errors import ValidationFailed
from ..services import access_log, accounts
from . import access
from .access import SESSION_EPOCH
from .common import actor, engine, text_field
from .i18n import BABEL_LOCALES
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
