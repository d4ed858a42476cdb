"""Benchmark (a script, not a test): .venv/bin/python bench/transitions.py [--cases N] [--db sqlite|postgres|both]

Audited transitions per second through the real service layer against the raw single-row commit rate of
the same database, measured alternately in the same run, printed as a ratio. Goal: ratio >= 0.7.

- audited transition: one unit of work that loads a registered case and its actor and calls
  `cases.withdraw` (guards evaluated from the case's snapshot, versioned UPDATE, audit event appended to the
  hash chain, commit);
- raw commit: one unit of work on the same engine that INSERTs one row into a scratch table and commits;
- bare floor: the same statements as an audited transition (load the case and the actor, versioned UPDATE,
  chain head read under lock, event INSERT, head UPDATE, commit), on the same tables, with the same link
  hash, written straight on the DB-API driver: no ORM, no SQLAlchemy, no guards, no state machine. Its
  ratio to the bare driver's own single-row commit is the most any implementation of an audited transition
  on this database could reach here; its events join the same chain, which is verified at the end.
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
from workflow.chain import canonical, link_hash
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


def _bare(engine, chair_id: int, case_ids: list[int] | None, n: int) -> float:
    """Seconds for n bare raw commits (case_ids None) or n bare audited transitions, on the DB-API driver."""
    dbapi = engine.raw_connection()
    try:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            dbapi.driver_connection.isolation_level = None  # explicit BEGIN IMMEDIATE / COMMIT below
        mark, lock = ("?", "") if sqlite else ("%s", " FOR UPDATE")
        cur = dbapi.cursor()

        def begin():
            if sqlite:
                cur.execute("BEGIN IMMEDIATE")

        def commit():
            cur.execute("COMMIT") if sqlite else dbapi.commit()

        started = time.perf_counter()
        if case_ids is None:
            for i in range(n):
                begin()
                cur.execute(f"INSERT INTO bench_raw (note) VALUES ({mark})", (f"bare {i}",))
                commit()
            return time.perf_counter() - started
        for case_id in case_ids:
            begin()
            cur.execute(f"SELECT * FROM case_file WHERE id = {mark}", (case_id,))
            case = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
            cur.execute(f"SELECT * FROM app_user WHERE id = {mark}", (chair_id,))
            actor = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
            now = audit.now_iso()
            cur.execute(f"UPDATE case_file SET state = {mark}, version = {mark}, due_date = NULL, updated_at = {mark} "
                        f"WHERE id = {mark} AND version = {mark}",
                        ("withdrawn", case["version"] + 1, now.replace("T", " ").rstrip("Z"), case_id, case["version"]))
            assert cur.rowcount == 1
            cur.execute(f"SELECT seq, hash FROM audithead WHERE id = 1{lock}")
            seq, prev = cur.fetchone()
            fields = {"seq": seq + 1, "case_id": case_id, "actor_id": actor["id"], "actor": actor["username"],
                      "at": now, "event": "withdraw", "from_state": case["state"], "to_state": "withdrawn",
                      "payload": {"reason": "借款人已结清贷款"}, "prev_hash": prev}
            fields["hash"] = link_hash(fields)
            cur.execute("INSERT INTO auditevent (seq, case_id, actor_id, actor, at, event, from_state, to_state, "
                        f"payload, prev_hash, hash) VALUES ({', '.join([mark] * 11)})",
                        (*(fields[k] for k in ("seq", "case_id", "actor_id", "actor", "at", "event", "from_state",
                                               "to_state")), canonical(fields["payload"]).decode("utf-8"), prev, fields["hash"]))
            cur.execute(f"UPDATE audithead SET seq = {mark}, hash = {mark} WHERE id = 1", (fields["seq"], fields["hash"]))
            commit()
        return time.perf_counter() - started
    finally:
        dbapi.close()


def run(name: str, engine_cm, n: int, rounds: int = 4) -> float:
    with engine_cm() as engine:
        bank, all_ids = _setup(engine, 2 * n)
        ids, bare_ids = all_ids[:n], all_ids[n:]
        per_round = n // rounds
        raw_time = audited_time = bare_raw_time = bare_time = 0.0
        _raw(engine, 20)  # warm-up (connections, statement caches)
        _bare(engine, 0, None, 20)
        for r in range(rounds):
            part = slice(r * per_round, (r + 1) * per_round)
            raw_time += _raw(engine, per_round)
            audited_time += _audited(engine, bank.users["chair"], ids[part])
            bare_raw_time += _bare(engine, 0, None, per_round)
            bare_time += _bare(engine, bank.users["chair"], bare_ids[part], per_round)
        with Session(engine) as s:
            events = audit.verify(s)
        done = per_round * rounds
        raw_rate, audited_rate = done / raw_time, done / audited_time
        ratio = audited_rate / raw_rate
        print(f"{name:10s} raw commits {raw_rate:7.1f}/s   audited transitions {audited_rate:7.1f}/s   "
              f"ratio {ratio:.2f} (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'})   "
              f"[{done} each, chain of {events} events verifies]")
        print(f"{'':10s} bare driver: raw commits {done / bare_raw_time:7.1f}/s   same statements "
              f"{done / bare_time:7.1f}/s   floor ratio {bare_raw_time / bare_time:.2f}")
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
