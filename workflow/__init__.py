"""Mianze (免责): due-diligence liability exemption for non-performing inclusive SME loans."""

from __future__ import annotations

# Nothing is imported at package level, so that `python -m workflow.verify` runs on a bare standard library.


def create_app(config: dict | None = None):
    """The application factory: configuration from the environment, overridden by `config`."""
    from flask import Flask, jsonify

    from .config import check, from_environment
    from .db import check_database_url, make_engine

    app = Flask(__name__, template_folder="../templates", instance_relative_config=False)
    app.config.update(from_environment())
    if config:
        app.config.update(config)
    check(app.config)  # ConfigurationError, e.g. production without SECRET_KEY
    if app.config.get("PROXY_FIX_X_FOR"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Behind that many trusted proxies the client's address is read from X-Forwarded-For; never
        # without them, where anyone could write the header and pick the address throttling counts.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]), x_proto=0)
    check_database_url(app.config["DATABASE_URL"])  # ConfigurationError: one line naming what is wrong
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["mianze.engine"] = engine
    from .services import anchor

    audit_anchor = anchor.Anchor.from_config(app.config)
    if audit_anchor is not None and audit_anchor.demo:
        anchor.create_demo_key(audit_anchor.key_file)  # development only: a real bank configures its own
    anchor.attach(engine, audit_anchor)
    from .services import letters

    letters.attach_signer(engine, letters.signer_from_config(app.config))
    if app.config.get("REDIS_URL"):
        from .services import background, notifications

        # Notifications' mail and 企业微信 posts go out as RQ jobs once their unit of work commits.
        notifications.dispatch_through_rq(engine, app.config["REDIS_URL"],
                                          app.config.get("JOBS_QUEUE") or background.QUEUE)

    from . import commands

    commands.register(app)

    from .domain.errors import DomainError

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        return jsonify({"code": exc.code, "message": exc.message, "details": exc.details}), exc.http_status

    @app.get("/health")
    def health():
        """Liveness plus what an operator wants at a glance: schema version and cases per state.

        503 {"status": "unavailable"} while the database does not answer (the reason goes to the log only:
        this page needs no sign-in)."""
        from sqlalchemy import func
        from sqlalchemy.exc import DBAPIError
        from sqlmodel import select

        from .db import failure_reason, read_session
        from .domain.states import STATE_CODES
        from .migrate import current_revision
        from .models import Case

        try:
            with read_session(engine) as s:
                counts = dict(s.exec(select(Case.state, func.count()).group_by(Case.state)).all())
            revision = current_revision(engine)
        except DBAPIError as exc:
            app.logger.warning("health: the database does not answer: %s", failure_reason(exc))
            return jsonify({"status": "unavailable", "database": "does not answer"}), 503
        return jsonify({"status": "ok", "schema_version": revision,
                        "cases": {st: counts.get(st, 0) for st in STATE_CODES}})

    from . import unit

    unit.register(app)  # one unit of work per request, committed once after the view
    from .api import register as register_api

    register_api(app)
    from .web import register as register_web

    register_web(app)
    _start_timer_when_serving(app)
    return app


def _start_timer_when_serving(app) -> None:
    """With TIMER_INTERVAL (seconds; MIANZE_TIMER_INTERVAL, set by scripts/run) the process that serves
    requests runs the deadline timer in a thread of its own, and with OUTBOX_INTERVAL (MIANZE_OUTBOX_INTERVAL)
    the notification delivery worker in another, both started by its first request (so that command-line
    invocations, which build the app too, never tick nor deliver). Production runs them from cron and as a
    process of their own (`flask notifications deliver --loop`)."""
    interval = float(app.config.get("TIMER_INTERVAL") or 0)
    every = float(app.config.get("OUTBOX_INTERVAL") or 0)
    if (interval <= 0 and every <= 0) or app.config.get("TESTING"):
        return
    import threading

    lock, started = threading.Lock(), []

    @app.before_request
    def _timer():
        if started:
            return
        with lock:
            if not started:
                from .services import jobs, outbox

                if interval > 0:
                    thread = jobs.TimerThread(engine_of(app), interval)
                    thread.start()
                    app.extensions["mianze.timer"] = thread
                if every > 0:
                    worker = outbox.DeliveryThread(engine_of(app), outbox.OutboxSettings.from_config(app.config),
                                                   every)
                    worker.start()
                    app.extensions["mianze.outbox"] = worker
                started.append(True)


def ready_to_serve(app):
    """Prepare this process to serve `app` for a long time, and return it.

    Everything loaded so far (modules, catalogues, mappers, rule sets: about 170,000 objects) lives as long
    as the process. Left to the garbage collector, each full collection walks all of it, about 120 ms with
    the process's threads stopped, once every few hundred requests: those requests wait. Frozen here (after
    one collection, so no garbage is frozen with it), full collections walk only what requests left behind.
    """
    import gc

    gc.collect()
    gc.freeze()
    return app


def engine_of(app):
    """The SQLAlchemy engine of an app."""
    return app.extensions["mianze.engine"]
