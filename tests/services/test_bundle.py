"""The evidence bundle and its offline verifier: an untouched bundle passes (with a bare system Python);
one changed byte in any file, or one altered audit event, fails and is named."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.factories import drive
from workflow import verify as verifier
from workflow.chain import canonical, link_hash
from workflow.db import unit_of_work
from workflow.models import AccessLog, AuditHead, Case, Letter
from workflow.services import bundle, export, investigation

ROOT = Path(__file__).resolve().parents[2]
VERIFY_PY = ROOT / "workflow" / "verify.py"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


def build(bank, tmp_path):
    """A closed case (letters, an appeal) with one evidence file, and its bundle written by the auditor."""
    case_id = drive(bank, "closed")
    evidence_dir = str(tmp_path / "evidence")
    with unit_of_work(bank.engine) as s:
        investigation.add_evidence(s, s.get(Case, case_id), bank.user(s, "investigator"), filename="放款凭证.pdf",
                                   content_type="application/pdf", data=b"%PDF-1.4 evidence\n%%EOF",
                                   storage_dir=evidence_dir, description="贷款发放凭证")
    f = export.ExportFilter()
    with unit_of_work(bank.engine) as s:
        export.authorize(s, bank.user(s, "auditor"), kind="bundle", fmt="zip", f=f, target="bundle",
                         reason="移交外部审计")
    out = tmp_path / "bundle.zip"
    with bundle.snapshot_session(bank.engine) as s:
        manifest = bundle.write_bundle(s, bank.user(s, "auditor"), str(out), f, evidence_dir=evidence_dir)
    return out, manifest, case_id


@pytest.fixture
def built(bank, tmp_path):
    """A bundle on each database (SQLite and PostgreSQL)."""
    return build(bank, tmp_path)


@pytest.fixture(scope="module")
def one_bundle(tmp_path_factory):
    """One bundle (built once on SQLite) for the tampering tests: the verifier never touches a database."""
    from sqlmodel import SQLModel

    from tests.factories import make_bank
    from workflow.db import make_engine
    from workflow.services import rulesets

    tmp = tmp_path_factory.mktemp("bundle")
    engine = make_engine(f"sqlite:///{tmp / 'db.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    result = build(make_bank(engine), tmp)
    engine.dispose()
    return result


def rewrite(src: Path, dst: Path, change: dict) -> Path:
    """A copy of the bundle with members replaced: {name: function(bytes) -> bytes}."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info.filename, change[info.filename](data) if info.filename in change else data)
    return dst


def flip_one_byte(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def test_the_manifest_lists_every_file_with_its_hash_the_filters_the_exporter_and_the_chain_head(bank, built):
    out, manifest, case_id = built
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        body = zf.read("manifest.json")
        assert zf.read("manifest.sha256").decode().split()[0] == hashlib.sha256(body).hexdigest()
        for entry in manifest["files"]:
            assert hashlib.sha256(zf.read(entry["path"])).hexdigest() == entry["sha256"]
    assert names == {e["path"] for e in manifest["files"]} | {"manifest.json", "manifest.sha256"}
    with Session(bank.engine) as s:
        letters = s.exec(select(Letter)).all()
        head = s.get(AuditHead, 1)
        log = s.exec(select(AccessLog)).one()
    assert {e["letter_id"] for e in manifest["files"] if e["type"] == "letter"} == {lt.id for lt in letters}
    assert [e["filename"] for e in manifest["files"] if e["type"] == "evidence"] == ["放款凭证.pdf"]
    assert manifest["exported_by"]["username"] == "auditor"
    assert manifest["filters"]["branch"] is None and manifest["full_values"] is False
    assert manifest["audit"]["head"] == {"seq": head.seq, "hash": head.hash}
    assert {"exports/cases.csv", "exports/records.xlsx", "audit/events.jsonl"} <= names
    assert (log.action, log.target, log.username) == ("export", "bundle", "auditor")


def test_an_untouched_bundle_passes_with_a_bare_system_python_and_with_python_m(one_bundle):
    out, manifest, _ = one_bundle
    if SYSTEM_PYTHON is None:
        pytest.skip("no system python3")
    bare = subprocess.run([SYSTEM_PYTHON, "-I", str(VERIFY_PY), str(out)], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert f"head seq={manifest['audit']['head']['seq']}" in bare.stdout
    module = subprocess.run([sys.executable, "-m", "workflow.verify", str(out)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert module.returncode == 0, module.stdout + module.stderr


def test_the_verifier_checks_every_letters_signature_with_pdfsig_and_says_when_it_cannot(one_bundle, tmp_path,
                                                                                       monkeypatch):
    out, manifest, _ = one_bundle
    if shutil.which("pdfsig") is None:
        pytest.fail("poppler's pdfsig is not installed (scripts/setup installs poppler-utils)")
    letters = [e["path"] for e in manifest["files"] if e["type"] == "letter"]
    report = verifier.verify(out)
    assert report.ok, report.problems
    assert f"{len(letters)} letters' digital signatures validate over the whole file (pdfsig)" in report.notes[0]
    broken = verifier.verify(rewrite(out, tmp_path / "one-letter.zip", {letters[0]: flip_one_byte}))
    assert any(p.startswith(f"{letters[0]}: its digital signature does not validate") for p in broken.problems)
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without poppler: the hashes are still checked
    blind = verifier.verify(out)
    assert blind.ok and any("signatures were not checked: poppler's pdfsig is not installed" in n for n in blind.notes)


def test_the_verifier_loads_nothing_but_the_standard_library():
    if SYSTEM_PYTHON is None:
        pytest.skip("no system python3")
    probe = ("import runpy, sys; before = set(sys.modules); runpy.run_path(sys.argv[1], run_name='probe'); "
             "mods = {m.split('.')[0] for m in set(sys.modules) - before}; "
             "print(sorted(m for m in mods if m not in sys.stdlib_module_names and m != '_mianze_chain'))")
    result = subprocess.run([SYSTEM_PYTHON, "-I", "-c", probe, str(VERIFY_PY)], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_one_changed_byte_in_any_file_fails_verification_naming_that_file(one_bundle, tmp_path):
    out, _, _ = one_bundle
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert len(names) > 15
    for name in names:
        report = verifier.verify(rewrite(out, tmp_path / "tampered.zip", {name: flip_one_byte}))
        assert not report.ok, name
        named = "manifest.json" if name == "manifest.sha256" else name
        assert named in report.problems[0], (name, report.problems)


def test_a_damaged_zip_member_is_reported_by_name(one_bundle, tmp_path):
    out, manifest, _ = one_bundle
    target = next(e["path"] for e in manifest["files"] if e["type"] == "letter")
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo(target)
    # local header: 30 bytes + name + extra, then the compressed data
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    result = subprocess.run([sys.executable, str(VERIFY_PY), str(damaged)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert target in result.stdout


def alter_event(data: bytes, seq: int, rehash: bool) -> bytes:
    lines = data.decode("utf-8").splitlines()
    event = json.loads(lines[seq - 1])
    event["actor"] = "someone_else"
    if rehash:
        event["hash"] = link_hash(event)
    lines[seq - 1] = canonical(event).decode("utf-8")
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_one_altered_audit_event_fails_verification_naming_its_seq(one_bundle, tmp_path):
    out, _, _ = one_bundle
    report = verifier.verify(rewrite(out, tmp_path / "t.zip",
                                     {"audit/events.jsonl": lambda d: alter_event(d, 5, rehash=False)}))
    assert "audit/events.jsonl" in report.problems[0]
    assert any(p.startswith("audit event seq=5:") for p in report.problems)


def test_a_forged_event_with_a_recomputed_manifest_still_breaks_the_chain(one_bundle, tmp_path):
    """Even with the event's own hash, the file hash and the manifest hash all recomputed, the next link
    no longer points at it."""
    out, manifest, _ = one_bundle
    manifest = json.loads(json.dumps(manifest))  # a copy: the fixture is shared
    forged = alter_event(zipfile.ZipFile(out).read("audit/events.jsonl"), 7, rehash=True)
    for entry in manifest["files"]:
        if entry["path"] == "audit/events.jsonl":
            entry["sha256"], entry["size"] = hashlib.sha256(forged).hexdigest(), len(forged)
    body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    tampered = rewrite(out, tmp_path / "forged.zip", {
        "audit/events.jsonl": lambda _: forged, "manifest.json": lambda _: body,
        "manifest.sha256": lambda _: f"{hashlib.sha256(body).hexdigest()}  manifest.json\n".encode()})
    result = subprocess.run([sys.executable, str(VERIFY_PY), str(tampered)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "audit event seq=8: prev_hash" in result.stdout


def test_a_deleted_audit_event_or_file_is_detected(one_bundle, tmp_path):
    out, manifest, _ = one_bundle
    drop_last = verifier.verify(rewrite(out, tmp_path / "a.zip", {
        "audit/events.jsonl": lambda d: b"\n".join(d.splitlines()[:-1]) + b"\n"}))
    assert any("audit event seq=" in p for p in drop_last.problems)
    letter = next(e["path"] for e in manifest["files"] if e["type"] == "letter")
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(tmp_path / "b.zip", "w") as zout:
        for info in zin.infolist():
            if info.filename != letter:
                zout.writestr(info.filename, zin.read(info.filename))
    missing = verifier.verify(tmp_path / "b.zip")
    assert missing.problems == [f"{letter}: listed in the manifest but missing from the bundle"]


def test_the_cli_writes_a_bundle_that_verifies(bank, built, tmp_path, db_url):
    from workflow import create_app

    _, _, case_id = built
    with Session(bank.engine) as s:
        number = s.get(Case, case_id).number
    app = create_app({"DATABASE_URL": db_url, "EVIDENCE_DIR": str(tmp_path / "evidence")})
    out = tmp_path / "cli.zip"
    result = app.test_cli_runner().invoke(args=["export", "bundle", "--out", str(out), "--as", "auditor",
                                                "--state", "closed", "--full", "--reason", "审计抽查"])
    app.extensions["mianze.engine"].dispose()
    assert result.exit_code == 0, result.output
    report = verifier.verify(out)
    assert report.ok, report.problems
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert number in zf.read("exports/cases.csv").decode("utf-8-sig")
    assert manifest["full_values"] is True and manifest["full_values_reason"] == "审计抽查"
    # the full-values request is itself in the chain the bundle carries
    assert report.events == manifest["audit"]["head"]["seq"]
