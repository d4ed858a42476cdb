"""Long jobs (exports and evidence bundles): authorised and logged, then streamed to a file.

Jobs are apart from the verbs: they run for a while, read in a snapshot of their own and report progress
through a callback; the command line and the web start them alike.
"""

from __future__ import annotations

import zipfile
from contextlib import nullcontext
from pathlib import Path

from sqlmodel import select

from ..db import read_session, unit_of_work
from ..domain.errors import NotFound, ValidationFailed
from ..models import User
from . import bundle, export


def _actor(session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"unknown user '{username}'")
    return user


def run_export(engine, *, kind: str, fmt: str, out: str, username: str, filters: dict, full: bool,
               reason: str | None, records: tuple[str, ...] | None = None, progress=None) -> dict:
    """Authorise and log an export, then stream it to `out`; returns {record: rows}. Raises DomainError."""
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
        total = sum(export.count(s, n, f) for n in names) if progress is not None else None
        bar = progress(f"export {kind} ({fmt})", total, "row") if progress is not None else nullcontext()
        tick = getattr(bar, "update", None)

        def counted(name):
            counts[name] = 0
            for row in export.rows(s, name, f, full=full):
                counts[name] += 1
                yield row

        with bar:
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
    return counts


def run_bundle(engine, *, out: str, username: str, filters: dict, full: bool, reason: str | None,
               evidence_dir: str, progress=None) -> dict:
    """Authorise and log a bundle export, then write the ZIP to `out`; returns the manifest."""
    f = export.ExportFilter.parse(**filters)
    with unit_of_work(engine) as s:
        export.authorize(s, _actor(s, username), kind="bundle", fmt="zip", f=f, full=full, reason=reason,
                         target="bundle")
    with bundle.snapshot_session(engine) as s:
        actor = _actor(s, username)
        bar = progress("evidence bundle", None, "file") if progress is not None else nullcontext()
        with bar:
            return bundle.write_bundle(s, actor, out, f, evidence_dir=evidence_dir, full=full, reason=reason,
                                       progress=getattr(bar, "update", None), name=Path(out).name)
