"""The JSON API at /api/v1 (token authentication, OpenAPI 3.1 document at /api/v1/openapi.json)."""

from __future__ import annotations

from flask import Flask

from .core import bp, register_error_handlers


def _build_blueprint() -> None:
    from . import openapi, views  # noqa: F401  (declare the operations on `bp`)

    register_error_handlers()


_built = False


def register(app: Flask) -> None:
    """Mount the API blueprint. It authenticates by bearer token only and never reads the session cookie,
    so the web's CSRF check skips /api/ (see `web.register`)."""
    global _built
    if not _built:
        _build_blueprint()
        _built = True
    app.register_blueprint(bp)
