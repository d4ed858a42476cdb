"""Benchmark (a script, not a test): .venv/bin/python bench/tolerance.py [--branches N] [--loans N]

NPL tolerance of every branch with its whole subtree (services.tolerance.all_branches) for 2,000 branches
over 1,000,000 loans on SQLite (a file in WAL mode). Goal: <= 1 s. The data is generated with Core
executemany bulk inserts (not timed); the tolerance is then computed several times and the median printed.
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

from sqlalchemy import insert, select, update
from sqlmodel import Session

from bench.common import sqlite_engine
from workflow.models import Branch, Enterprise, Loan
from workflow.services import tolerance

GOAL_SECONDS = 1.0
PERIOD = date(2025, 12, 31)


def build(engine, n_branches: int, n_loans: int, seed: int = 7) -> None:
    """Head office, tier-1 branches, sub-branches and outlets (n_branches in all), and n_loans loans."""
    rng = random.Random(seed)
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
    booking = [b[0] for b in leaves + subs]
    loan = Loan.__table__
    start = PERIOD - timedelta(days=400)
    batch = 50_000
    for first in range(0, n_loans, batch):
        rows = []
        for i in range(first, min(first + batch, n_loans)):
            sme = rng.random() < 0.6
            npl = rng.random() < (0.05 if sme else 0.02)
            amount = rng.randrange(10, 1000) * 10_000
            rows.append({"loan_no": f"L{i:08d}", "enterprise_id": rng.choice(ent_ids), "branch_id": rng.choice(booking),
                         "product_class": "inclusive_sme" if sme else "corporate",
                         "credit_total": Decimal(amount), "amount": Decimal(amount),
                         "balance": Decimal(amount * rng.randint(30, 100) // 100),
                         "start_date": start + timedelta(days=rng.randrange(500)), "maturity_date": PERIOD,
                         "classification": rng.choice(("substandard", "doubtful", "loss")) if npl else "normal",
                         "written_off": npl and rng.random() < 0.05})
        with engine.begin() as conn:
            conn.execute(insert(loan), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=2000)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with sqlite_engine() as engine:
        started = time.perf_counter()
        build(engine, args.branches, args.loans)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        print(f"generated {args.branches} branches and {args.loans:,} loans in {time.perf_counter() - started:.1f} s")
        # The models carry the covering index ix_loan_tolerance, so SQLite reads the index in branch order
        # and never touches the table.
        measure(engine, "schema as is", args.repeat)


def measure(engine, label: str, repeat: int) -> float:
    timings, results = [], {}
    for _ in range(repeat):
        with Session(engine) as s:
            t0 = time.perf_counter()
            results = tolerance.all_branches(s, PERIOD)
            timings.append(time.perf_counter() - t0)
    within = sum(1 for r in results.values() if r.within)
    median = statistics.median(timings)
    print(f"SQLite all_branches ({label:17s}): {len(results)} branches, {within} within tolerance; "
          f"median {median:.3f} s, best {min(timings):.3f} s over {repeat} runs "
          f"(goal <= {GOAL_SECONDS} s: {'met' if median <= GOAL_SECONDS else 'NOT met'})")
    return median


if __name__ == "__main__":
    main()
