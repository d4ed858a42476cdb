"""The server-rendered web UI: sign-in, inboxes, case pages with a form for every step, administration.

`register(app)` sets up Flask-Login, CSRF protection (Flask-WTF), Flask-Babel (zh_CN default, en), the
error pages and the blueprints.
"""

from __future__ import annotations

import time

from argon2 import PasswordHasher
from flask import Flask, current_app, g, render_template, request, session
from flask_babel import Babel
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from . import access, i18n
from .i18n import _l
from .messages import translate

csrf = CSRFProtect()

ERROR_TEXTS = {
    400: (_l("The request could not be processed"),
          _l("Check what you entered and try again. If a form had been open for a long time, reload the page "
             "first.")),
    403: (_l("You may not do this"),
          _l("This page or action belongs to another role, branch or person. If you think you should have "
             "access, ask an administrator of your branch.")),
    404: (_l("Not found"),
          _l("The page or record does not exist (any more). Check the link, or find the case from your inbox.")),
    405: (_l("Not allowed"), _l("Use the buttons on the pages instead of typing addresses.")),
    409: (_l("The case has changed"),
          _l("Someone else acted on this case in the meantime, or the case is not in a state that allows this "
             "step. Reload the case page to see its current state, then try again if the step is still "
             "offered.")),
    413: (_l("The file is too large"), _l("Upload a smaller file (at most 20 MB) or split it into several files.")),
    422: (_l("Outside the rules' scope"), _l("Check the loans: they must be inclusive SME credit within scope.")),
    429: (_l("Too many sign-in attempts"),
          _l("Wait a few minutes before trying again, or ask an administrator to reset your password.")),
    500: (_l("Something went wrong"), _l("Nothing was saved. Try again; if it happens again, tell the "
                                        "administrator the time it happened.")),
}


def wants_json() -> bool:
    """API clients get JSON errors; people get pages."""
    return request.path.startswith("/api/")


def render_error(status: int, detail: str | None = None, reasons: list[str] | None = None):
    title, advice = ERROR_TEXTS.get(status, ERROR_TEXTS[500] if status >= 500 else ERROR_TEXTS[400])
    case_id = (request.view_args or {}).get("case_id")
    return render_template("errors/error.html", status=status, title=title, advice=advice, detail=detail,
                           reasons=reasons or [], case_id=case_id), status


def _domain_error(exc):
    from flask import jsonify

    if wants_json():
        return jsonify({"code": exc.code, "message": exc.message, "details": exc.details}), exc.http_status
    reasons = [translate(str(r)) for r in exc.details.get("reasons", [])] if isinstance(exc.details, dict) else []
    return render_error(exc.http_status, None if reasons else translate(exc.message), reasons)


def _http_error(exc: HTTPException):
    if wants_json():
        from flask import jsonify

        return jsonify({"code": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code
    detail = exc.description if getattr(exc, "_mianze_detail", False) else None
    return render_error(exc.code or 500, detail)


# The session's copy of the user's session epoch (`User.session_epoch`), stored at sign-in.
SESSION_EPOCH = "_epoch"


def register(app: Flask) -> None:
    """Attach the web UI to the app."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh_CN")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    # The session settings (8 hours after the last request, renewed every SESSION_RENEW_SECONDS) come from
    # `config.from_environment`: Flask has defaults of its own for them, which setdefault here would keep.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 8 * 3600)
    app.config.setdefault("LOGIN_MAX_FAILURES", 5)  # wrong passwords per account in the window
    app.config.setdefault("LOGIN_MAX_ADDRESS_FAILURES", 20)  # per client address, across accounts
    app.config.setdefault("LOGIN_WINDOW_SECONDS", 900)
    app.config.setdefault("INBOX_PAGE_SIZE", 25)
    # CSRF is checked below for every state-changing request except token-authenticated API calls.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    babel = Babel(app, locale_selector=i18n.select_locale,
                  timezone_selector=lambda: current_app.config["BABEL_DEFAULT_TIMEZONE"])
    babel.domain_instance = i18n.CatalogDomain()
    i18n.register_filters(app)
    csrf.init_app(app)

    @app.before_request
    def _renew_session():
        if session.permanent:  # signed in
            now = int(time.time())
            if now - session.get("_renewed", 0) >= app.config["SESSION_RENEW_SECONDS"]:
                session["_renewed"] = now  # modified: Flask re-signs the cookie with a new expiry

    @app.before_request
    def _csrf_protect():
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            if request.path.startswith("/api/") and request.headers.get("Authorization"):
                return None
            csrf.protect()
        return None

    login = LoginManager(app)
    login.login_view = "auth.login"
    login.login_message = _l("Please sign in to continue.")
    login.login_message_category = "info"
    login.session_protection = "strong"

    @login.user_loader
    def _load_user(user_id: str):
        if not user_id.isdigit():
            return None
        with app.extensions["mianze.engine"].connect() as conn:  # no ORM session: this runs on every request
            row = access.principal_row(conn, int(user_id))
            conn.rollback()
        if row is None or row.session_epoch != session.get(SESSION_EPOCH):
            return None  # the user signed out (anywhere) or changed their password since this session began
        principal = access.principal_from(row)
        if principal is not None:
            g.mianze_unread = row.unread  # the navigation's badge, read in the same statement
        return principal

    from .throttle import make_throttle

    app.extensions["mianze.login_throttle"] = make_throttle(app.config)
    app.extensions["mianze.hasher"] = PasswordHasher(
        time_cost=int(app.config.get("ARGON2_TIME_COST", 3)),
        memory_cost=int(app.config.get("ARGON2_MEMORY_COST", 65536)),
        parallelism=int(app.config.get("ARGON2_PARALLELISM", 4)),
    )

    from . import admin, audit, auth, cases, dashboard, inbox, notifications

    for bp in (auth.bp, inbox.bp, cases.bp, admin.bp, notifications.bp, audit.bp, dashboard.bp):
        app.register_blueprint(bp)
    from ..domain.errors import DomainError

    # Pages for people; JSON (the same shape as before) for anything under /api/.
    app.register_error_handler(DomainError, _domain_error)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        if wants_json():
            from flask import jsonify

            return jsonify({"code": "csrf", "message": exc.description}), 400
        return render_error(400, str(_l("The form has expired or was not sent from this site. Reload the page "
                                         "and submit it again.")))

    for status in (400, 403, 404, 405, 409, 413, 429):
        app.register_error_handler(status, _http_error)

    @app.context_processor
    def _nav():
        if not getattr(current_user, "is_authenticated", False):
            return {}
        return {"nav": {**inbox.nav_counts(current_user), "unread": notifications.unread(current_user.id)}}

    @app.after_request
    def _fresh_counts_after_a_change(response):
        if request.method not in ("GET", "HEAD", "OPTIONS") and getattr(current_user, "is_authenticated", False):
            inbox.forget_waiting(current_user.id)
        return response

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy",
                                        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                        "form-action 'self'; frame-ancestors 'none'")
            response.headers.setdefault("Cache-Control", "no-store")
        return response
