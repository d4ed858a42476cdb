"""Command-line verbs: tolerance figures, re-evaluation, and refused events exit non-zero."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from tests.factories import drive, make_bank
from workflow import create_app, engine_of
from workflow.migrate import upgrade
from workflow.models import AuditEvent, Case


@pytest.fixture
def cli(sqlite_url):
    upgrade(sqlite_url)
    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True})
    from workflow.db import unit_of_work
    from workflow.services import rulesets

    with unit_of_work(engine_of(app)) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine_of(app))
    yield app.test_cli_runner(), bank
    engine_of(app).dispose()


def test_imported_tolerance_figures_replace_the_computed_ones_and_need_an_admin(cli):
    runner, bank = cli
    denied = runner.invoke(args=["tolerance", "import", "T1", "2025-12-31", "--sme-ratio", "0.05",
                                 "--all-ratio", "0.02", "--as", "chair", "--reason", "监管报送口径"])
    assert denied.exit_code == 2 and "administrator" in denied.output
    ok = runner.invoke(args=["tolerance", "import", "T1", "2025-12-31", "--sme-ratio", "0.0501",
                             "--all-ratio", "0.0200", "--as", "admin", "--reason", "监管报送口径"])
    assert ok.exit_code == 0, ok.output
    shown = json.loads(runner.invoke(args=["tolerance", "show", "T1", "2025-12-31"]).output)
    assert shown["source"] == "imported" and shown["within"] is False and shown["reason"] == "监管报送口径"
    computed = json.loads(runner.invoke(args=["tolerance", "show", "T2", "2025-12-31"]).output)
    assert computed["source"] == "computed"


def test_re_evaluation_from_the_command_line_is_audited(cli):
    runner, bank = cli
    case_id = drive(bank, "investigating")
    with Session(bank.engine) as s:
        number = s.get(Case, case_id).number
    result = runner.invoke(args=["rules", "reevaluate", number, "1", "--as", "chair", "--reason", "复核适用版本"])
    assert result.exit_code == 0, result.output
    with Session(bank.engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "reevaluate")).one()
        assert event.payload["reason"] == "复核适用版本"


def test_a_refused_event_exits_non_zero_with_the_reason(cli):
    runner, bank = cli
    case_id = drive(bank, "registered")
    with Session(bank.engine) as s:
        number = s.get(Case, case_id).number
    result = runner.invoke(args=["case", "event", number, "close", "--as", "chair"])
    assert result.exit_code == 2 and "not allowed" in result.output


def test_db_upgrade_and_db_analyze_leave_statistics_for_the_query_planner(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    runner = app.test_cli_runner()

    def rows_counted(table: str) -> int:
        with engine_of(app).connect() as conn:
            stats = conn.exec_driver_sql("SELECT stat FROM sqlite_stat1 WHERE tbl = ?", (table,)).all()
        return max((int(stat.split()[0]) for (stat,) in stats), default=0)

    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert rows_counted("rulesetversion") == 1  # ANALYZE ran on the seeded database
    make_bank(engine_of(app))
    users = rows_counted("app_user")
    result = runner.invoke(args=["db", "analyze"])
    assert result.exit_code == 0 and "statistics refreshed" in result.output
    assert rows_counted("app_user") > users
    engine_of(app).dispose()
