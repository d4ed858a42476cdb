"""Offline verification of a Mianze evidence bundle. Standard library only.

    python -m workflow.verify BUNDLE.zip
    python3 workflow/verify.py BUNDLE.zip      (needs only this file and chain.py beside it)

Checks manifest.json against manifest.sha256, every file against the manifest (SHA-256 and size, no file
missing or unlisted), letters and evidence against the hashes recorded when they were issued or uploaded,
checks each letter's digital signature (PAdES) with poppler's `pdfsig` where it is installed (a note says so
where it is not: the letters' hashes are checked either way), and re-verifies the audit hash chain in the
bundle up to the head recorded in the manifest. Prints every
mismatch (the first one first) naming the file or the audit event's seq; exits 0 when the bundle is intact,
1 otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path


def _load_chain():
    """workflow/chain.py loaded by path, so that nothing of the application (Flask, SQLAlchemy) is needed."""
    name = "_mianze_chain"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("chain.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


chain = _load_chain()

MANIFEST, MANIFEST_HASH = "manifest.json", "manifest.sha256"
_READ = 1 << 20


@dataclass
class Report:
    """What the verification found: problems (any makes the bundle fail), notes, and counts."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    events: int = 0
    head: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _hash_member(zf: zipfile.ZipFile, name: str) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with zf.open(name) as fh:
        while block := fh.read(_READ):
            sha.update(block)
            size += len(block)
    return sha.hexdigest(), size


def _events(zf: zipfile.ZipFile, name: str, report: Report):
    """The audit events of the bundle's chain file, one JSON object per line."""
    with zf.open(name) as raw:
        previous_seq = 0
        for lineno, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", newline="\n"), start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise chain.ChainBroken(previous_seq + 1, f"{name} line {lineno} is not valid JSON "
                                        "(the event was altered)") from None
            if not isinstance(event, dict):
                raise chain.ChainBroken(previous_seq + 1, f"{name} line {lineno} is not an event object")
            previous_seq = event.get("seq", previous_seq + 1)
            yield event


_VALID = "Signature Validation: Signature is Valid."


def _signatures(zf: zipfile.ZipFile, letters: list[str], report: Report) -> None:
    """Each letter's PAdES signature, validated by poppler's pdfsig (the letter is written to a temporary file,
    in chunks); a letter issued before letters were signed carries none, and the report says how many."""
    if not letters:
        return
    tool = shutil.which("pdfsig")
    if tool is None:
        report.notes.append(f"the {len(letters)} letters' digital signatures were not checked: poppler's pdfsig "
                            "is not installed (apt install poppler-utils); their SHA-256 hashes were")
        return
    valid = unsigned = 0
    with tempfile.TemporaryDirectory(prefix="mianze-verify-") as tmp:
        target = Path(tmp) / "letter.pdf"
        for name in letters:
            try:
                with zf.open(name) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, _READ)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError):
                continue  # reported as unreadable above
            try:
                out = subprocess.run([tool, str(target)], capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as exc:
                report.problems.append(f"{name}: pdfsig could not check its signature ({exc})")
                continue
            text = out.stdout + out.stderr
            if "does not contain any signatures" in text:
                unsigned += 1
            elif _VALID in text and "Total document signed" in text:
                valid += 1
            else:
                why = next((line.strip() for line in text.splitlines() if "Signature Validation" in line),
                           text.strip().splitlines()[-1] if text.strip() else f"pdfsig exited {out.returncode}")
                report.problems.append(f"{name}: its digital signature does not validate ({why})")
    report.notes.append(f"{valid} letters' digital signatures validate over the whole file (pdfsig); whether the "
                        "signing certificate is the bank's is for its CA certificate to confirm")
    if unsigned:
        report.notes.append(f"{unsigned} letters carry no digital signature (issued before letters were signed)")


def verify(path: str | Path) -> Report:
    """Verify the bundle at `path`; never raises for a damaged or altered bundle (see Report.problems)."""
    report = Report()
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(f"{path}: not a readable ZIP file ({exc})")
        return report
    with zf:
        names = set(zf.namelist())
        for required in (MANIFEST, MANIFEST_HASH):
            if required not in names:
                report.problems.append(f"{required}: missing from the bundle")
        if report.problems:
            return report
        try:
            body = zf.read(MANIFEST)
            recorded = zf.read(MANIFEST_HASH).decode("ascii", "replace").split()
        except (zipfile.BadZipFile, zlib.error, OSError) as exc:
            report.problems.append(f"{MANIFEST}: unreadable ({exc})")
            return report
        actual = hashlib.sha256(body).hexdigest()
        if not recorded or recorded[0].lower() != actual:
            report.problems.append(f"{MANIFEST}: SHA-256 {actual} does not match {MANIFEST_HASH} "
                                   f"({recorded[0] if recorded else 'empty'}) - the manifest was altered")
        try:
            manifest = json.loads(body.decode("utf-8"))
            files = manifest["files"]
            audit_info = manifest["audit"]
        except (ValueError, KeyError, TypeError) as exc:
            report.problems.append(f"{MANIFEST}: not a valid bundle manifest ({exc})")
            return report

        listed = set()
        for entry in files:
            name = entry.get("path")
            listed.add(name)
            if name not in names:
                report.problems.append(f"{name}: listed in the manifest but missing from the bundle")
                continue
            try:
                digest, size = _hash_member(zf, name)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                report.problems.append(f"{name}: unreadable, the ZIP member is damaged ({exc})")
                continue
            report.files += 1
            if digest != entry.get("sha256") or size != entry.get("size"):
                report.problems.append(f"{name}: SHA-256 {digest} ({size} bytes) does not match the manifest "
                                       f"({entry.get('sha256')}, {entry.get('size')} bytes)")
            elif entry.get("recorded_sha256") and entry["recorded_sha256"] != digest:
                report.problems.append(f"{name}: differs from the SHA-256 recorded when it was "
                                       f"{'issued' if entry.get('type') == 'letter' else 'uploaded'} "
                                       f"({entry['recorded_sha256']})")
        for name in sorted(names - listed - {MANIFEST, MANIFEST_HASH}):
            report.problems.append(f"{name}: in the bundle but not listed in the manifest")
        _signatures(zf, [e.get("path") for e in files if e.get("type") == "letter" and e.get("path") in names
                         and str(e.get("path")).lower().endswith(".pdf")], report)

        chain_file = audit_info.get("file")
        report.head = audit_info.get("head")
        checkpoint = audit_info.get("checkpoint") or {}
        at_checkpoint: list[str] = []

        def watched(events):
            for event in events:
                if event.get("seq") == checkpoint.get("seq"):
                    at_checkpoint.append(event.get("hash"))
                yield event

        if chain_file not in names:
            report.problems.append(f"{chain_file}: the audit chain file is missing")
        else:
            try:
                report.events = chain.verify_events(watched(_events(zf, chain_file, report)), report.head)
                if checkpoint.get("seq") and at_checkpoint != [checkpoint.get("hash")]:
                    report.problems.append(
                        f"audit event seq={checkpoint['seq']}: does not match the bank's signed checkpoint "
                        f"of {checkpoint.get('at')} ({checkpoint.get('hash')}): the chain was rewritten")
                elif checkpoint:
                    report.notes.append(
                        f"the chain matches the bank's signed checkpoint at seq {checkpoint['seq']} "
                        f"({checkpoint.get('at')}); its Ed25519 signature is checked with the bank's public key "
                        "in the manifest (audit.checkpoint_key) by `flask audit verify` or any Ed25519 tool")
            except chain.ChainBroken as exc:
                report.problems.append(f"audit event seq={exc.seq}: {exc.reason}")
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, UnicodeDecodeError) as exc:
                report.problems.append(f"{chain_file}: unreadable ({exc})")
        for m in manifest.get("missing_evidence") or []:
            report.notes.append(f"evidence {m.get('evidence_id')} ({m.get('filename')}) was missing from storage "
                                "at export time and is not in the bundle")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the verdict; 0 when intact, 1 otherwise."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m workflow.verify BUNDLE.zip", file=sys.stderr)
        return 1
    report = verify(args[0])
    for note in report.notes:
        print(f"note: {note}")
    head = report.head or {}
    if report.ok:
        print(f"OK: {args[0]}: {report.files} files match the manifest; audit chain intact, {report.events} events, "
              f"head seq={head.get('seq')} hash={head.get('hash')}")
        return 0
    print(f"FAILED: {args[0]}: {len(report.problems)} problem(s); first mismatch first:")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
