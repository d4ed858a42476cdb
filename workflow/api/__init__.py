"""The JSON API at /api/v1 (token authentication, OpenAPI 3.1 document at /api/v1/openapi.json)."""

from __future__ import annotations

from flask import Flask, request

from .core import bp, error_response, register_error_handlers

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _build_blueprint() -> None:
    from . import openapi, views  # noqa: F401  (declare the operations on `bp`)

    register_error_handlers()

    @bp.route("/<path:rest>", methods=_METHODS)
    @bp.route("/", defaults={"rest": ""}, methods=_METHODS)
    def _unknown(rest):
        """Unknown paths answer 404 in the API's error shape; known paths with another method 405."""
        from flask import current_app
        from werkzeug.exceptions import MethodNotAllowed, NotFound

        adapter = current_app.url_map.bind_to_environ(request.environ)
        allowed = []
        for method in _METHODS:
            if method == request.method:
                continue
            try:
                endpoint, _ = adapter.match(method=method)
            except (NotFound, MethodNotAllowed):
                continue
            if endpoint != "api._unknown":
                allowed.append(method)
        if allowed:
            return error_response("method_not_allowed", f"{request.method} is not allowed here", 405,
                                  {"allowed": allowed}, {"Allow": ", ".join(allowed)})
        return error_response("not_found", f"no API resource at {request.path}", 404)


_built = False


def register(app: Flask) -> None:
    """Mount the API blueprint and exempt it from CSRF (it authenticates by token, not by cookie)."""
    global _built
    if not _built:
        _build_blueprint()
        _built = True
    app.register_blueprint(bp)

    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)
    else:
        # CSRFProtect may be set up after us: exempt the blueprint before its first check runs.
        def _exempt_api_from_csrf():
            late = app.extensions.get("csrf")
            if late is not None and bp.name not in getattr(late, "_exempt_blueprints", set()):
                late.exempt(bp)

        app.before_request_funcs.setdefault(None, []).insert(0, _exempt_api_from_csrf)
