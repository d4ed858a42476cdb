"""Benchmark of the bulk loan import (a script, not a test): .venv/bin/python bench/import.py

For each database (SQLite file; PostgreSQL at MIANZE_TEST_PG if reachable), in the same run:
1. the floor: the same enterprises, loans and stage handlers written into a fresh database with no
   validation — on PostgreSQL a bare COPY into each table (ids given), on SQLite plain SQLAlchemy Core
   executemany;
2. import: `services.imports` on a CSV of the same rows into another fresh database (read, validate every
   row, look up branches and staff, stage, check and merge, audit);
3. re-import: the same file again (every row is the one its loan was last imported from: digested, looked
   up and staged as known, none validated again; writes nothing).
Prints loans/s and the ratios. Goals: import >= 0.5 x the floor; unchanged re-import >= 2 x the import.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/calendar.py would shadow the
# standard library's calendar: put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import date  # noqa: E402
from decimal import Decimal  # noqa: E402

from sqlalchemy import insert, text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from workflow import models  # noqa: E402,F401
from workflow.db import make_engine, unit_of_work  # noqa: E402
from workflow.models import Branch, Enterprise, Loan, LoanStage, User  # noqa: E402
from workflow.services import imports, rulesets  # noqa: E402

GOAL = 0.5  # import rate / floor rate
REIMPORT_GOAL = 2.0  # unchanged re-import rate / import rate
PG = os.environ.get("MIANZE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STAFF = [f"E{1000 + i}" for i in range(20)]


def record(n: int) -> dict:
    return {"loan_no": f"B{n:09d}", "enterprise_uscc": f"91110000MA{n // 2:08d}", "enterprise_name": f"企业{n // 2}",
            "enterprise_kind": "small", "branch": "OU", "product_class": "inclusive_sme", "credit_total": "3000000",
            "amount": "1000000.00", "balance": f"{500000 + n % 1000}.50", "start_date": "2024-09-01",
            "maturity_date": "2025-09-01", "classification": ("normal", "substandard")[n % 2],
            "written_off": "false", "pre_loan": STAFF[n % 20], "pre_loan_date": "2024-08-11",
            "review": STAFF[(n + 1) % 20], "review_date": "2024-08-16", "approval": STAFF[(n + 2) % 20],
            "approval_date": "2024-08-21", "post_loan": STAFF[n % 20], "post_loan_date": "2024-12-01"}


def to_csv(records: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(imports.COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


def prepare(url: str):
    """A fresh database with the schema, the default rule set, one branch and the staff."""
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
        b = Branch(code="OU", name="网点", level=3, path="/")
        s.add(b)
        s.flush()
        b.path = f"/{b.id}/"
        for i, emp in enumerate(STAFF):
            s.add(User(username=f"u{i}", name=f"员工{i}", employee_no=emp, branch_id=b.id, roles="credit_officer"))
    return engine


def raw_insert(engine, records: list[dict]) -> float:
    """Seconds to insert the same rows with Core executemany (ids fetched back for the stage rows)."""
    start = time.perf_counter()
    with unit_of_work(engine) as s:
        conn = s.connection()
        branch_id = conn.execute(text("select id from branch")).scalar_one()
        staff = dict(conn.execute(text("select employee_no, id from app_user")).all())
        ents = {}
        for r in records:
            ents.setdefault(r["enterprise_uscc"], {"uscc": r["enterprise_uscc"], "name": r["enterprise_name"],
                                                   "kind": "small", "owner_name": "", "industry": ""})
        conn.execute(insert(Enterprise.__table__), list(ents.values()))
        ent_ids = dict(conn.execute(text("select uscc, id from enterprise")).all())
        conn.execute(insert(Loan.__table__), [
            {"loan_no": r["loan_no"], "enterprise_id": ent_ids[r["enterprise_uscc"]], "branch_id": branch_id,
             "product_class": r["product_class"], "credit_total": Decimal(r["credit_total"]),
             "amount": Decimal(r["amount"]), "balance": Decimal(r["balance"]),
             "start_date": date.fromisoformat(r["start_date"]), "maturity_date": date.fromisoformat(r["maturity_date"]),
             "classification": r["classification"], "written_off": False} for r in records])
        loan_ids = dict(conn.execute(text("select loan_no, id from loan")).all())
        conn.execute(insert(LoanStage.__table__), [
            {"loan_id": loan_ids[r["loan_no"]], "stage": st, "user_id": staff[r[st]],
             "performed_on": date.fromisoformat(r[f"{st}_date"])}
            for r in records for st in ("pre_loan", "review", "approval", "post_loan")])
    return time.perf_counter() - start


def copy_floor(engine, records: list[dict]) -> float:
    """PostgreSQL: seconds to COPY the same enterprises, loans and stage handlers straight into the tables
    (ids given, no validation, no lookups): the floor of any import."""
    start = time.perf_counter()
    with unit_of_work(engine) as s:
        conn = s.connection()
        branch_id = conn.execute(text("select id from branch")).scalar_one()
        staff = dict(conn.execute(text("select employee_no, id from app_user")).all())
        raw = conn.connection.driver_connection
        ent_ids: dict[str, int] = {}
        with raw.cursor() as cur:
            with cur.copy("COPY enterprise (id, uscc, name, kind, owner_name, industry) FROM STDIN") as copy:
                for r in records:
                    if r["enterprise_uscc"] not in ent_ids:
                        ent_ids[r["enterprise_uscc"]] = len(ent_ids) + 1
                        copy.write_row((len(ent_ids), r["enterprise_uscc"], r["enterprise_name"], "small", "", ""))
            with cur.copy("COPY loan (id, loan_no, enterprise_id, branch_id, product_class, credit_total, amount, "
                          "balance, start_date, maturity_date, classification, written_off) FROM STDIN") as copy:
                for n, r in enumerate(records, start=1):
                    copy.write_row((n, r["loan_no"], ent_ids[r["enterprise_uscc"]], branch_id, r["product_class"],
                                    int(Decimal(r["credit_total"]) * 100), int(Decimal(r["amount"]) * 100),
                                    int(Decimal(r["balance"]) * 100), r["start_date"], r["maturity_date"],
                                    r["classification"], False))
            with cur.copy("COPY loanstage (loan_id, stage, user_id, performed_on) FROM STDIN") as copy:
                for n, r in enumerate(records, start=1):
                    for st in STAGES:
                        copy.write_row((n, st, staff[r[st]], r[f"{st}_date"]))
    return time.perf_counter() - start


STAGES = ("pre_loan", "review", "approval", "post_loan")


def run_import(engine, data: bytes) -> tuple[float, imports.ImportResult]:
    start = time.perf_counter()
    with unit_of_work(engine) as s:
        result = imports.import_loans(s, None, imports.read_file(data, "csv"),
                                      source_sha256=imports.sha256_of(data))
    return time.perf_counter() - start, result


def bench(name: str, make_url, n: int) -> None:
    records = [record(i) for i in range(n)]
    data = to_csv(records)
    floor_engine, imp_engine = prepare(make_url()), prepare(make_url())
    postgres = floor_engine.dialect.name == "postgresql"
    try:
        floor = copy_floor(floor_engine, records) if postgres else raw_insert(floor_engine, records)
        took, result = run_import(imp_engine, data)
        assert result.created == n, result
        again, second = run_import(imp_engine, data)
        assert second.unchanged == n and second.created == 0, second
    finally:
        floor_engine.dispose()
        imp_engine.dispose()
    ratio, reratio = floor / took, took / again
    floor_name = "bare COPY (the floor)" if postgres else "raw Core executemany"
    print(f"{name:10s} {n} loans (+{4 * n} stage handlers, {n // 2} enterprises), CSV {len(data) / 1e6:.1f} MB")
    print(f"  {floor_name:22s}: {floor:7.2f} s  {n / floor:9.0f} loans/s")
    print(f"  import (CSV, checked) : {took:7.2f} s  {n / took:9.0f} loans/s")
    print(f"  re-import (no change) : {again:7.2f} s  {n / again:9.0f} loans/s")
    print(f"  import / floor        : {ratio:7.2f}   goal >= {GOAL}  {'OK' if ratio >= GOAL else 'MISSED'}")
    print(f"  re-import / import    : {reratio:7.2f}   goal >= {REIMPORT_GOAL}  "
          f"{'OK' if reratio >= REIMPORT_GOAL else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mianze-bench-"))
    bench("SQLite", lambda: f"sqlite:///{tmp / (uuid.uuid4().hex + '.db')}", args.n)
    if args.no_postgres:
        return
    admin = make_engine(PG)
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL not reachable ({type(exc).__name__}); skipped")
        return
    schemas = []

    def pg_url():
        schema = "bench_" + uuid.uuid4().hex[:12]
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        return f"{PG}{'&' if '?' in PG else '?'}options=-csearch_path%3D{schema}"

    try:
        bench("PostgreSQL", pg_url, args.n)
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
