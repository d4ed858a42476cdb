"""Alembic migrations yield exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from workflow import models  # noqa: F401
from workflow.db import make_engine
from workflow.migrate import upgrade


def test_alembic_upgrade_head_on_an_empty_database_yields_the_models_schema(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_health_reports_the_schema_version_and_cases_per_state(sqlite_url):
    upgrade(sqlite_url)
    from workflow import create_app, engine_of

    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True})
    body = app.test_client().get("/health").get_json()
    engine_of(app).dispose()
    assert body["schema_version"] == "0001"
    assert body["cases"]["registered"] == 0 and set(body["cases"]) >= {"final", "withdrawn"}
