"""Flask CLI commands: `flask --app wsgi <group> <command>`."""

from __future__ import annotations

import functools
import json
import sys

import click
from flask import Flask, current_app
from sqlalchemy.exc import OperationalError

from ..db import analyze, failure_reason, read_session, shown_url, unit_of_work
from ..domain.errors import DomainError


def _engine():
    return current_app.extensions["mianze.engine"]


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _one_line_when_the_database_fails(app: Flask) -> None:
    """Every command: a database that does not answer (a wrong host, port, file or password in DATABASE_URL)
    ends it with one line naming the URL and the driver's reason, not a traceback."""

    def guard(callback):
        @functools.wraps(callback)
        def run(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except OperationalError as exc:
                _fail(f"cannot use the database at {shown_url(app.config['DATABASE_URL'])} (DATABASE_URL): "
                      f"{failure_reason(exc)}")

        return run

    def walk(group: click.Group) -> None:
        for command in group.commands.values():
            if isinstance(command, click.Group):
                walk(command)
            elif command.callback is not None:
                command.callback = guard(command.callback)

    walk(app.cli)


def register(app: Flask) -> None:
    """Attach every command group to the app."""
    from .deadlines import register_cli as register_deadlines

    register_deadlines(app)
    from .notifications import register_cli as register_notifications

    register_notifications(app)
    from .export import register_cli as register_export

    register_export(app)
    from .integration import register_cli as register_api_cli

    register_api_cli(app)
    from .jobs import register_cli as register_jobs

    register_jobs(app)

    @app.cli.group("db")
    def db_group():
        """Database schema (Alembic migrations)."""

    @db_group.command("upgrade")
    @click.option("--revision", default="head")
    def db_upgrade(revision):
        """Create or migrate the database to the latest schema."""
        from ..migrate import upgrade

        upgrade(current_app.config["DATABASE_URL"], revision)
        from ..services import rulesets

        with unit_of_work(_engine()) as s:
            rulesets.ensure_default(s)
        analyze(_engine())
        click.echo("database is at the latest schema")

    @db_group.command("analyze")
    def db_analyze():
        """Refresh the query planner's statistics (after bulk loads on SQLite)."""
        analyze(_engine())
        click.echo("statistics refreshed")

    @db_group.command("current")
    def db_current():
        """Print the schema revision."""
        from ..migrate import current_revision

        click.echo(current_revision(_engine()) or "(empty database)")

    @app.cli.group("demo")
    def demo_group():
        """The realistic demo bank."""

    @demo_group.command("load")
    @click.option("--seed", default=20261125, show_default=True)
    def demo_load(seed):
        """Load the demo bank (branches, staff, loans, cases in every state with their history)."""
        from .. import demo

        try:
            summary = demo.load(_engine(), seed=seed, progress=True,
                                evidence_dir=current_app.config["EVIDENCE_DIR"])
            analyze(_engine())
        except DomainError as exc:
            _fail(exc.message)
        click.echo(json.dumps(summary, ensure_ascii=False, indent=1))

    @demo_group.command("status")
    def demo_status():
        """Exit 0 when the demo bank is loaded, 1 otherwise."""
        from sqlmodel import func, select

        from ..models import Case

        try:
            with read_session(_engine()) as s:
                n = s.exec(select(func.count()).select_from(Case)).one()
        except Exception:  # noqa: BLE001 - an absent table means "not loaded"
            n = 0
        click.echo(f"{n} cases")
        sys.exit(0 if n else 1)

    @app.cli.group("audit")
    def audit_group():
        """The audit hash chain."""

    @audit_group.command("verify")
    def audit_verify():
        """Verify the chain against its signed checkpoints and the business tables against the chain.

        Exit 0 when everything agrees; 1 naming every event or row that does not."""
        from ..services import anchor, integrity

        with read_session(_engine()) as s:
            found = integrity.verify(s, anchor.of(_engine()))
        for note in found.notes:
            click.echo(f"note: {note}")
        if not found.ok:
            click.echo(f"audit verify FAILED: {len(found.problems)} problem(s):", err=True)
            for problem in found.problems:
                click.echo(f"  - {problem}", err=True)
            sys.exit(1)
        cp = found.checkpoint
        click.echo(f"audit chain intact: {found.events} events"
                   + (f", matching the signed checkpoint at seq {cp['seq']} ({cp['at']})" if cp else "")
                   + f"; {found.rows} business rows agree with the events")

    @audit_group.command("checkpoint")
    def audit_checkpoint():
        """Sign and write a checkpoint of the chain's head now (the timer also writes one on every run)."""
        from ..services import anchor

        try:
            cp = anchor.checkpoint(_engine())
        except anchor.AnchorError as exc:
            _fail(str(exc))
        if cp is None:
            _fail("no audit checkpoints are configured (AUDIT_SIGNING_KEY, AUDIT_CHECKPOINT_DIR)")
        click.echo(f"checkpoint: seq {cp['seq']} hash {cp['hash']} at {cp['at']}")

    @app.cli.group("case")
    def case_group():
        """Act on a case from the command line."""

    @case_group.command("event")
    @click.argument("number")
    @click.argument("trigger")
    @click.option("--as", "username", required=True, help="the acting user")
    @click.option("--reason", default=None)
    def case_event(number, trigger, username, reason):
        """Fire TRIGGER on case NUMBER as a user; exits 2 when the event is refused."""
        from sqlmodel import select

        from ..models import Case, User
        from ..services import cases

        simple = {
            "return_for_investigation": cases.return_for_investigation, "reopen": cases.reopen,
            "withdraw": cases.withdraw, "start_publicity": cases.start_publicity,
            "end_publicity": cases.end_publicity, "close_appeal_window": cases.close_appeal_window,
            "conclude_appeals": cases.conclude_appeals, "refer_for_accountability": cases.refer_for_accountability,
            "close": cases.close, "submit_investigation": cases.submit_investigation,
        }
        if trigger not in simple:
            _fail(f"unsupported event '{trigger}' here; use the web UI or the API for it "
                  f"(supported: {', '.join(sorted(simple))})", 2)
        try:
            with unit_of_work(_engine()) as s:
                case = s.exec(select(Case).where(Case.number == number)).first()
                actor = s.exec(select(User).where(User.username == username)).first()
                if case is None or actor is None:
                    _fail("unknown case or user", 2)
                verb = simple[trigger]
                if trigger in ("return_for_investigation", "reopen", "withdraw"):
                    verb(s, case, actor, reason or "")
                else:
                    verb(s, case, actor)
                click.echo(f"{case.number}: {case.state}")
        except DomainError as exc:
            _fail(exc.message, 2)

    @app.cli.group("letters")
    def letters_group():
        """Determination letters, appeal letters, case summaries."""

    @letters_group.command("issue-batch")
    @click.option("--branch", "branch_code", required=True, help="the deciding branch (its committee session)")
    @click.option("--as", "username", required=True, help="the issuing user (committee chair)")
    @click.option("--workers", default=2, show_default=True, help="rendering processes")
    def letters_issue_batch(branch_code, username, workers):
        """Issue every missing letter of the branch's determined cases (resumable: reruns skip what exists)."""
        from sqlmodel import select
        from tqdm import tqdm

        from ..models import Branch, Case, User
        from ..services import letters

        with read_session(_engine()) as s:
            branch = s.exec(select(Branch).where(Branch.code == branch_code)).first()
            actor = s.exec(select(User).where(User.username == username)).first()
            if branch is None or actor is None:
                _fail("unknown branch or user", 2)
            # Plain ids: the rows are detached once this read-only session ends (rolled back, expired).
            branch_id, actor_id = branch.id, actor.id
            total = len(s.exec(select(Case.id).where(Case.branch_id == branch_id, Case.state == "determined")).all())
        try:
            with tqdm(total=total, unit="case", desc="issuing letters") as bar:
                summary = letters.issue_batch(_engine(), branch_id, actor_id, workers=workers,
                                              progress=lambda n: bar.update(1))
        except DomainError as exc:
            _fail(exc.message, 2)
        click.echo(json.dumps(summary, ensure_ascii=False))

    @app.cli.group("tolerance")
    def tolerance_group():
        """NPL tolerance per branch and period."""

    @tolerance_group.command("show")
    @click.argument("branch_code")
    @click.argument("period")
    def tolerance_show(branch_code, period):
        """Print the tolerance figure of BRANCH_CODE's subtree at PERIOD (YYYY-MM-DD) as JSON."""
        from datetime import date as _date

        from sqlmodel import select

        from ..models import Branch
        from ..services import tolerance

        try:
            day = _date.fromisoformat(period)
        except ValueError:
            _fail(f"period must be a date YYYY-MM-DD, got {period!r}", 2)
        with read_session(_engine()) as s:
            branch = s.exec(select(Branch).where(Branch.code == branch_code)).first()
            if branch is None:
                _fail(f"unknown branch {branch_code!r}", 2)
            click.echo(json.dumps(tolerance.for_branch(s, branch.id, day), ensure_ascii=False, indent=1))

    @tolerance_group.command("import")
    @click.argument("branch_code")
    @click.argument("period")
    @click.option("--sme-ratio", required=True, help="inclusive SME NPL ratio as a fraction, e.g. 0.0501")
    @click.option("--all-ratio", required=True, help="all-loans NPL ratio as a fraction, e.g. 0.0200")
    @click.option("--as", "username", required=True, help="the importing administrator")
    @click.option("--reason", required=True, help="why the reported figures replace the computed ones")
    def tolerance_import(branch_code, period, sme_ratio, all_ratio, username, reason):
        """Record the figures reported to the regulator for a branch and period (audited)."""
        from datetime import date as _date

        from sqlmodel import select

        from ..domain.policy import has_role
        from ..models import Branch, User
        from ..services import tolerance

        try:
            day = _date.fromisoformat(period)
            with unit_of_work(_engine()) as s:
                branch = s.exec(select(Branch).where(Branch.code == branch_code)).first()
                actor = s.exec(select(User).where(User.username == username)).first()
                if branch is None or actor is None:
                    _fail("unknown branch or user", 2)
                if not has_role(actor.role_set, "admin"):
                    _fail("importing reported figures needs the administrator role", 2)
                tolerance.import_figure(s, actor, branch.id, day, sme_ratio, all_ratio, reason)
        except ValueError:
            _fail(f"period must be a date YYYY-MM-DD, got {period!r}", 2)
        except DomainError as exc:
            _fail(exc.message, 2)
        click.echo(f"imported: {branch_code} {period} SME {sme_ratio} / all {all_ratio}")

    @app.cli.group("rules")
    def rules_group():
        """The rule set and the what-if evaluation."""

    @rules_group.command("reevaluate")
    @click.argument("number")
    @click.argument("version", type=int)
    @click.option("--as", "username", required=True, help="the acting user (committee chair or admin)")
    @click.option("--reason", required=True, help="why the case is re-judged under another version")
    def rules_reevaluate(number, version, username, reason):
        """Re-judge every stage of open case NUMBER under rule-set VERSION (explicit and audited)."""
        from sqlmodel import select

        from ..models import Case, User
        from ..services import cases

        try:
            with unit_of_work(_engine()) as s:
                case = s.exec(select(Case).where(Case.number == number)).first()
                actor = s.exec(select(User).where(User.username == username)).first()
                if case is None or actor is None:
                    _fail("unknown case or user", 2)
                summary = cases.reevaluate(s, case, actor, version, reason)
        except DomainError as exc:
            _fail(exc.message, 2)
        click.echo(json.dumps(summary, ensure_ascii=False, indent=1))

    @rules_group.command("evaluate")
    @click.argument("file", type=click.File("r", encoding="utf-8"))
    def rules_evaluate(file):
        """Evaluate a what-if JSON (FILE, or - for standard input) and print the answer as JSON."""
        from ..services import evaluation

        try:
            request = json.load(file)
        except json.JSONDecodeError as exc:
            _fail(f"invalid JSON: {exc}", 2)
        try:
            with read_session(_engine()) as s:
                answer = evaluation.evaluate(s, request)
        except DomainError as exc:
            _fail(exc.message, 2)
        click.echo(json.dumps(answer, ensure_ascii=False, indent=2))

    _one_line_when_the_database_fails(app)
