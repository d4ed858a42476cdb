"""Shared helpers of the benchmark scripts: fresh databases (SQLite file in WAL, PostgreSQL temporary schema).

Scripts import it as `bench.common` after `use_repo_root()`: the script's own folder must not stay first on
sys.path, where a bench script named like a standard module (calendar.py) would shadow it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlmodel import SQLModel

from workflow import models  # noqa: F401  (registers the tables)
from workflow.db import make_engine, unit_of_work

PG_BASE = os.environ.get("MIANZE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _prepare(engine):
    SQLModel.metadata.create_all(engine)
    from workflow.services import rulesets

    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    return engine


@contextmanager
def sqlite_engine() -> Iterator:
    """An engine on a fresh SQLite file (WAL, synchronous=FULL) in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="mianze-bench-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            yield _prepare(engine)
        finally:
            engine.dispose()


@contextmanager
def postgres_engine() -> Iterator:
    """An engine on a temporary schema of the PostgreSQL database `test`, dropped afterwards."""
    schema = "bench_" + uuid.uuid4().hex[:12]
    admin = make_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_BASE else "?"
    engine = make_engine(f"{PG_BASE}{sep}options=-csearch_path%3D{schema}")
    try:
        yield _prepare(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def postgres_reachable() -> bool:
    try:
        engine = make_engine(PG_BASE)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
