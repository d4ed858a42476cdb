"""Benchmark of the audit export and the chain verification (a script, not a test):

    .venv/bin/python bench/export.py [--events 1000000] [--db URL]

1. Generates N audit events with valid hashes (workflow.chain.link_hash, Core executemany) in a fresh
   database (SQLite in a temporary directory unless --db names a PostgreSQL URL with an empty schema).
2. Exports them as JSON Lines and as CSV, each in its own subprocess (the export service, streamed to a file);
   goal >= 50,000 rows/s and peak RSS <= 300 MB (resource.getrusage of the subprocess).
3. Verifies the chain in the database (services.audit.verify); goal <= 10 s for 1,000,000 events.
   Also verifies the exported JSON Lines offline (workflow.chain.verify_events), for information.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds calendar.py, which would shadow the standard library's calendar module: import from the root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

ROWS_GOAL, RSS_GOAL_MB, VERIFY_GOAL_S = 50_000, 300, 10.0
ACTORS = ("investigator", "member1", "member2", "chair", "auditor", "system")
EVENTS = ("record_facts", "record_vote", "issue_letter", "assign_investigator", "start_publicity", "file_appeal")


def generate(url: str, n: int) -> float:
    """Insert n chained events (valid hashes) and the chain head; return seconds taken."""
    from sqlalchemy import insert
    from sqlmodel import SQLModel

    from workflow.chain import GENESIS, link_hash
    from workflow.db import make_engine
    from workflow.models import AuditEvent, AuditHead

    engine = make_engine(url)
    SQLModel.metadata.create_all(engine, tables=[AuditEvent.__table__, AuditHead.__table__])
    t0 = time.perf_counter()
    prev, batch = GENESIS, []
    table = AuditEvent.__table__
    with engine.begin() as conn:
        for seq in range(1, n + 1):
            case_id = 1 + seq // 40
            ev = {"seq": seq, "case_id": case_id, "actor_id": 1 + seq % 6, "actor": ACTORS[seq % 6],
                  "at": f"2026-{1 + seq % 12:02d}-{1 + seq % 28:02d}T08:{seq % 60:02d}:{seq % 60:02d}.{seq % 999999:06d}Z",
                  "event": EVENTS[seq % 6], "from_state": "investigating", "to_state": "investigating",
                  "payload": {"respondent_id": seq % 97, "stage": "pre_loan", "reason": "贷前调查材料核实",
                              "amount": f"{seq % 100000}.50"},
                  "prev_hash": prev}
            ev["hash"] = prev = link_hash(ev)
            batch.append(ev)
            if len(batch) == 20_000:
                conn.execute(insert(table), batch)
                batch = []
        if batch:
            conn.execute(insert(table), batch)
        conn.execute(insert(AuditHead.__table__), [{"id": 1, "seq": n, "hash": prev}])
    engine.dispose()
    return time.perf_counter() - t0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_export(url: str, fmt: str, out: str) -> None:
    from workflow.db import make_engine, read_session
    from workflow.services import export

    engine = make_engine(url)
    t0, c0 = time.perf_counter(), _cpu()
    rows = 0

    def count(n):
        nonlocal rows
        rows += n

    with read_session(engine) as s, open(out, "wb") as fh:
        for chunk in export.chunks(fmt, "audit", export.rows(s, "audit", export.ExportFilter()), progress=count):
            fh.write(chunk)
    seconds = time.perf_counter() - t0
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": _cpu() - c0, "bytes": os.path.getsize(out),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def child_verify(url: str, jsonl: str) -> None:
    from workflow.chain import verify_events
    from workflow.db import make_engine, read_session
    from workflow.services import audit

    engine = make_engine(url)
    t0, c0 = time.perf_counter(), _cpu()
    with read_session(engine) as s:
        n = audit.verify(s)
    db_seconds, db_cpu = time.perf_counter() - t0, _cpu() - c0
    t0 = time.perf_counter()
    with open(jsonl, encoding="utf-8") as fh:
        m = verify_events(json.loads(line) for line in fh)
    print(json.dumps({"events": n, "seconds": db_seconds, "cpu": db_cpu, "offline_events": m,
                      "offline_seconds": time.perf_counter() - t0,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True,
                            cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "URL", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, url, path = args.child
        (child_verify if mode == "verify" else lambda u, p: child_export(u, mode, p))(url, path)
        return 0

    with tempfile.TemporaryDirectory(prefix="mianze-bench-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are wall-clock; "
              "a busy machine inflates them)")
        print(f"database: {url.split('?')[0]}; generating {args.events:,} chained audit events ...", flush=True)
        print(f"  generated in {generate(url, args.events):.1f} s", flush=True)
        ok = True
        for fmt in ("jsonl", "csv"):
            r = run_child(fmt, url, str(Path(tmp) / f"audit.{fmt}"))
            rate = r["rows"] / r["seconds"]
            good = rate >= ROWS_GOAL and r["maxrss_mb"] <= RSS_GOAL_MB and r["rows"] == args.events
            ok &= good
            print(f"export {fmt:5}: {r['rows']:,} rows in {r['seconds']:.1f} s = {rate:,.0f} rows/s "
                  f"(goal >= {ROWS_GOAL:,}); peak RSS {r['maxrss_mb']:.0f} MB (goal <= {RSS_GOAL_MB}); "
                  f"{r['bytes'] / 1e6:.0f} MB written; CPU {r['cpu']:.1f} s = {r['rows'] / r['cpu']:,.0f} rows per CPU-second  "
                  f"{'OK' if good else 'MISSED'}")
        v = run_child("verify", url, str(Path(tmp) / "audit.jsonl"))
        good = v["seconds"] <= VERIFY_GOAL_S * args.events / 1_000_000 and v["events"] == args.events
        ok &= good
        print(f"verify chain (database, services.audit.verify): {v['events']:,} events in {v['seconds']:.1f} s "
              f"(goal <= {VERIFY_GOAL_S:.0f} s per million); CPU {v['cpu']:.1f} s  {'OK' if good else 'MISSED'}")
        print(f"verify chain (exported JSON Lines, offline): {v['offline_events']:,} events in "
              f"{v['offline_seconds']:.1f} s; peak RSS {v['maxrss_mb']:.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
