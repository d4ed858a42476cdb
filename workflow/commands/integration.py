"""CLI commands of the integration: `flask --app wsgi import loans FILE`, `flask --app wsgi tokens …`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app

from ..db import read_session, unit_of_work
from ..domain.errors import DomainError


def _engine():
    return current_app.extensions["mianze.engine"]


def register_cli(app: Flask) -> None:
    """Attach the `import` and `tokens` command groups."""

    @app.cli.group("import")
    def import_group():
        """Bulk imports from core banking."""

    @import_group.command("loans")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(["json", "csv", "xlsx"]), default=None,
                  help="default: from the file's extension")
    @click.option("--dry-run", is_flag=True, help="validate only; write nothing")
    def import_loans(file: Path, fmt: str | None, dry_run: bool):
        """Import loans with their enterprises and stage handlers from FILE (JSON, CSV or XLSX).

        Every row is validated first; on any bad row the command lists the first ones (line and reason, at
        most IMPORT_MAX_ERRORS) with a count per kind, writes nothing and exits 1. Importing the same file
        again changes nothing. Progress goes to stderr: a bar on a terminal, a line a minute in a log file.
        """
        from ..services import imports, tabular

        limits = tabular.Limits.from_config(current_app.config)
        try:
            rows = imports.read_file(file, fmt or imports.format_of(file.name), limits)
            with Progress("reading and checking", sys.stderr) as progress, unit_of_work(_engine()) as s:
                result = imports.import_loans(s, None, rows, dry_run=dry_run, progress=progress.update,
                                              limits=limits)
        except DomainError as exc:
            _report(exc)
            sys.exit(1)
        summary = result.to_dict()
        if not dry_run and summary["created"] > 1000:
            from ..db import analyze

            analyze(_engine())  # many new rows: refresh the planner's statistics
        verb = "would import" if dry_run else "imported"
        click.echo(f"{verb} {summary['rows']} rows: {summary['created']} created, {summary['updated']} updated, "
                   f"{summary['unchanged']} unchanged; enterprises {summary['enterprises_created']} created, "
                   f"{summary['enterprises_updated']} updated; stage handlers +{summary['handlers_added']} "
                   f"-{summary['handlers_removed']}")
        if summary["encoding"]:
            click.echo(f"the CSV file was read as {summary['encoding']}"
                       + (" (which includes GBK)" if summary["encoding"] == "GB18030" else ""))

    @app.cli.group("tokens")
    def tokens_group():
        """Per-user API tokens (stored hashed; the token is shown once)."""

    @tokens_group.command("create")
    @click.argument("username")
    @click.argument("name")
    def tokens_create(username: str, name: str):
        """Create an API token NAME for USERNAME and print it (it cannot be shown again)."""
        from sqlmodel import select

        from ..models import User
        from ..services import tokens

        try:
            with unit_of_work(_engine()) as s:
                user = s.exec(select(User).where(User.username == username)).first()
                if user is None:
                    raise click.ClickException(f"unknown user {username!r}")
                token, plain = tokens.create(s, None, user.id, name)
                token_id = token.id
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"token {token_id} for {username}: {plain}")
        click.echo("store it now: only its SHA-256 is kept", err=True)

    @tokens_group.command("revoke")
    @click.argument("token_id", type=int)
    def tokens_revoke(token_id: int):
        """Revoke the API token TOKEN_ID."""
        from ..services import tokens

        try:
            with unit_of_work(_engine()) as s:
                tokens.revoke(s, None, token_id)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"token {token_id} revoked")

    @tokens_group.command("list")
    @click.option("--user", "username", default=None)
    def tokens_list(username: str | None):
        """List tokens (id, user, name, prefix, created, last used, revoked)."""
        from sqlmodel import select

        from ..models import User
        from ..services import tokens

        with read_session(_engine()) as s:
            users = {u.id: u.username for u in s.exec(select(User))}
            uid = next((i for i, n in users.items() if n == username), -1) if username else None
            for t in tokens.tokens_of(s, uid):
                click.echo(f"{t.id}\t{users.get(t.user_id)}\t{t.name}\t{t.prefix}…\t{t.created_at:%Y-%m-%d}\t"
                           f"{t.last_used_at or '-'}\t{'revoked ' + str(t.revoked_at) if t.revoked_at else 'active'}")


def _report(exc: DomainError) -> None:
    errors = exc.details.get("errors") or []
    click.echo(f"error: {exc.message}", err=True)
    for e in errors:
        who = f" ({e['loan_no']})" if e.get("loan_no") else ""
        click.echo(f"  line {e['line']}{who}: {e['reason']}", err=True)
    total = exc.details.get("error_total", len(errors))
    if total > len(errors):
        kinds = ", ".join(f"{kind} {n}" for kind, n in exc.details.get("error_counts", {}).items())
        click.echo(f"  … {total} bad rows in all, the first {len(errors)} shown; by kind: {kinds}", err=True)


class Progress:
    """Rows done so far, on `stream`: a bar updating in place on a terminal; written to a file (a log), one
    line at most every `interval` seconds and one at the end, so a long import logs a few lines."""

    def __init__(self, desc: str, stream, interval: float = 60.0):
        self.desc, self.stream, self.interval = desc, stream, interval
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.done, self.bar, self._last = 0, None, 0.0

    def __enter__(self) -> Progress:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(unit="row", desc=self.desc, file=self.stream, unit_scale=True)
        self._start = self._last = time.monotonic()
        return self

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            print(f"{self.desc}: {self.done:,} rows", file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            print(f"{self.desc}: {self.done:,} rows in {time.monotonic() - self._start:.0f} s", file=self.stream,
                  flush=True)
