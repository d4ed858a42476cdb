"""Page latency benchmark (not a test): the inbox and the case page on a large SQLite database.

Builds (or reuses) a database with 100,000 cases and 1,000,000 audit events by fast Core bulk inserts (then
ANALYZE, as the demo load and imports do), serves the app as in production (gunicorn, one stock gthread
worker process per CPU, 4 threads each) on 127.0.0.1, signs in staff of several roles and measures
concurrent requests at several concurrency levels. The load generator shares the machine's CPUs with the
server, so it is kept light: each client is a thread with a libcurl (pycurl) handle and kept-alive
connection per person it acts for, like browser tabs, and libcurl times each request.

A database given with --db is reused as it is (migrated to the current schema, then ANALYZE), so one build
serves many runs; --clients runs only the levels named.

    .venv/bin/python bench/pages.py [--cases 100000] [--events 1000000] [--requests 400] [--clients 2,4,8]
                                    [--worker-class gthread|sync] [--threads 4] [--keep-alive 2]
                                    [--server-workers N] [--db bench/out/pages.sqlite3] [--rebuild]

Goal: p95 <= 50 ms for both pages.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ would come first on sys.path, and bench/calendar.py would shadow the standard
# library's calendar module (imported by http and email): put the repository root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402

import pycurl  # noqa: E402
from sqlalchemy import func, insert, inspect, select  # noqa: E402

from workflow.db import analyze, make_engine, unit_of_work  # noqa: E402
from workflow.migrate import upgrade  # noqa: E402
from workflow.models import (  # noqa: E402
    AuditEvent,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Loan,
    LoanStage,
    Respondent,
    User,
)
from workflow.services import accounts, rulesets  # noqa: E402

PASSWORD = "Bench-2025-pass"
STATES = ["registered", "investigating", "under_review", "determined", "in_publicity", "appeal_window",
          "appeal_review", "final", "referred", "closed", "withdrawn"]
CHUNK = 20_000
GOAL_MS = 50
WORKER_CLASSES = {"gthread": "gthread", "sync": "sync"}
DECIDED_STATES = ("determined", "in_publicity", "appeal_window", "appeal_review", "final", "referred", "closed")


def _chunks(rows, size=CHUNK):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def build(engine, n_cases: int, n_events: int, seed: int = 7) -> None:
    """Fill an empty database: branches, staff, enterprises, loans with stages, cases, respondents, events."""
    rnd = random.Random(seed)
    upgrade(engine.url.render_as_string(hide_password=False))  # the migrated schema, as in production
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
        rs_id = rulesets.version_in_force(s, date.today()).id
    with engine.begin() as conn:
        conn.execute(insert(Branch.__table__), [{"id": 1, "code": "HO", "name": "总行", "name_en": "Head office",
                                                 "level": 0, "parent_id": None, "path": "/1/", "active": True}])
        branches, bid = [], 2
        tier1 = []
        for t in range(10):
            tid = bid
            bid += 1
            branches.append({"id": tid, "code": f"T{t:02d}", "name": f"第{t + 1}分行", "name_en": f"Branch {t + 1}",
                             "level": 1, "parent_id": 1, "path": f"/1/{tid}/", "active": True})
            tier1.append(tid)
            for b in range(5):
                branches.append({"id": bid, "code": f"T{t:02d}S{b}", "name": f"第{t + 1}分行第{b + 1}支行",
                                 "name_en": f"Sub-branch {t + 1}.{b + 1}", "level": 2, "parent_id": tid,
                                 "path": f"/1/{tid}/{bid}/", "active": True})
                bid += 1
        conn.execute(insert(Branch.__table__), branches)
        digest = accounts.hash_password(PASSWORD)
        users, uid = [], 1
        officers_of: dict[int, list[int]] = {}
        investigators_of: dict[int, list[int]] = {}
        for t in tier1:
            for role, count in (("committee_chair", 1), ("committee_member", 6), ("investigator", 4),
                                ("credit_officer", 40)):
                for _ in range(count):
                    users.append({"id": uid, "username": f"u{uid}", "name": f"员工{uid}", "employee_no": f"E{uid:06d}",
                                  "branch_id": t, "roles": role, "password_hash": digest, "locale": "zh",
                                  "active": True, "created_at": datetime.now(UTC)})
                    if role == "credit_officer":
                        officers_of.setdefault(t, []).append(uid)
                    if role == "investigator":
                        investigators_of.setdefault(t, []).append(uid)
                    uid += 1
        for role in ("auditor", "admin", "appeal_reviewer"):
            users.append({"id": uid, "username": role, "name": role, "employee_no": f"E{uid:06d}", "branch_id": 1,
                          "roles": role, "password_hash": digest, "locale": "zh", "active": True,
                          "created_at": datetime.now(UTC)})
            uid += 1
        conn.execute(insert(User.__table__), users)
        chair_of = {t: next(u["id"] for u in users if u["branch_id"] == t and u["roles"] == "committee_chair")
                    for t in tier1}
        now = datetime.now(UTC)
        for part in range(0, n_cases, CHUNK):
            ids = range(part + 1, min(n_cases, part + CHUNK) + 1)
            ents, loans, cases, links, stages, resp = [], [], [], [], [], []
            for i in ids:
                t = tier1[i % len(tier1)]
                officer, reviewer = rnd.sample(officers_of[t], 2)
                state = STATES[rnd.randrange(len(STATES))]
                opened = now - timedelta(days=rnd.randrange(700), minutes=rnd.randrange(1440))
                ents.append({"id": i, "name": f"企业{i:06d}有限公司", "uscc": f"91{i:016d}", "kind": "small",
                             "owner_name": "", "industry": ""})
                loans.append({"id": i, "loan_no": f"L{i:08d}", "enterprise_id": i, "branch_id": t + 1,
                              "product_class": "inclusive_sme", "credit_total": 300000000, "amount": 100000000,
                              "balance": 80000050, "start_date": date(2024, 1, 1), "maturity_date": date(2025, 1, 1),
                              "classification": "substandard", "written_off": False})
                cases.append({"id": i, "number": f"MZ2025-B-{i:07d}", "branch_id": t, "enterprise_id": i,
                              "state": state, "version": 1, "opened_at": opened, "opened_by_id": chair_of[t],
                              "rule_set_version_id": rs_id,
                              "investigator_id": None if state == "registered" else rnd.choice(investigators_of[t]),
                              "legal_hold": False,
                              "batch_report": False, "tolerance": None,
                              "due_date": (opened + timedelta(days=rnd.randrange(10, 60))).date()
                              if state not in ("final", "referred", "closed", "withdrawn") else None,
                              "updated_at": opened})
                links.append({"case_id": i, "loan_id": i, "loan_no": f"L{i:08d}"})
                for stage, who in (("pre_loan", officer), ("review", reviewer)):
                    stages.append({"loan_id": i, "stage": stage, "user_id": who, "performed_on": date(2024, 1, 5)})
                decided = state in DECIDED_STATES
                for who in (officer, reviewer):
                    outcome = rnd.choices(("exempt", "reduced", "liable"), weights=(70, 20, 10))[0]
                    resp.append({"case_id": i, "case_branch_id": t, "user_id": who, "liability_kind": "diligence",
                                 "recommended_outcome": outcome, "decided_outcome": outcome if decided else None,
                                 "final_outcome": outcome if state in ("final", "referred", "closed") else None})
            for table, rows in ((Enterprise, ents), (Loan, loans), (Case, cases), (CaseLoan, links),
                                (LoanStage, stages), (Respondent, resp)):
                conn.execute(insert(table.__table__), rows)
        per_case = max(1, n_events // n_cases)
        seq = conn.execute(select(func.coalesce(func.max(AuditEvent.__table__.c.seq), 0))).scalar()
        batch = []
        for i in range(1, n_cases + 1):
            for k in range(per_case):
                seq += 1
                batch.append({"seq": seq, "case_id": i, "actor_id": None, "actor": "bench",
                              "at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event": "record_facts" if k else "open_case",
                              "from_state": None, "to_state": None, "payload": {"n": k},
                              "prev_hash": "0" * 64, "hash": f"{seq:064x}"})
            if len(batch) >= CHUNK:
                conn.execute(insert(AuditEvent.__table__), batch)
                batch = []
        if batch:
            conn.execute(insert(AuditEvent.__table__), batch)
    analyze(engine)  # as `flask db upgrade`, the demo load and bulk imports do
    engine.dispose()


class Browser:
    """A member of staff signed in through the sign-in form; `cookie` is what their browser then sends."""

    def __init__(self, base: str, username: str):
        self.host, self.port = urllib.parse.urlsplit(base)[1].split(":")
        self.cookies: dict[str, str] = {}
        html = self._send("GET", "/login")[2].decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        data = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": token})
        status, headers, _ = self._send("POST", "/login", data)
        assert status == 302 and "/inbox" in headers.get("Location", ""), f"sign-in of {username} failed"

    @property
    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def _send(self, method: str, path: str, body: str | None = None):
        headers = {"Cookie": self.cookie} if self.cookies else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, cookie_value = value.split(";", 1)[0].partition("=")
            self.cookies[name] = cookie_value
        return response.status, response.headers, data


class Tabs:
    """Clients as browser tabs: each load-generator thread has a libcurl handle and kept-alive connection
    per person it acts for (people have browsers of their own), opened on their first request.

    libcurl runs a request with the interpreter lock released and times it itself (from sending the request
    to the last byte of the response); it costs the CPUs shared with the server less than http.client
    (0.15 against 0.22 ms per request, measured on a trivial app)."""

    def __init__(self, base: str):
        self.base, self._local, self._handles = base, threading.local(), []
        self.connects: list[int] = []  # per request: the connections libcurl opened for it (0 when kept alive)
        self._sink = open(os.devnull, "wb")

    def get(self, cookie: str, path: str) -> float:
        handles = self._local.__dict__.setdefault("handles", {})  # one per person: each has their own browser
        handle = handles.get(cookie)
        if handle is None:
            handle = handles[cookie] = pycurl.Curl()
            handle.setopt(pycurl.NOSIGNAL, 1)
            handle.setopt(pycurl.TCP_NODELAY, 1)
            handle.setopt(pycurl.TIMEOUT, 120)
            handle.setopt(pycurl.WRITEDATA, self._sink)
            self._handles.append(handle)
        handle.setopt(pycurl.URL, self.base + path)
        handle.setopt(pycurl.HTTPHEADER, [f"Cookie: {cookie}"])
        handle.perform()
        status = handle.getinfo(pycurl.RESPONSE_CODE)
        assert status == 200, (path, status)
        self.connects.append(handle.getinfo(pycurl.NUM_CONNECTS))
        return handle.getinfo(pycurl.TOTAL_TIME)

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._sink.close()


def connections_per_worker(server_pid: int, port: int) -> list[int]:
    """How many of the clients' connections each worker process of the server holds, most first (Linux).

    A kept-alive connection stays with the worker that accepted it, and gunicorn's workers accept
    greedily, so an uneven split (say 6 + 2) makes one worker serve most clients while the other idles:
    printed with the figures, it explains much of their spread from run to run.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
                inodes.add(fields[9])
    try:
        children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    except OSError:  # a kernel without the children list
        return []
    counts = []
    for child in children:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir()]
        except OSError:
            continue
        counts.append(sum(link[8:-1] in inodes for link in links if link.startswith("socket:[")))
    return sorted(counts, reverse=True)


def _calibration_ms() -> float:
    """How fast this machine runs plain Python now: the best of 3 runs of a fixed 3-million-step loop.

    Printed before and after the measurements: on a shared VM the speed can change by half within minutes,
    and this tells a slow run from slow code.
    """
    best = float("inf")
    for _ in range(3):
        start, total = time.perf_counter(), 0
        for i in range(3_000_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=400, help="requests per page kind and concurrency level")
    ap.add_argument("--clients", default="2,4,8",
                    help="concurrency levels to measure, comma-separated (default 2,4,8)")
    ap.add_argument("--server-workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="gunicorn worker processes (default: one per CPU, as docs/deployment.md advises)")
    ap.add_argument("--worker-class", default="gthread", choices=tuple(WORKER_CLASSES),
                    help="gthread: gunicorn's threaded worker, as served in production (default); "
                         "sync: one request at a time per process")
    ap.add_argument("--threads", type=int, default=4, help="threads per gthread worker process (default 4)")
    ap.add_argument("--keep-alive", type=int, default=2,
                    help="seconds the server keeps an idle connection open (gunicorn's default 2; 0 closes "
                         "each connection after its response, as behind a proxy without upstream keep-alive)")
    ap.add_argument("--db", default=str(ROOT / "bench" / "out" / "pages.sqlite3"))
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    if args.rebuild and db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    fresh = not db.exists() or db.stat().st_size == 0
    if not fresh:
        with engine.connect() as conn:
            fresh = "case_file" not in inspect(conn).get_table_names() or \
                conn.execute(select(func.count()).select_from(Case.__table__)).scalar() == 0
    if fresh:
        t0 = time.perf_counter()
        build(engine, args.cases, args.events)
        print(f"built {args.cases:,} cases and {args.events:,} audit events in {time.perf_counter() - t0:.1f} s")
    else:
        upgrade(url)  # a database built by an older version of this script gets the current indexes
        analyze(engine)
    with engine.connect() as conn:
        n_cases = conn.execute(select(func.count()).select_from(Case.__table__)).scalar()
        n_events = conn.execute(select(func.count()).select_from(AuditEvent.__table__)).scalar()
        chair = conn.execute(select(User.username).where(User.roles == "committee_chair")).first()[0]
        member = conn.execute(select(User.username).where(User.roles == "committee_member")).first()[0]
        officer = conn.execute(select(User.username).where(User.roles == "credit_officer")).first()[0]
    engine.dispose()
    print(f"database: {n_cases:,} cases, {n_events:,} audit events ({db})")

    # The server runs as in production (docs/deployment.md): gunicorn, one worker process per CPU, threads
    # within each. The load generator below runs in this process, on the same CPUs.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(args.server_workers), "--worker-class",
         WORKER_CLASSES[args.worker_class],
         "--threads", str(args.threads), "--keep-alive", str(args.keep_alive), "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--log-level", "warning",
         "bench.pages:bench_app()"],
        env={**os.environ, "MIANZE_BENCH_DB": str(db)})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        people = {name: Browser(base, name) for name in ("auditor", chair, member, officer, "appeal_reviewer")}
        print(f"server: gunicorn, {args.server_workers} {args.worker_class} worker processes"
              f"{f' x {args.threads} threads' if args.worker_class != 'sync' else ''}; "
              f"CPUs: {len(os.sched_getaffinity(0))}; signed in: {', '.join(people)}")
        inbox_paths = ["/inbox", "/inbox?tab=all", "/inbox?tab=all&state=under_review",
                       "/inbox?tab=all&q=L0004", "/inbox?tab=all&sort=opened&page=7",
                       "/inbox?tab=all&outcome=liable"]
        rnd = random.Random(1)

        def run(kind: str, clients: int) -> tuple[list[tuple[float, str]], float, list[int], int]:
            tabs = Tabs(base)

            def one(_):
                if kind == "inbox":
                    name, path = rnd.choice(list(people)), rnd.choice(inbox_paths)
                    return tabs.get(people[name].cookie, path), f"{name} {path}"
                # every case is in the auditor's scope
                return tabs.get(people["auditor"].cookie, f"/cases/{rnd.randint(1, n_cases)}"), "case page"

            try:
                with ThreadPoolExecutor(clients) as pool:
                    list(pool.map(one, range(4 * clients)))  # warm up every worker process and thread
                    warm = len(tabs.connects)
                    done, splits = threading.Event(), []

                    def sample():  # the split every 0.1 s while the clients work (the server may rebalance it)
                        while not done.wait(0.1):
                            splits.append(connections_per_worker(server.pid, port))

                    sampler = threading.Thread(target=sample)
                    t0 = time.perf_counter()
                    sampler.start()
                    samples = list(pool.map(one, range(args.requests)))
                    wall = time.perf_counter() - t0
                    done.set()
                    sampler.join()
                widest = max((len(x) for x in splits), default=0)
                split = [statistics.mean(x[i] if i < len(x) else 0 for x in splits) for i in range(widest)]
                return samples, wall, split, sum(tabs.connects[warm:])
            finally:
                tabs.close()

        print(f"machine speed before: {_calibration_ms():.0f} ms for a fixed pure-Python loop (lower is faster)")
        missed = []
        for clients in levels:
            for kind in ("inbox", "case"):
                timed, wall, split, connects = run(kind, clients)
                samples = [t for t, _ in timed]
                p95 = _pct(samples, 95) * 1000
                print(f"{kind:6s} clients={clients:<2d} n={len(samples)} p50={_pct(samples, 50) * 1000:.1f} ms "
                      f"p95={p95:.1f} ms p99={_pct(samples, 99) * 1000:.1f} ms "
                      f"mean={statistics.mean(samples) * 1000:.1f} ms throughput={len(samples) / wall:.0f} req/s "
                      f"(goal p95 <= {GOAL_MS} ms: {'met' if p95 <= GOAL_MS else 'NOT met'}); "
                      f"connections per worker (mean of 0.1 s samples): "
                      f"{' + '.join(f'{n:.1f}' for n in split) or 'unknown'}, {connects} opened during the run")
                if p95 > GOAL_MS:
                    missed.append(f"{kind} at {clients} clients ({p95:.1f} ms)")
                if kind == "inbox":  # which requests make the tail (who signed in, which page)
                    tail = Counter(what for t, what in timed if t * 1000 >= p95)
                    print("       slowest 5%: " + ", ".join(f"{what} ×{n}" for what, n in tail.most_common(4)))
        print(f"machine speed after: {_calibration_ms():.0f} ms for the same loop")
        print(f"goal p95 <= {GOAL_MS} ms: " + (f"NOT met for {', '.join(missed)}" if missed else
                                             f"met by both pages at every level ({args.clients} clients)"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_app():
    """The app the gunicorn workers serve (`bench.pages:bench_app()`), on the benchmark's database."""
    from workflow import create_app, ready_to_serve

    db = os.environ["MIANZE_BENCH_DB"]
    return ready_to_serve(create_app({"DATABASE_URL": f"sqlite:///{db}", "SECRET_KEY": "bench", "REDIS_URL": None,
                                      "LOGIN_MAX_FAILURES": 10_000}))  # as wsgi.py serves it


if __name__ == "__main__":
    main()
