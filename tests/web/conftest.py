"""Fixtures of the web tests: apps on the test database whose engines are disposed afterwards."""

from __future__ import annotations

import pytest

from tests.web.support import make_app


@pytest.fixture
def app_for(tmp_path):
    """A factory of apps on a given engine (CSRF on); their connection pools are closed at teardown."""
    made = []

    def factory(engine, **config):
        app = make_app(engine, tmp_path, **config)
        made.append(app)
        return app

    yield factory
    for app in made:
        app.extensions["mianze.engine"].dispose()
