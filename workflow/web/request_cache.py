"""Values computed once per request: the locale and its catalogue, the user's scope, and the like.

A context variable holds a dict for the request (opened before it, closed after it), read without going
through `g`'s proxy: pages ask for some of these values a hundred times. Outside a request every call
computes afresh.
"""

from __future__ import annotations

from contextvars import ContextVar

from flask import g

_CACHE: ContextVar[dict | None] = ContextVar("mianze_request_cache", default=None)


def per_request(key, make):
    """`make()`, computed once per request under `key` and kept for the rest of it (never None)."""
    cache = _CACHE.get()
    if cache is None:
        return make()
    value = cache.get(key)
    if value is None:
        value = cache[key] = make()
    return value


def register(app) -> None:
    """Open the cache before each request and close it after."""

    @app.before_request
    def _open_request_cache():
        g.mianze_request_cache = _CACHE.set({})

    @app.teardown_request
    def _close_request_cache(_exc):
        token = g.pop("mianze_request_cache", None)
        if token is not None:
            _CACHE.reset(token)
