"""Benchmark (a script, not a test): .venv/bin/python bench/transitions.py [--cases N] [--db sqlite|postgres|both]

Audited transitions per second through the real service layer against the raw single-row commit rate of
the same database, measured alternately in the same run, printed as a ratio. Goal: ratio >= 0.7.

- audited transition: one unit of work that loads a registered case and its actor and calls
  `cases.withdraw` (guards evaluated from the case's snapshot, versioned UPDATE, audit event appended to the
  hash chain, commit);
- raw commit: one unit of work on the same engine that INSERTs one row into a scratch table and commits.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run from the repository root, not from bench/ (whose calendar.py would shadow the standard module).
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlmodel import Session

from bench.common import postgres_engine, postgres_reachable, sqlite_engine
from tests.factories import make_bank
from workflow.db import unit_of_work
from workflow.models import Case, User
from workflow.services import audit, cases

GOAL = 0.7
scratch = Table("bench_raw", MetaData(), Column("id", Integer, primary_key=True), Column("note", String(64)))


def _setup(engine, n: int):
    bank = make_bank(engine, n_loans=n, loans_per_enterprise=1)
    ids = []
    for loan_id in bank.loans:
        with unit_of_work(engine) as s:
            ids.append(cases.open_case(s, bank.user(s, "admin"), [loan_id]).id)
    scratch.create(engine)
    return bank, ids


def _raw(engine, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        with unit_of_work(engine) as s:
            s.connection().execute(insert(scratch).values(note=f"row {i}"))
    return time.perf_counter() - started


def _audited(engine, chair_id: int, case_ids: list[int]) -> float:
    started = time.perf_counter()
    for case_id in case_ids:
        with unit_of_work(engine) as s:
            cases.withdraw(s, s.get(Case, case_id), s.get(User, chair_id), "借款人已结清贷款")
    return time.perf_counter() - started


def run(name: str, engine_cm, n: int, rounds: int = 4) -> float:
    with engine_cm() as engine:
        bank, ids = _setup(engine, n)
        per_round = n // rounds
        raw_time = audited_time = 0.0
        _raw(engine, 20)  # warm-up (connections, statement caches)
        for r in range(rounds):
            raw_time += _raw(engine, per_round)
            audited_time += _audited(engine, bank.users["chair"], ids[r * per_round:(r + 1) * per_round])
        with Session(engine) as s:
            events = audit.verify(s)
        done = per_round * rounds
        raw_rate, audited_rate = done / raw_time, done / audited_time
        ratio = audited_rate / raw_rate
        print(f"{name:9s} raw commits {raw_rate:8.1f}/s   audited transitions {audited_rate:8.1f}/s   "
              f"ratio {ratio:.2f} (goal >= {GOAL})   [{done} each, chain of {events} events verifies]")
        return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    if args.db in ("sqlite", "both"):
        run("SQLite", sqlite_engine, args.cases)
    if args.db in ("postgres", "both"):
        if postgres_reachable():
            run("PostgreSQL", postgres_engine, args.cases)
        else:
            print("PostgreSQL  not reachable at 127.0.0.1:5432 — skipped")


if __name__ == "__main__":
    main()
