"""`flask --app wsgi export …`: exports and evidence bundles from the command line, with a progress bar.

    flask --app wsgi export cases --format xlsx --out cases.xlsx --as auditor --reason "…" [--branch T1] [--from 2026-01-01]
    flask --app wsgi export audit --format jsonl --out audit.jsonl --as auditor --reason "…"
    flask --app wsgi export access-log --format csv --out access.csv --as auditor --reason "…"
    flask --app wsgi export bundle --out bundle.zip --as auditor --reason "…" [--state final] [--full]

Every export states its reason (recorded in the access log); states and outcomes are labelled in Chinese
(--locale en: English) with their codes in the next column.

CSV and JSON Lines hold one record type per file: `export cases` (ten record types) then writes a ZIP with
one file per record type (give --out ….zip) unless --records names a single one.
"""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app

from ..domain.errors import DomainError
from ..services.jobs import run_bundle, run_export


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _filter_options(fn):
    for opt in reversed([
        click.option("--branch", default=None, help="branch code: the branch and its whole subtree"),
        click.option("--from", "date_from", default=None, help="cases opened on or after (YYYY-MM-DD, CST)"),
        click.option("--to", "date_to", default=None, help="cases opened on or before (YYYY-MM-DD, CST)"),
        click.option("--state", default=None, help="case state"),
        click.option("--outcome", default=None, help="a respondent outcome: exempt, reduced or liable"),
        click.option("--full", is_flag=True, help="full identity and phone numbers (also recorded in the audit trail)"),
        click.option("--reason", default=None, help="why the export is needed (required; recorded in the access log)"),
        click.option("--locale", type=click.Choice(["zh", "en"]), default="zh",
                     help="language of the state and outcome labels (default: Chinese)"),
        click.option("--as", "username", required=True, help="the exporting auditor's username"),
        click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True)),
    ]):
        fn = opt(fn)
    return fn


def _progress(desc: str, total: int | None, unit: str = "row"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, disable=None)


def register_cli(app: Flask) -> None:
    """Attach the `export` command group to the app."""

    @app.cli.group("export")
    def export_group():
        """Exports for internal audit (auditor role) and evidence bundles."""

    def make(kind: str):
        @export_group.command(kind, help=f"Export {kind} as CSV, XLSX or JSON Lines.")
        @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "jsonl"]), required=True)
        @click.option("--records", default=None, help="comma-separated record types (default: all of the kind)")
        @_filter_options
        def command(fmt, records, out, username, branch, date_from, date_to, state, outcome, full, reason, locale):
            filters = {"branch": branch, "date_from": date_from, "date_to": date_to, "state": state,
                       "outcome": outcome}
            try:
                counts = run_export(current_app.extensions["mianze.engine"], kind=kind, fmt=fmt, out=out,
                                    username=username, filters=filters, full=full, reason=reason,
                                    records=tuple(r.strip() for r in records.split(",")) if records else None,
                                    progress=_progress, locale=locale)
            except DomainError as exc:
                _fail(exc.message, 2)
            click.echo(f"wrote {out}: " + ", ".join(f"{n} {c}" for n, c in counts.items()))

        return command

    for kind in ("cases", "audit", "access-log"):
        make(kind)

    @export_group.command("bundle")
    @_filter_options
    def bundle_command(out, username, branch, date_from, date_to, state, outcome, full, reason, locale):
        """Write the evidence bundle (exports, letters, evidence, audit chain, hashed manifest) as a ZIP."""
        filters = {"branch": branch, "date_from": date_from, "date_to": date_to, "state": state,
                   "outcome": outcome}
        try:
            manifest = run_bundle(current_app.extensions["mianze.engine"], out=out, username=username,
                                  filters=filters, full=full, reason=reason,
                                  evidence_dir=current_app.config["EVIDENCE_DIR"], progress=_progress,
                                  locale=locale)
        except DomainError as exc:
            _fail(exc.message, 2)
        for m in manifest["missing_evidence"]:
            click.echo(f"warning: evidence {m['evidence_id']} ({m['filename']}) is missing from storage", err=True)
        head = manifest["audit"]["head"]
        click.echo(f"wrote {out}: {len(manifest['files'])} files, audit head seq={head['seq']} hash={head['hash']}")
        click.echo(f"verify offline: python -m workflow.verify {out}")
