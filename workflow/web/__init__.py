"""The server-rendered web UI: sign-in, inboxes, case pages with a form for every step, administration.

`register(app)` sets up Flask-Login, CSRF protection (Flask-WTF), Flask-Babel (zh_CN default, en), the
error pages and the blueprints.
"""

from __future__ import annotations

import secrets
import time

from argon2 import PasswordHasher
from flask import Flask, Response, current_app, g, render_template, request, session
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
                                        "administrator the reference below.")),
}


def wants_json() -> bool:
    """API clients get JSON errors; people get pages."""
    return request.path.startswith("/api/")


def render_error(status: int, detail: str | None = None, reasons: list[str] | None = None,
                 reference: str | None = None, refusal: str | None = None):
    title, advice = ERROR_TEXTS.get(status, ERROR_TEXTS[500] if status >= 500 else ERROR_TEXTS[400])
    case_id = (request.view_args or {}).get("case_id")
    return render_template("errors/error.html", status=status, title=title, advice=advice, detail=detail,
                           reasons=reasons or [], case_id=case_id, reference=reference,
                           refusal=refusal), status


def _json_error(code: str, message: str, status: int, details: dict | None = None, headers: dict | None = None):
    """The API's error shape, for the few errors under /api/ that no API handler sees."""
    from flask import jsonify

    return jsonify({"code": code, "message": message, "details": details or {}}), status, headers or {}


def _domain_error(exc):
    if wants_json():
        return _json_error(exc.code, exc.message, exc.http_status, exc.details)
    refusal = getattr(exc, "refusal", None)  # the policy's refusal (PermissionDenied of a service)
    if refusal is not None:
        return render_error(exc.http_status, access.refusal_text(refusal), refusal=refusal.code)
    reasons = [translate(str(r)) for r in exc.details.get("reasons", [])] if isinstance(exc.details, dict) else []
    return render_error(exc.http_status, None if reasons else translate(exc.message), reasons)


def _http_error(exc: HTTPException):
    if wants_json():
        allowed = sorted(getattr(exc, "valid_methods", None) or [])
        return _json_error(exc.name.lower().replace(" ", "_"), exc.description or exc.name, exc.code or 500,
                           {"allowed": allowed} if allowed else None, {"Allow": ", ".join(allowed)} if allowed else None)
    detail = exc.description if getattr(exc, "_mianze_detail", False) else None
    return render_error(exc.code or 500, detail, refusal=getattr(exc, "_mianze_refusal", None))


def _unexpected_error(exc: Exception):
    """Any other error: the product's own 500 page, with a reference that the log line carries too."""
    if isinstance(exc, HTTPException):  # a status without a handler of its own (401, 415, ...)
        return _http_error(exc)
    reference = secrets.token_hex(4)
    current_app.logger.exception("unexpected error, reference %s: %s %s", reference, request.method, request.path)
    if wants_json():
        return _json_error("internal_error", f"an unexpected error occurred; reference {reference}", 500,
                           {"reference": reference})
    try:
        return render_error(500, reference=reference)
    except Exception:  # noqa: BLE001 - the page itself failed (e.g. the database is down): a bare page
        current_app.logger.exception("the error page failed too, reference %s", reference)
        return Response(f"<!doctype html><title>500</title><h1>500</h1><p>{reference}</p>", 500,
                        mimetype="text/html")


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
    # CSRF is checked below for every state-changing request outside the API.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    babel = Babel(app, locale_selector=i18n.select_locale,
                  timezone_selector=lambda: current_app.config["BABEL_DEFAULT_TIMEZONE"])
    babel.domain_instance = i18n.CatalogDomain()
    i18n.register_filters(app)
    from ..domain.waiting import AWAITED
    from .messages import translate

    # Messages of the domain and the services in the UI language; the awaited actions' labels (the inbox).
    app.jinja_env.filters["msg"] = translate
    app.jinja_env.globals["awaited_labels"] = AWAITED
    from ..services.investigation import may_preview

    app.jinja_env.globals["may_preview"] = may_preview  # the evidence a preview is offered for
    csrf.init_app(app)

    @app.before_request
    def _renew_session():
        if session.permanent:  # signed in
            now = int(time.time())
            if now - session.get("_renewed", 0) >= app.config["SESSION_RENEW_SECONDS"]:
                session["_renewed"] = now  # modified: Flask re-signs the cookie with a new expiry

    @app.before_request
    def _csrf_protect():
        # The API authenticates by bearer token only and never reads the session, so a cookie cannot drive
        # it and CSRF does not apply there; a write without a token is refused by the API itself (401).
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and not wants_json():
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
            if row is None or row.session_epoch != session.get(access.SESSION_EPOCH):
                conn.rollback()
                return None  # the user signed out (anywhere) or changed their password since this session began
            principal = access.principal_from(row, conn)
            conn.rollback()
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

    from . import (
        admin,
        audit,
        auth,
        cases,
        dashboard,
        documents,
        guidance,
        help,
        hr,
        inbox,
        intake,
        jobs,
        notifications,
        whatif,
    )

    for bp in (auth.bp, inbox.bp, cases.bp, admin.bp, documents.bp, notifications.bp, audit.bp, dashboard.bp,
               guidance.bp, intake.bp, jobs.bp, whatif.bp, hr.bp, help.bp):
        app.register_blueprint(bp)
    from ..domain.errors import DomainError

    # Pages for people; the API's error shape for anything under /api/ that no API handler answered.
    app.register_error_handler(DomainError, _domain_error)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        return render_error(400, str(_l("The form has expired or was not sent from this site. Reload the page "
                                         "and submit it again.")))

    for status in (400, 403, 404, 405, 409, 413, 429):
        app.register_error_handler(status, _http_error)
    app.register_error_handler(Exception, _unexpected_error)

    @app.context_processor
    def _nav():
        if not getattr(current_user, "is_authenticated", False):
            return {}
        return {"nav": {**inbox.nav_counts(current_user), "unread": notifications.unread(current_user.id)},
                "page_help": help.page_help_url()}

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
