"""The evidence bundle: one ZIP with the exports, every letter PDF, the evidence files, the audit chain and a
hashed manifest, checkable offline with `python -m workflow.verify BUNDLE.zip` (standard library only).

Layout:
    README.txt                  how to verify
    exports/<record>.csv        one CSV per record type (UTF-8 with BOM), PII masked unless full values
    exports/records.xlsx        the same records, one sheet per record type
    letters/<id>_<kind>_v<n>.pdf
    evidence/<id>_<file name>
    audit/events.jsonl          the whole audit chain up to the head, verbatim (its hashes cover it)
    manifest.json               every file with SHA-256 and size, filters, exporter, time, chain head
    manifest.sha256             SHA-256 of manifest.json (sha256sum format)
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from ..chain import GENESIS, canonical
from ..db import read_session
from ..models import AuditHead, Evidence, Letter
from . import anchor, audit, export
from .investigation import evidence_path

FORMAT = "mianze-evidence-bundle"
FORMAT_VERSION = 1
AUDIT_FILE = "audit/events.jsonl"
# The verifier without Python: one self-contained page (no network; Web Crypto and DecompressionStream).
VERIFIER_FILE = "verify.html"
VERIFIER = Path(__file__).resolve().parents[2] / "templates" / "bundle" / "verify.html"
BUNDLE_RECORDS = (*export.CASE_RECORDS, "audit")
_CHUNK = 1 << 20

README = """Mianze evidence bundle / 免责案件证据包

Verify offline in a browser, without Python: open verify.html from this bundle (after unpacking it, or
from a copy) in Chromium, Edge, Chrome or Firefox and choose this ZIP file; it names every file that fails.

Verify offline (Python 3.11+, standard library only):
    python -m workflow.verify {name}
or, with only the two files workflow/verify.py and workflow/chain.py copied side by side:
    python3 verify.py {name}

The verifier checks manifest.json against manifest.sha256, every file against the SHA-256 in the manifest,
letters and evidence against the hashes recorded when they were issued or uploaded, and re-verifies the audit
hash chain in {audit} up to the head recorded in the manifest. Compare that head (seq and hash) with the one
the application reports (`flask --app wsgi audit verify`) or with the value noted when the bundle was handed
over: that comparison ties the bundle to the live records.

核验方法：用浏览器打开证据包中的 verify.html 并选择本 ZIP 文件（无需联网和 Python）；或 python -m workflow.verify {name}（仅需 Python 标准库）。核验内容：清单哈希、每个文件的 SHA-256、文书与证据的
原始哈希、审计哈希链及其链头。
"""


def _checkpoint(session: Session, head: dict) -> dict:
    """The latest signed checkpoint at or before the bundle's head, with the public key that verifies it."""
    import base64

    found = anchor.of(session)
    if found is None:
        return {}
    cps = [cp for _, _, cp in found.read() if cp and isinstance(cp.get("seq"), int) and cp["seq"] <= head["seq"]]
    if not cps:
        return {}
    return {"checkpoint": max(cps, key=lambda c: c["seq"]),
            "checkpoint_key": {"algorithm": "Ed25519", "public_key": base64.b64encode(found.public_key).decode()}}


class _HashingWriter:
    """Writes to a ZIP member while computing its SHA-256 and size."""

    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)


def _safe(name: str) -> str:
    name = re.sub(r"[\\/:*?\"<>|\x00-\x1f]", "_", name).strip(". ") or "file"
    return name[:120]


class BundleWriter:
    """Adds files to the ZIP and remembers each one's hash for the manifest."""

    def __init__(self, zf, progress: Callable[[int], None] | None = None):
        self.zf, self.files, self.progress = zf, [], progress

    def add_chunks(self, path: str, chunks, kind: str, **meta) -> dict:
        from zipfile import ZipInfo

        info = ZipInfo(path, date_time=datetime.now(UTC).timetuple()[:6])
        info.compress_type = self.zf.compression
        with self.zf.open(info, "w", force_zip64=True) as fh:
            w = _HashingWriter(fh)
            for chunk in chunks:
                w.write(chunk)
        entry = {"path": path, "type": kind, "sha256": w.sha.hexdigest(), "size": w.size, **meta}
        self.files.append(entry)
        if self.progress:
            self.progress(1)
        return entry

    def add_file(self, path: str, source: Path, kind: str, **meta) -> dict:
        def chunks():
            with open(source, "rb") as fh:
                while block := fh.read(_CHUNK):
                    yield block

        return self.add_chunks(path, chunks(), kind, **meta)


@contextmanager
def snapshot_session(engine) -> Iterator[Session]:
    """A read-only session that sees one snapshot throughout: REPEATABLE READ on PostgreSQL (a SQLite read
    transaction in WAL mode is one already), so the chain head, the events and the records agree."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with read_session(engine) as session:
        yield session


def write_bundle(session: Session, actor, out, f: export.ExportFilter, *, evidence_dir: str, full: bool = False,
                 reason: str | None = None, formats: tuple[str, ...] = ("csv", "xlsx"),
                 progress: Callable[[int], None] | None = None, name: str = "bundle.zip",
                 locale: str = "zh") -> dict:
    """Write the evidence bundle of the cases `f` selects to `out` (a path or a binary file); return the
    manifest. Call `export.authorize(..., kind="bundle")` first: it checks the role and logs the export;
    pass a `snapshot_session` so that everything is read from one snapshot.
    """
    import zipfile

    created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    head_row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    head = {"seq": head_row[0], "hash": head_row[1]} if head_row else {"seq": 0, "hash": GENESIS}
    counts: dict[str, int] = {}
    missing: list[dict] = []

    def counted(record, it):
        counts[record] = 0
        for row in it:
            counts[record] += 1
            yield row

    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        bw = BundleWriter(zf, progress)
        bw.add_chunks("README.txt", [README.format(name=name, audit=AUDIT_FILE).encode("utf-8")], "readme")
        bw.add_chunks(VERIFIER_FILE, [VERIFIER.read_bytes()], "verifier")
        if "csv" in formats or "jsonl" in formats:
            for record in BUNDLE_RECORDS:
                for fmt in ("csv", "jsonl"):
                    if fmt in formats:
                        row_iter = counted(record, export.rows(session, record, f, full=full, locale=locale,
                                                               **({"upto": head["seq"]} if record == "audit" else {})))
                        bw.add_chunks(f"exports/{record}.{fmt}", export.chunks(fmt, record, row_iter),
                                      "export", record=record, format=fmt)
        if "xlsx" in formats:
            with tempfile.TemporaryFile() as tmp:
                export.write_xlsx(tmp, [(r, export.rows(session, r, f, full=full, locale=locale,
                                                        **({"upto": head["seq"]} if r == "audit" else {})))
                                        for r in BUNDLE_RECORDS])
                tmp.seek(0)
                bw.add_chunks("exports/records.xlsx", iter(lambda: tmp.read(_CHUNK), b""), "export",
                              record="all", format="xlsx")

        ids = export.case_ids(session, f)
        letter_q = select(Letter.id, Letter.kind, Letter.version, Letter.doc_number, Letter.sha256, Letter.case_id)
        if ids is not None:
            letter_q = letter_q.where(Letter.case_id.in_(ids))
        for lid, kind, version, doc_number, sha, case_id in session.execute(letter_q.order_by(Letter.id)).all():
            pdf = session.execute(select(Letter.pdf).where(Letter.id == lid)).scalar_one()
            bw.add_chunks(f"letters/{lid}_{kind}_v{version}.pdf", [pdf], "letter", letter_id=lid,
                          doc_number=doc_number, case_id=case_id, recorded_sha256=sha)
            del pdf

        ev_q = select(Evidence)
        if ids is not None:
            ev_q = ev_q.where(Evidence.case_id.in_(ids))
        for ev in session.execute(ev_q.order_by(Evidence.id)).scalars():
            src = evidence_path(evidence_dir, ev)
            meta = {"evidence_id": ev.id, "case_id": ev.case_id, "filename": ev.filename,
                    "recorded_sha256": ev.sha256}
            if not src.is_file():
                missing.append(meta)
                continue
            bw.add_file(f"evidence/{ev.id}_{_safe(ev.filename)}", src, "evidence", **meta)

        n_events = 0

        def chain_lines():
            nonlocal n_events
            buf = []
            for ev in audit.iter_events(session):
                if ev["seq"] > head["seq"]:
                    break
                buf.append(canonical(ev))
                n_events += 1
                if len(buf) == 5000:
                    buf.append(b"")
                    yield b"\n".join(buf)
                    buf = []
            if buf:
                buf.append(b"")
                yield b"\n".join(buf)

        bw.add_chunks(AUDIT_FILE, chain_lines(), "audit_chain")

        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "created_at": created_at,
            "exported_by": {"id": getattr(actor, "id", None), "username": getattr(actor, "username", None),
                            "name": getattr(actor, "name", None)},
            "filters": f.describe(), "full_values": bool(full),
            "reason": (reason or "").strip() or None,
            "full_values_reason": ((reason or "").strip() or None) if full else None,
            "masking": "identity and phone numbers masked" if not full else "full values (reason logged)",
            "audit": {"file": AUDIT_FILE, "head": head, "events": n_events,
                      "note": "the whole chain from seq 1 to the head, verbatim; each line is canonical JSON",
                      **_checkpoint(session, head)},
            "counts": counts, "missing_evidence": missing, "files": bw.files,
        }
        body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
        zf.writestr("manifest.json", body)
        zf.writestr("manifest.sha256", f"{hashlib.sha256(body).hexdigest()}  manifest.json\n")
    return manifest
