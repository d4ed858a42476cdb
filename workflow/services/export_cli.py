"""`flask --app wsgi export …`: exports and evidence bundles from the command line, with a progress bar.

    flask --app wsgi export cases --format xlsx --out cases.xlsx --as auditor [--branch T1] [--from 2026-01-01]
    flask --app wsgi export audit --format jsonl --out audit.jsonl --as auditor
    flask --app wsgi export access-log --format csv --out access.csv --as auditor
    flask --app wsgi export bundle --out bundle.zip --as auditor [--state final] [--full --reason "…"]

CSV and JSON Lines hold one record type per file: `export cases` (ten record types) then writes a ZIP with
one file per record type (give --out ….zip) unless --records names a single one.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import click
from flask import Flask, current_app

from ..db import read_session, unit_of_work
from ..domain.errors import DomainError


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
        click.option("--full", is_flag=True, help="full identity and phone numbers (needs --reason; logged)"),
        click.option("--reason", default=None, help="why full values are needed (logged)"),
        click.option("--as", "username", required=True, help="the exporting auditor's username"),
        click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True)),
    ]):
        fn = opt(fn)
    return fn


def _actor(session, username: str):
    from sqlmodel import select

    from ..models import User

    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        _fail(f"unknown user '{username}'", 2)
    return user


def _progress(desc: str, total: int | None, unit: str = "row"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr, disable=None)


def run_export(engine, *, kind: str, fmt: str, out: str, username: str, filters: dict, full: bool,
               reason: str | None, records: tuple[str, ...] | None = None, show_progress: bool = True) -> dict:
    """Authorise and log an export, then stream it to `out`; returns {record: rows}. Raises DomainError."""
    from ..domain.errors import ValidationFailed
    from . import export

    f = export.ExportFilter.parse(**filters)
    names = export.record_names(kind)
    if records:
        unknown = set(records) - set(names)
        if unknown:
            raise ValidationFailed(f"unknown record type(s) {', '.join(sorted(unknown))} for '{kind}' "
                                   f"(choose from {', '.join(names)})", field="records")
        names = tuple(r for r in names if r in records)
    to_zip = fmt in ("csv", "jsonl") and len(names) > 1
    if to_zip and not out.endswith(".zip"):
        raise ValidationFailed(f"{fmt.upper()} holds one record type per file: give --out FILE.zip for "
                               f"{len(names)} record types, or choose one with --records", field="out")
    with unit_of_work(engine) as s:
        export.authorize(s, _actor(s, username), kind=kind, fmt=fmt, f=f, full=full, reason=reason)
    counts: dict[str, int] = {}
    with read_session(engine) as s:
        total = sum(export.count(s, n, f) for n in names) if show_progress else None
        bar = _progress(f"export {kind} ({fmt})", total) if show_progress else None
        tick = bar.update if bar is not None else None

        def counted(name):
            counts[name] = 0
            for row in export.rows(s, name, f, full=full):
                counts[name] += 1
                yield row

        try:
            if fmt == "xlsx":
                export.write_xlsx(out, [(n, counted(n)) for n in names], progress=tick)
            elif to_zip:
                with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    for n in names:
                        with zf.open(f"{n}.{fmt}", "w", force_zip64=True) as fh:
                            for chunk in export.chunks(fmt, n, counted(n), progress=tick):
                                fh.write(chunk)
            else:
                with open(out, "wb") as fh:
                    for chunk in export.chunks(fmt, names[0], counted(names[0]), progress=tick):
                        fh.write(chunk)
        finally:
            if bar is not None:
                bar.close()
    return counts


def run_bundle(engine, *, out: str, username: str, filters: dict, full: bool, reason: str | None,
               evidence_dir: str, show_progress: bool = True) -> dict:
    """Authorise and log a bundle export, then write the ZIP to `out`; returns the manifest."""
    from . import bundle, export

    f = export.ExportFilter.parse(**filters)
    with unit_of_work(engine) as s:
        export.authorize(s, _actor(s, username), kind="bundle", fmt="zip", f=f, full=full, reason=reason,
                         target="bundle")
    with bundle.snapshot_session(engine) as s:
        actor = _actor(s, username)
        bar = _progress("evidence bundle", None, unit="file") if show_progress else None
        try:
            return bundle.write_bundle(s, actor, out, f, evidence_dir=evidence_dir, full=full, reason=reason,
                                       progress=bar.update if bar is not None else None, name=Path(out).name)
        finally:
            if bar is not None:
                bar.close()


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
        def command(fmt, records, out, username, branch, date_from, date_to, state, outcome, full, reason):
            filters = {"branch": branch, "date_from": date_from, "date_to": date_to, "state": state,
                       "outcome": outcome}
            try:
                counts = run_export(current_app.extensions["mianze.engine"], kind=kind, fmt=fmt, out=out,
                                    username=username, filters=filters, full=full, reason=reason,
                                    records=tuple(r.strip() for r in records.split(",")) if records else None)
            except DomainError as exc:
                _fail(exc.message, 2)
            click.echo(f"wrote {out}: " + ", ".join(f"{n} {c}" for n, c in counts.items()))

        return command

    for kind in ("cases", "audit", "access-log"):
        make(kind)

    @export_group.command("bundle")
    @_filter_options
    def bundle_command(out, username, branch, date_from, date_to, state, outcome, full, reason):
        """Write the evidence bundle (exports, letters, evidence, audit chain, hashed manifest) as a ZIP."""
        filters = {"branch": branch, "date_from": date_from, "date_to": date_to, "state": state,
                   "outcome": outcome}
        try:
            manifest = run_bundle(current_app.extensions["mianze.engine"], out=out, username=username,
                                  filters=filters, full=full, reason=reason,
                                  evidence_dir=current_app.config["EVIDENCE_DIR"])
        except DomainError as exc:
            _fail(exc.message, 2)
        for m in manifest["missing_evidence"]:
            click.echo(f"warning: evidence {m['evidence_id']} ({m['filename']}) is missing from storage", err=True)
        head = manifest["audit"]["head"]
        click.echo(f"wrote {out}: {len(manifest['files'])} files, audit head seq={head['seq']} hash={head['hash']}")
        click.echo(f"verify offline: python -m workflow.verify {out}")
