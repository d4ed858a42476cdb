"""Concurrency: 16 people acting on one case at once — exactly one wins; concurrent SQLite writers all land."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from tests.factories import open_case
from workflow.db import make_engine, read_session, unit_of_work
from workflow.domain.errors import ConflictError
from workflow.models import Case
from workflow.services import audit, cases


def test_sixteen_concurrent_transitions_on_one_case_one_wins_fifteen_conflict(bank):
    case_id = open_case(bank)
    with Session(bank.engine) as s:
        seen = s.get(Case, case_id).version
        seq_before = audit.verify(s)
    barrier = threading.Barrier(16)
    results: list[str] = []
    lock = threading.Lock()

    def act(n: int):
        barrier.wait()
        try:
            with unit_of_work(bank.engine) as s:
                case = s.get(Case, case_id)
                cases.withdraw(s, case, bank.user(s, "admin"), f"撤销理由 {n}", expected_version=seen)
            outcome = "ok"
        except ConflictError:
            outcome = "conflict"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=act, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["conflict"] * 15 + ["ok"]
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.state == "withdrawn"
        assert case.version > seen
        assert audit.verify(s) == seq_before + 1
        events = [e.event for e in cases.audit_events(s, case_id)]
        assert events.count("withdraw") == 1


def test_concurrent_writers_of_threads_and_another_process_on_one_sqlite_file_all_land(tmp_path):
    """SQLite's own locking (WAL, BEGIN IMMEDIATE, a 30 s busy timeout) lets every writer wait its turn:
    none fails with "database is locked"."""
    path = tmp_path / "writers.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as s:
        s.execute(text("CREATE TABLE entry (who TEXT NOT NULL, n INTEGER NOT NULL)"))
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(root)!r})
        from sqlalchemy import text
        from workflow.db import make_engine, unit_of_work
        engine = make_engine("sqlite:///{path}")
        for n in range(60):
            with unit_of_work(engine) as s:
                s.execute(text("INSERT INTO entry VALUES ('child', :n)"), {{"n": n}})
    """)], stderr=subprocess.PIPE, text=True)
    errors: list[BaseException] = []

    def write(who: str):
        try:
            for n in range(30):
                with unit_of_work(engine) as s:
                    s.execute(text("INSERT INTO entry VALUES (:who, :n)"), {"who": who, "n": n})
        except BaseException as exc:  # collected: an assertion in a thread would go unseen
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    _, child_errors = child.communicate(timeout=120)
    assert errors == [] and child.returncode == 0, child_errors
    with read_session(engine) as s:
        counts = dict(s.execute(text("SELECT who, count(*) FROM entry GROUP BY who")).all())
    assert counts == {"child": 60, "t0": 30, "t1": 30, "t2": 30, "t3": 30}
    engine.dispose()
