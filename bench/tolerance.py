"""Benchmark (a script, not a test): .venv/bin/python bench/tolerance.py [--db sqlite|postgres] [--branches N]
[--loans N]

NPL tolerance of every branch with its whole subtree (services.tolerance.all_branches).

- SQLite (default): 2,000 branches over 1,000,000 loans in a file in WAL mode. Goal: <= 1 s. The data is
  generated with Core executemany bulk inserts (not timed).
- PostgreSQL (`--db postgres --loans 10000000`): the loans are loaded with COPY (psycopg) into a dedicated
  database (`mianze_bench` on MIANZE_BENCH_PG's server, created for the run and dropped afterwards), the
  indexes built after the load, then VACUUM ANALYZE. It prints the tolerance's time and its ratio to a bare
  GROUP BY of the same table (`SELECT branch_id, sum(balance) FROM loan GROUP BY branch_id`: one scan and one
  aggregate per branch, the least any per-branch figure costs). Goal: <= 1.2 x.

The tolerance is computed several times and the median printed.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

# Run from the repository root, not from bench/ (whose calendar.py would shadow the standard module).
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import insert, select, update
from sqlmodel import Session, SQLModel

from bench.common import PG_BASE, sqlite_engine
from workflow.db import make_engine, unit_of_work
from workflow.models import Branch, Enterprise, Loan
from workflow.services import rulesets, tolerance

GOAL_SECONDS = 1.0
PERIOD = date(2025, 12, 31)


GOAL_RATIO = 1.2
BENCH_DB = "mianze_bench"


def build_branches(engine, n_branches: int) -> tuple[list[int], list[int]]:
    """Head office, 20 tier-1 branches, 180 sub-branches and outlets (n_branches in all), and 1,000
    enterprises; returns the ids of the branches that book loans (outlets and sub-branches) and of the
    enterprises."""
    branch = Branch.__table__
    with engine.begin() as conn:
        def add(level: int, parent: tuple[int, str] | None, code: str) -> tuple[int, str]:
            new_id = conn.execute(insert(branch).values(code=code, name=code, name_en=code, level=level,
                                                        parent_id=parent[0] if parent else None, path="/",
                                                        active=True)).inserted_primary_key[0]
            path = (parent[1] if parent else "/") + f"{new_id}/"
            conn.execute(update(branch).where(branch.c.id == new_id).values(path=path))
            return new_id, path

        head = add(0, None, "HO")
        made, leaves = [head], []
        tier1 = [add(1, head, f"T{i:02d}") for i in range(20)]
        made += tier1
        subs = [add(2, t, f"S{i:03d}") for i, t in enumerate(tier1 * 9)]
        made += subs
        n = 0
        while len(made) < n_branches:
            leaves.append(add(3, subs[n % len(subs)], f"O{n:04d}"))
            made.append(leaves[-1])
            n += 1
        conn.execute(insert(Enterprise.__table__), [
            {"name": f"企业{i}", "uscc": f"91410100MA{i:08d}", "kind": "small", "owner_name": "", "industry": ""}
            for i in range(1000)])
        ent_ids = [r[0] for r in conn.execute(select(Enterprise.__table__.c.id))]
    return [b[0] for b in leaves + subs], ent_ids


def loan_rows(n_loans: int, booking: list[int], ent_ids: list[int], seed: int = 7):
    """The generated loans: 60 % inclusive SME (5 % of them NPL), the rest corporate (2 % NPL), amounts in
    yuan, balances 30–100 % of the amount, started over the 500 days around the period end."""
    rng = random.Random(seed)
    start = PERIOD - timedelta(days=400)
    for i in range(n_loans):
        sme = rng.random() < 0.6
        npl = rng.random() < (0.05 if sme else 0.02)
        amount = rng.randrange(10, 1000) * 10_000
        yield {"loan_no": f"L{i:08d}", "enterprise_id": rng.choice(ent_ids), "branch_id": rng.choice(booking),
               "product_class": "inclusive_sme" if sme else "corporate",
               "credit_total": amount, "amount": amount, "balance": amount * rng.randint(30, 100) // 100,
               "start_date": start + timedelta(days=rng.randrange(500)), "maturity_date": PERIOD,
               "classification": rng.choice(("substandard", "doubtful", "loss")) if npl else "normal",
               "written_off": npl and rng.random() < 0.05}


def build(engine, n_branches: int, n_loans: int, seed: int = 7) -> None:
    """The branches and n_loans loans, inserted with Core executemany in batches of 50,000 (SQLite)."""
    booking, ent_ids = build_branches(engine, n_branches)
    loan = Loan.__table__
    batch: list[dict] = []
    for row in loan_rows(n_loans, booking, ent_ids, seed):
        batch.append({**row, **{k: Decimal(row[k]) for k in ("credit_total", "amount", "balance")}})
        if len(batch) == 50_000:
            with engine.begin() as conn:
                conn.execute(insert(loan), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(loan), batch)


COPY_COLUMNS = ("loan_no", "enterprise_id", "branch_id", "product_class", "credit_total", "amount", "balance",
                "start_date", "maturity_date", "classification", "written_off")


def build_postgres(engine, n_branches: int, n_loans: int, seed: int = 7) -> None:
    """The branches, then the loans by COPY into the bare table (its secondary indexes dropped first and
    built again after the load, as a bulk load does), then VACUUM ANALYZE (visibility map and statistics)."""
    booking, ent_ids = build_branches(engine, n_branches)
    loan = Loan.__table__
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for ix in loan.indexes:
            cur.execute(f'DROP INDEX IF EXISTS "{ix.name}"')
        cur.execute("ALTER TABLE loan DROP CONSTRAINT IF EXISTS loan_enterprise_id_fkey, "
                    "DROP CONSTRAINT IF EXISTS loan_branch_id_fkey")
        raw.commit()
        started = time.perf_counter()
        with cur.copy(f"COPY loan ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for row in loan_rows(n_loans, booking, ent_ids, seed):
                # Money is integer fen in the database.
                copy.write_row((row["loan_no"], row["enterprise_id"], row["branch_id"], row["product_class"],
                                row["credit_total"] * 100, row["amount"] * 100, row["balance"] * 100,
                                row["start_date"], row["maturity_date"], row["classification"], row["written_off"]))
        raw.commit()
        print(f"COPY of {n_loans:,} loans: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        from sqlalchemy.schema import CreateIndex

        for ix in loan.indexes:
            cur.execute(str(CreateIndex(ix).compile(dialect=engine.dialect)))
        cur.execute("ALTER TABLE loan ADD FOREIGN KEY (enterprise_id) REFERENCES enterprise (id), "
                    "ADD FOREIGN KEY (branch_id) REFERENCES branch (id)")
        raw.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE loan")
        print(f"{len(loan.indexes)} indexes, 2 foreign keys and VACUUM ANALYZE: {time.perf_counter() - started:.1f} s")
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--branches", type=int, default=2000)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="PostgreSQL: print EXPLAIN ANALYZE of both queries")
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep mianze_bench (drop it by hand)")
    parser.add_argument("--reuse", action="store_true", help="PostgreSQL: measure the mianze_bench kept before")
    args = parser.parse_args()
    if args.db == "postgres":
        return main_postgres(args)
    with sqlite_engine() as engine:
        started = time.perf_counter()
        build(engine, args.branches, args.loans)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        print(f"generated {args.branches} branches and {args.loans:,} loans in {time.perf_counter() - started:.1f} s")
        # The models carry the covering index ix_loan_tolerance, so SQLite reads the index in branch order
        # and never touches the table.
        measure(engine, "schema as is", args.repeat)


def measure(engine, label: str, repeat: int, db: str = "SQLite") -> float:
    timings, results = [], {}
    for _ in range(repeat):
        with Session(engine) as s:
            t0 = time.perf_counter()
            results = tolerance.all_branches(s, PERIOD)
            timings.append(time.perf_counter() - t0)
    within = sum(1 for r in results.values() if r.within)
    median = statistics.median(timings)
    goal = f" (goal <= {GOAL_SECONDS} s: {'met' if median <= GOAL_SECONDS else 'NOT met'})" if db == "SQLite" else ""
    print(f"{db} all_branches ({label:17s}): {len(results)} branches, {within} within tolerance; "
          f"median {median:.3f} s, best {min(timings):.3f} s over {repeat} runs{goal}")
    return median


@contextmanager
def bench_database(*, keep: bool = False, reuse: bool = False) -> Iterator:
    """An engine on the dedicated database `mianze_bench` (created afresh unless reused, dropped afterwards
    unless kept)."""
    server = make_engine(PG_BASE.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    if not reuse:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {BENCH_DB}")
            conn.exec_driver_sql(f"CREATE DATABASE {BENCH_DB}")
    engine = make_engine(PG_BASE.rsplit("/", 1)[0] + f"/{BENCH_DB}")
    try:
        if not reuse:
            SQLModel.metadata.create_all(engine)
            with unit_of_work(engine) as s:
                rulesets.ensure_default(s)
        yield engine
    finally:
        engine.dispose()
        if not keep:
            with server.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        server.dispose()


def explain(engine, statement: str, params) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement, printed."""
    with engine.connect() as conn:
        cur = conn.connection.driver_connection.cursor()
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
        print("\n".join(r[0] for r in cur.fetchall()))


def service_statement(engine) -> tuple[str, object]:
    """The aggregate statement all_branches sends (captured from one run), with its parameters."""
    from sqlalchemy import event

    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "GROUP BY" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as s:
            tolerance.all_branches(s, PERIOD)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen[0]


BARE = "SELECT branch_id, sum(balance) FROM loan GROUP BY branch_id"


def main_postgres(args) -> None:
    with bench_database(keep=args.keep, reuse=args.reuse) as engine:
        if not args.reuse:
            started = time.perf_counter()
            build_postgres(engine, args.branches, args.loans)
            print(f"generated {args.branches} branches and {args.loans:,} loans in "
                  f"{time.perf_counter() - started:.1f} s")
        # Alternately, so that both see the same load on a shared machine.
        bare, timings, results, n = [], [], {}, 0
        for _ in range(args.repeat):
            with engine.connect() as conn:
                t0 = time.perf_counter()
                n = len(conn.exec_driver_sql(BARE).all())
                bare.append(time.perf_counter() - t0)
            with Session(engine) as s:
                t0 = time.perf_counter()
                results = tolerance.all_branches(s, PERIOD)
                timings.append(time.perf_counter() - t0)
        floor, median = statistics.median(bare), statistics.median(timings)
        within = sum(1 for r in results.values() if r.within)
        print(f"PostgreSQL bare GROUP BY ({n} groups): median {floor:.3f} s, best {min(bare):.3f} s over "
              f"{args.repeat} runs")
        print(f"PostgreSQL all_branches: {len(results)} branches, {within} within tolerance; median {median:.3f} s, "
              f"best {min(timings):.3f} s over {args.repeat} runs")
        ratio = median / floor
        print(f"ratio to the bare GROUP BY: {ratio:.2f} x (medians; best to best {min(timings) / min(bare):.2f} x; "
              f"goal <= {GOAL_RATIO} x: {'met' if ratio <= GOAL_RATIO else 'NOT met'})")
        if args.explain:
            print("-- the bare GROUP BY")
            explain(engine, BARE, None)
            print("-- the tolerance's aggregate")
            explain(engine, *service_statement(engine))


if __name__ == "__main__":
    main()
