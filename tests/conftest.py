"""Shared fixtures: a fresh database per test, on SQLite always and on the real PostgreSQL server."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from workflow import models  # noqa: F401  (registers the tables)
from workflow.db import make_engine

PG_BASE = os.environ.get("MIANZE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

if os.environ.get("CI"):
    # CI runs the same examples every time (a property failure found locally is replayed from .hypothesis/).
    from hypothesis import settings

    settings.register_profile("mianze-ci", derandomize=True, database=None, deadline=None)
    settings.load_profile("mianze-ci")


def _postgres_reachable() -> bool:
    try:
        eng = make_engine(PG_BASE)
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


_PG_OK: bool | None = None


def postgres_available() -> bool:
    """Whether the real server answers; with MIANZE_REQUIRE_POSTGRES=1 its absence fails the run loudly."""
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _postgres_reachable()
        if not _PG_OK and os.environ.get("MIANZE_REQUIRE_POSTGRES") == "1":
            pytest.exit("PostgreSQL at 127.0.0.1:5432 is required (MIANZE_REQUIRE_POSTGRES=1) but not reachable",
                        returncode=3)
    return _PG_OK


@pytest.fixture(scope="session")
def audit_key(tmp_path_factory):
    """One demonstration audit signing key for the run (made once: key generation is cheap, but files add up)."""
    from workflow.services import anchor

    path = tmp_path_factory.mktemp("audit-key") / "demo_audit_signing_key.pem"
    anchor.create_demo_key(path)
    return path


@pytest.fixture(scope="session")
def letter_certificate(tmp_path_factory):
    """One demonstration CA and letter signing certificate (PKCS#12) for the run."""
    from workflow.pdf import create_demo_certificate

    path = tmp_path_factory.mktemp("letter-certificate") / "demo_letter_signing.p12"
    create_demo_certificate(path)
    return path


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory, audit_key):
    """The demo bank loaded once per test process into a SQLite file; `demo_database` copies it per user.
    (Tests that use it are in the xdist group "demo", so one worker loads it once.)"""
    from sqlmodel import SQLModel

    from workflow import demo
    from workflow.db import unit_of_work
    from workflow.services import anchor, rulesets

    tmp = tmp_path_factory.mktemp("demo-template")
    engine = make_engine(f"sqlite:///{tmp / 'demo.sqlite3'}")
    anchor.attach(engine, anchor.Anchor(audit_key, tmp / "audit_checkpoints"))
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    summary = demo.load(engine, seed=demo.DEFAULT_SEED, progress=False, evidence_dir=tmp / "evidence")
    engine.dispose()
    (tmp / "summary.json").write_text(json.dumps(summary, default=str))
    return tmp


def demo_copy(template, target, audit_key=None):
    """A private copy of the demo bank (database, evidence files, signed checkpoints) in `target`; returns its
    engine (with `audit_key`, checkpointed into the copy's own directory as the app does it)."""
    import shutil

    shutil.copyfile(template / "demo.sqlite3", target / "demo.sqlite3")
    for folder in ("evidence", "audit_checkpoints"):
        if (template / folder).exists():
            shutil.copytree(template / folder, target / folder, dirs_exist_ok=True)
    engine = make_engine(f"sqlite:///{target / 'demo.sqlite3'}")
    if audit_key is not None:
        from workflow.services import anchor

        anchor.attach(engine, anchor.Anchor(audit_key, target / "audit_checkpoints"))
    return engine


def demo_summary(template) -> dict:
    """What loading the demo bank reported (counts by kind)."""
    return json.loads((template / "summary.json").read_text())


@pytest.fixture(autouse=True)
def _audit_checkpoints_per_test(tmp_path, audit_key, letter_certificate, monkeypatch):
    """Every app a test creates writes its audit checkpoints into that test's own directory, and signs its
    letters with the run's demonstration certificate."""
    monkeypatch.setenv("MIANZE_AUDIT_SIGNING_KEY", str(audit_key))
    monkeypatch.setenv("MIANZE_LETTER_SIGNING_P12", str(letter_certificate))
    monkeypatch.setenv("MIANZE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "audit_checkpoints"))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'mianze.sqlite3'}"


@pytest.fixture
def pg_url():
    """A fresh schema on the real PostgreSQL server, dropped afterwards."""
    if not postgres_available():
        pytest.skip("PostgreSQL not reachable")
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = make_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_BASE else "?"
    yield f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request):
    """A fresh empty database URL: every test using it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url):
    """An engine on a fresh database with the models' schema and the default rule set."""
    eng = make_engine(db_url)
    SQLModel.metadata.create_all(eng)
    from workflow.db import unit_of_work
    from workflow.services import rulesets

    with unit_of_work(eng) as s:
        rulesets.ensure_default(s)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url):
    eng = make_engine(sqlite_url)
    SQLModel.metadata.create_all(eng)
    from workflow.db import unit_of_work
    from workflow.services import rulesets

    with unit_of_work(eng) as s:
        rulesets.ensure_default(s)
    yield eng
    eng.dispose()


@pytest.fixture
def bank(engine):
    """A small bank (branches, staff of every role, one enterprise with NPLs) on the fresh database."""
    from tests.factories import make_bank

    return make_bank(engine)
