"""Alembic migrations yield exactly the models' schema."""

from __future__ import annotations

import warnings

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from workflow import models  # noqa: F401
from workflow.db import make_engine
from workflow.migrate import alembic_config, upgrade
from workflow.name_search import is_index_object


def test_alembic_upgrade_head_on_an_empty_database_yields_the_models_schema(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn, warnings.catch_warnings():
        # SQLite's reflection skips expression indexes (checked by name below); PostgreSQL compares them.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        # The enterprise-name trigram index (FTS5 tables) is not part of the models' metadata.
        context = MigrationContext.configure(conn, opts={"include_name": lambda name, *_: not is_index_object(name)})
        diff = compare_metadata(context, SQLModel.metadata)
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("respondent")}
    engine.dispose()
    assert diff == []
    if db_url.startswith("sqlite"):
        with make_engine(db_url).connect() as conn:
            indexes |= {name for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'respondent'")}
    declared = {ix.name for ix in SQLModel.metadata.tables["respondent"].indexes}
    assert "ix_respondent_outcome_case" in declared
    assert declared <= indexes  # the expression index too, which the comparison above cannot see on SQLite


def test_health_reports_the_schema_version_and_cases_per_state(sqlite_url):
    upgrade(sqlite_url)
    from workflow import create_app, engine_of

    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True})
    body = app.test_client().get("/health").get_json()
    engine_of(app).dispose()
    assert body["schema_version"] == ScriptDirectory.from_config(alembic_config(sqlite_url)).get_current_head()
    assert body["cases"]["registered"] == 0 and set(body["cases"]) >= {"final", "withdrawn"}


def test_the_migrations_have_one_head_and_the_drafts_table_downgrades_cleanly(sqlite_url):
    assert len(ScriptDirectory.from_config(alembic_config(sqlite_url)).get_heads()) == 1
    upgrade(sqlite_url)
    command.downgrade(alembic_config(sqlite_url), "0001")
    engine = make_engine(sqlite_url)
    assert "rulesetdraft" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(sqlite_url)


def _copied_column_survives_a_migration(sqlite_url, pairs_sql: str, before: str, expected_rows: int) -> None:
    """Open three cases on a migrated database, check what `pairs_sql` reads (rows whose last two columns
    are a copy and its original), then downgrade to `before` (an existing database without the copied
    column) and upgrade again: the migration's backfill gives the same rows."""
    from sqlalchemy import text

    from tests.factories import make_bank
    from workflow.db import unit_of_work
    from workflow.models import User
    from workflow.services import cases, rulesets

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine, n_loans=3, loans_per_enterprise=1)
    with unit_of_work(engine) as s:
        admin = s.get(User, bank.users["admin"])
        for loan_id in bank.loans:
            cases.open_case(s, admin, [loan_id])
    with engine.connect() as conn:
        written = conn.execute(text(pairs_sql)).all()
    engine.dispose()
    assert len(written) >= expected_rows and all(row[-2] == row[-1] for row in written)  # by open_case

    command.downgrade(alembic_config(sqlite_url), before)
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert sorted(conn.execute(text(pairs_sql)).all()) == sorted(written)
    engine.dispose()


def test_migration_0007_copies_each_cases_branch_onto_its_respondents(sqlite_url):
    _copied_column_survives_a_migration(
        sqlite_url, "SELECT r.id, r.case_branch_id, c.branch_id FROM respondent r JOIN case_file c ON c.id = r.case_id",
        before="0006", expected_rows=3)


def test_migration_0009_copies_each_loans_number_onto_its_case_links(sqlite_url):
    _copied_column_survives_a_migration(
        sqlite_url, "SELECT cl.case_id, cl.loan_no, l.loan_no FROM caseloan cl JOIN loan l ON l.id = cl.loan_id",
        before="0008", expected_rows=3)
