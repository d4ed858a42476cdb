"""Benchmark of the audit export and of the chain's verification, online and offline (a script, not a test):

    .venv/bin/python bench/export.py [--events 1000000] [--db URL] [--xlsx]

1. Generates N audit events with valid hashes (workflow.chain.link_hash, Core executemany) by six members of
   staff in a fresh database (SQLite in a temporary directory unless --db names a PostgreSQL URL with an empty
   schema).
2. The floor: a bare streaming fetch-and-write of the same rows (the driver's cursor, fetchmany, csv.writer or
   one json.dumps per row, no conversion), for CSV and for JSON Lines.
3. Exports them as JSON Lines and as CSV (and, with --xlsx, as a workbook), each in its own subprocess (the
   export service, streamed to a file: labels, names, local times). Goals: >= 0.5 x the floor of the same
   format, and peak RSS <= 300 MB (resource.getrusage of the subprocess), the same at 2 M events as at 1 M.
4. Verifies the chain in the database (services.audit.verify; goal <= 10 s per million events).
5. Verifies offline, each in a subprocess of its own with the standard library only: the exported JSON Lines
   (workflow.chain.verify_events over the file, line by line), and an evidence bundle of the same chain with
   workflow/verify.py (the verifier an auditor runs). Goal: peak RSS <= 300 MB.

Peak RSS is each subprocess's own high-water mark (VmHWM), and every step runs in a subprocess of a parent
that holds nothing.
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

FLOOR_SHARE, RSS_GOAL_MB, VERIFY_GOAL_S = 0.5, 300, 10.0
ACTORS = ("investigator", "member1", "member2", "chair", "auditor", "system")
NAMES = ("王伟", "李娜", "张敏", "刘洋", "陈静")
EVENTS = ("record_facts", "record_vote", "issue_letter", "assign_investigator", "start_publicity", "file_appeal")
COLUMNS = "seq, case_id, actor_id, actor, at, event, from_state, to_state, payload, prev_hash, hash"


def generate(url: str, n: int) -> float:
    """Insert the staff, n chained events (valid hashes) and the chain head; return seconds taken."""
    from sqlalchemy import insert
    from sqlmodel import SQLModel

    from workflow.chain import GENESIS, link_hash
    from workflow.db import make_engine
    from workflow.models import AuditEvent, AuditHead, Branch, User

    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    t0 = time.perf_counter()
    prev, batch = GENESIS, []
    table = AuditEvent.__table__
    with engine.begin() as conn:
        conn.execute(insert(Branch.__table__), [{"id": 1, "code": "HO", "name": "总行", "name_en": "Head office",
                                                 "level": 0, "parent_id": None, "path": "/1/", "active": True}])
        conn.execute(insert(User.__table__), [
            {"id": i + 1, "username": u, "name": NAMES[i], "employee_no": f"E{1001 + i}", "branch_id": 1,
             "roles": "", "password_hash": "", "locale": "zh", "notify_mail": True, "notify_webhook": True,
             "active": True, "session_epoch": 0} for i, u in enumerate(ACTORS[:5])])
        for seq in range(1, n + 1):
            case_id = 1 + seq // 40
            system = seq % 6 == 5
            ev = {"seq": seq, "case_id": case_id, "actor_id": None if system else 1 + seq % 6,
                  "actor": ACTORS[seq % 6],
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


def _peak_mb() -> float:
    """This process's peak resident set (VmHWM, Linux). Not ru_maxrss: Linux carries a parent's high-water
    mark over fork and exec into the child's ru_maxrss, so a child started by a process that once held 400 MB
    reports at least 400 MB whatever it does itself."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_floor(url: str, fmt: str, out: str) -> None:
    """The bare streaming fetch-and-write: the driver's cursor over the same rows, written with no conversion."""
    import csv

    from workflow.db import make_engine
    from workflow.models import AuditEvent

    engine = make_engine(url)
    t0, c0, rows = time.perf_counter(), _cpu(), 0
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            raw.driver_connection.execute("PRAGMA mmap_size=0")
            cur = raw.cursor()
        else:
            cur = raw.driver_connection.cursor(name="floor")  # psycopg: a server-side cursor
        cur.execute(f"SELECT {COLUMNS} FROM {AuditEvent.__tablename__} ORDER BY seq")
        names = [c.strip() for c in COLUMNS.split(",")]
        with open(out, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
            while part := cur.fetchmany(2000):
                if fmt == "csv":
                    writer.writerows(part)
                else:
                    fh.write("".join(dumps(dict(zip(names, row, strict=True))) + "\n" for row in part))
                rows += len(part)
        cur.close()
    finally:
        raw.close()
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "cpu": _cpu() - c0,
                      "bytes": os.path.getsize(out), "maxrss_mb": _peak_mb()}))


def child_export(url: str, fmt: str, out: str) -> None:
    from workflow.db import make_engine, read_session
    from workflow.services import export

    engine = make_engine(url)
    t0, c0 = time.perf_counter(), _cpu()
    rows = 0

    def count(n):
        nonlocal rows
        rows += n

    with read_session(engine) as s:
        if fmt == "xlsx":
            export.write_xlsx(out, [("audit", export.rows(s, "audit", export.ExportFilter()))], progress=count)
        else:
            with open(out, "wb") as fh:
                for chunk in export.chunks(fmt, "audit", export.rows(s, "audit", export.ExportFilter()),
                                           progress=count):
                    fh.write(chunk)
    seconds = time.perf_counter() - t0
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": _cpu() - c0, "bytes": os.path.getsize(out),
                      "maxrss_mb": _peak_mb()}))


def child_verify(url: str, _path: str) -> None:
    from workflow.db import make_engine, read_session
    from workflow.services import audit

    engine = make_engine(url)
    t0, c0 = time.perf_counter(), _cpu()
    with read_session(engine) as s:
        n = audit.verify(s)
    print(json.dumps({"events": n, "seconds": time.perf_counter() - t0, "cpu": _cpu() - c0,
                      "maxrss_mb": _peak_mb()}))


def child_bundle(url: str, out: str) -> None:
    """An evidence bundle of the whole chain (CSV exports, the chain file, the manifest) for the offline check."""
    from workflow.db import make_engine
    from workflow.services import bundle, export

    engine = make_engine(url)
    t0 = time.perf_counter()
    with bundle.snapshot_session(engine) as s:
        bundle.write_bundle(s, None, out, export.ExportFilter(), evidence_dir=str(Path(out).parent / "evidence"),
                            formats=("csv",), name=Path(out).name)
    print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": os.path.getsize(out), "maxrss_mb": _peak_mb()}))


def _stdlib_module(name: str, path: Path):
    """A module of workflow/ loaded by its path, as an auditor runs it: the standard library only."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def child_offline_jsonl(_url: str, jsonl: str) -> None:
    chain = _stdlib_module("_bench_chain", ROOT / "workflow" / "chain.py")
    t0 = time.perf_counter()
    with open(jsonl, encoding="utf-8") as fh:
        n = chain.verify_events(json.loads(line) for line in fh)
    print(json.dumps({"events": n, "seconds": time.perf_counter() - t0, "maxrss_mb": _peak_mb(),
                      "stdlib_only": not any(m.split(".")[0] in ("sqlalchemy", "flask", "workflow")
                                             for m in sys.modules)}))


def child_offline_bundle(_url: str, zipped: str) -> None:
    verify = _stdlib_module("_bench_verify", ROOT / "workflow" / "verify.py")
    t0 = time.perf_counter()
    report = verify.verify(zipped)
    print(json.dumps({"events": report.events, "ok": report.ok, "problems": report.problems[:3],
                      "seconds": time.perf_counter() - t0, "maxrss_mb": _peak_mb(),
                      "stdlib_only": not any(m.split(".")[0] in ("sqlalchemy", "flask", "workflow")
                                             for m in sys.modules)}))


def child_generate(url: str, n: str) -> None:
    print(json.dumps({"seconds": generate(url, int(n))}))


CHILDREN = {"generate": child_generate, "verify": child_verify, "bundle": child_bundle, "offline-jsonl": child_offline_jsonl,
            "offline-bundle": child_offline_bundle}


def run_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--xlsx", action="store_true", help="also export the workbook (slow: openpyxl writes ~0.1 M cells/s)")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "URL", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, url, path = args.child
        if mode in CHILDREN:
            CHILDREN[mode](url, path)
        elif mode.startswith("floor-"):
            child_floor(url, mode.removeprefix("floor-"), path)
        else:
            child_export(url, mode, path)
        return 0

    with tempfile.TemporaryDirectory(prefix="mianze-bench-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are wall-clock; "
              "a busy machine inflates them)")
        print(f"database: {url.split('?')[0]}; generating {args.events:,} chained audit events ...", flush=True)
        # in a child: the parent stays small, so nothing it held shows in the children's figures
        print(f"  generated in {run_child('generate', url, str(args.events))['seconds']:.1f} s", flush=True)
        ok = True
        for fmt in ("jsonl", "csv"):
            floor = run_child(f"floor-{fmt}", url, str(Path(tmp) / f"floor.{fmt}"))
            os.remove(Path(tmp) / f"floor.{fmt}")
            floor_rate = floor["rows"] / floor["seconds"]
            r = run_child(fmt, url, str(Path(tmp) / f"audit.{fmt}"))
            rate = r["rows"] / r["seconds"]
            good = (rate >= FLOOR_SHARE * floor_rate and r["maxrss_mb"] <= RSS_GOAL_MB
                    and r["rows"] == floor["rows"] == args.events)
            ok &= good
            print(f"floor  {fmt:5}: bare fetch-and-write {floor['rows']:,} rows in {floor['seconds']:.1f} s = "
                  f"{floor_rate:,.0f} rows/s; CPU {floor['cpu']:.1f} s; peak RSS {floor['maxrss_mb']:.0f} MB; "
                  f"{floor['bytes'] / 1e6:.0f} MB")
            print(f"export {fmt:5}: {r['rows']:,} rows in {r['seconds']:.1f} s = {rate:,.0f} rows/s = "
                  f"{rate / floor_rate:.2f} x the floor (goal >= {FLOOR_SHARE}; by CPU time "
                  f"{floor['cpu'] / r['cpu']:.2f} x); peak RSS {r['maxrss_mb']:.0f} MB (goal <= {RSS_GOAL_MB}); "
                  f"{r['bytes'] / 1e6:.0f} MB written; CPU {r['cpu']:.1f} s  {'OK' if good else 'MISSED'}", flush=True)
            if fmt == "csv":
                os.remove(Path(tmp) / "audit.csv")
        if args.xlsx:
            r = run_child("xlsx", url, str(Path(tmp) / "audit.xlsx"))
            good = r["maxrss_mb"] <= RSS_GOAL_MB and r["rows"] == args.events
            ok &= good
            print(f"export xlsx : {r['rows']:,} rows in {r['seconds']:.1f} s = {r['rows'] / r['seconds']:,.0f} rows/s "
                  f"(openpyxl write-only); peak RSS {r['maxrss_mb']:.0f} MB (goal <= {RSS_GOAL_MB}); "
                  f"{r['bytes'] / 1e6:.0f} MB written  {'OK' if good else 'MISSED'}", flush=True)
            os.remove(Path(tmp) / "audit.xlsx")
        v = run_child("verify", url, "-")
        good = v["seconds"] <= VERIFY_GOAL_S * args.events / 1_000_000 and v["events"] == args.events
        ok &= good
        print(f"verify chain (database, services.audit.verify): {v['events']:,} events in {v['seconds']:.1f} s "
              f"(goal <= {VERIFY_GOAL_S:.0f} s per million); CPU {v['cpu']:.1f} s; peak RSS {v['maxrss_mb']:.0f} MB  "
              f"{'OK' if good else 'MISSED'}", flush=True)
        o = run_child("offline-jsonl", url, str(Path(tmp) / "audit.jsonl"))
        good = o["maxrss_mb"] <= RSS_GOAL_MB and o["events"] == args.events and o["stdlib_only"]
        ok &= good
        print(f"verify offline (exported JSON Lines, workflow/chain.py, standard library only): {o['events']:,} "
              f"events in {o['seconds']:.1f} s; peak RSS {o['maxrss_mb']:.0f} MB (goal <= {RSS_GOAL_MB})  "
              f"{'OK' if good else 'MISSED'}", flush=True)
        os.remove(Path(tmp) / "audit.jsonl")
        b = run_child("bundle", url, str(Path(tmp) / "bundle.zip"))
        print(f"evidence bundle of the chain (CSV exports + audit/events.jsonl): {b['seconds']:.1f} s, "
              f"{b['bytes'] / 1e6:.0f} MB; peak RSS {b['maxrss_mb']:.0f} MB", flush=True)
        o = run_child("offline-bundle", url, str(Path(tmp) / "bundle.zip"))
        good = o["ok"] and o["maxrss_mb"] <= RSS_GOAL_MB and o["events"] == args.events and o["stdlib_only"]
        ok &= good
        print(f"verify offline (the bundle, workflow/verify.py, standard library only): {o['events']:,} events in "
              f"{o['seconds']:.1f} s; {'intact' if o['ok'] else o['problems']}; peak RSS {o['maxrss_mb']:.0f} MB "
              f"(goal <= {RSS_GOAL_MB})  {'OK' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
