"""SQLite write transactions queue at the writer gate instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from workflow.db import WriterGate, make_engine, read_session, unit_of_work, writer_gate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "gate.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as s:
        s.execute(text("CREATE TABLE entry (who TEXT NOT NULL, n INTEGER NOT NULL)"))
    yield path, engine
    engine.dispose()


def test_every_write_of_threads_and_processes_lands_and_the_gate_is_free_afterwards(db):
    path, engine = db
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from sqlalchemy import text
        from workflow.db import make_engine, unit_of_work
        engine = make_engine("sqlite:///{path}")
        for n in range(60):
            with unit_of_work(engine) as s:
                s.execute(text("INSERT INTO entry VALUES ('child', :n)"), {{"n": n}})
    """)])

    def write(who: str):
        for n in range(30):
            with unit_of_work(engine) as s:
                s.execute(text("INSERT INTO entry VALUES (:who, :n)"), {"who": who, "n": n})

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert child.wait(timeout=120) == 0
    with read_session(engine) as s:
        counts = dict(s.execute(text("SELECT who, count(*) FROM entry GROUP BY who")).all())
    assert counts == {"child": 60, "t0": 30, "t1": 30, "t2": 30, "t3": 30}
    gate = writer_gate(engine)
    assert gate.lock_path == f"{path}.writer-lock" and os.path.exists(gate.lock_path)
    assert not gate._lock.locked()  # every transaction left the gate


def test_a_writer_waits_while_another_process_holds_the_gate_and_goes_on_when_it_is_released(db):
    path, engine = db
    fd = os.open(f"{path}.writer-lock", os.O_RDWR | os.O_CREAT)  # as another worker process holding it
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = threading.Event()

    def write():
        with unit_of_work(engine) as s:
            s.execute(text("INSERT INTO entry VALUES ('waiting', 1)"))
        done.set()

    t = threading.Thread(target=write)
    t.start()
    assert not done.wait(0.3), "the writer passed a gate another process holds"
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    assert done.wait(5), "the writer did not go on once the gate was free"
    t.join()
    with read_session(engine) as s:
        assert s.execute(text("SELECT count(*) FROM entry WHERE who = 'waiting'")).scalar() == 1


def test_a_failed_write_leaves_the_gate_and_changes_nothing(db):
    _path, engine = db
    with pytest.raises(Exception, match="no such table"):
        with unit_of_work(engine) as s:
            s.execute(text("INSERT INTO entry VALUES ('lost', 1)"))
            s.execute(text("INSERT INTO missing VALUES (1)"))
    assert not writer_gate(engine)._lock.locked()
    with unit_of_work(engine) as s:  # the next writer is not held up
        s.execute(text("INSERT INTO entry VALUES ('next', 1)"))
    with read_session(engine) as s:
        assert dict(s.execute(text("SELECT who, count(*) FROM entry GROUP BY who")).all()) == {"next": 1}


def test_reads_do_not_pass_the_gate(db):
    path, engine = db
    fd = os.open(f"{path}.writer-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        t0 = time.monotonic()
        with read_session(engine) as s:
            assert s.execute(text("SELECT count(*) FROM entry")).scalar() == 0
        assert time.monotonic() - t0 < 5
        assert not writer_gate(engine)._lock.locked()
    finally:
        os.close(fd)


def test_a_gate_held_too_long_is_passed_by_and_sqlite_keeps_one_writer_at_a_time(tmp_path):
    lock = tmp_path / "held.writer-lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        gate = WriterGate(str(lock), timeout=0.2)
        t0 = time.monotonic()
        assert gate.enter()  # after the timeout, without the file lock
        assert 0.2 <= time.monotonic() - t0 < 5
        assert not gate._flocked
        gate.leave()
        assert not gate._lock.locked()
    finally:
        os.close(fd)


def test_in_memory_databases_queue_threads_only():
    engine = make_engine("sqlite://")
    assert writer_gate(engine).lock_path is None
    for n in range(2):  # the second would wait out the timeout if the first had not left the gate
        with unit_of_work(engine) as s:
            s.execute(text("SELECT :n"), {"n": n})
    assert not writer_gate(engine)._lock.locked()
    assert writer_gate(make_engine("postgresql://localhost/test")) is None


def test_a_lock_file_that_cannot_be_created_leaves_threads_queueing_and_writes_working(tmp_path, caplog):
    gate = WriterGate(str(tmp_path / "missing-directory" / "db.writer-lock"))
    with caplog.at_level("WARNING"):
        assert gate.enter()
    assert not gate._flocked and "cannot open" in caplog.text
    gate.leave()
    assert not gate._lock.locked()
