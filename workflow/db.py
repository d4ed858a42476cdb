"""Engines and units of work. Services flush; only `unit_of_work` commits."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import BigInteger, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from .chain import canonical
from .domain.errors import ConflictError, ValidationFailed

_CENT = Decimal("0.01")
SQLITE_MMAP_BYTES = 1 << 30  # up to 1 GiB of the database file mapped (address space, not memory)
SQLITE_CACHE_KIB = 16 * 1024  # 16 MiB page cache per connection


class Money(TypeDecorator):
    """A yuan amount: Decimal in Python, exact integer fen in the database."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        amount = Decimal(str(value))
        if amount != amount.quantize(_CENT):
            raise ValidationFailed(f"amount {value} has more than 2 decimal places")
        return int(amount * 100)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return (Decimal(value) / 100).quantize(_CENT)


def _canonical_json(obj) -> str:
    """JSON columns are written as canonical text, so the audit chain can hash stored payloads as they are."""
    return canonical(obj).decode("utf-8")


class WriterGate:
    """Queues a SQLite database's write transactions in front of SQLite's own lock.

    SQLite lets one writer in at a time; a writer that finds the lock taken sleeps in its busy handler for
    1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms before each retry, while a newcomer may take the
    lock at once. Under concurrent page views (each writes an access-log entry with a full sync) that made
    a few writers wait 100-200 ms for a lock that was free again after 2 ms. Here writers wait their turn
    instead: threads of one process on a lock that wakes the next at once, processes on an exclusive
    `flock` of the file `<database>.writer-lock`, polled every 0.2-1 ms.

    The gate only orders writers; SQLite's lock still guarantees one writer at a time. A writer that cannot
    pass the gate within `timeout` seconds goes on without it and meets SQLite's busy timeout as before.
    """

    def __init__(self, lock_path: str | None, timeout: float = 30.0):
        self.lock_path = lock_path
        self.timeout = timeout
        self._lock = threading.Lock()  # not re-entrant: a write transaction never opens another
        self._flocked = False
        self._fd: int | None = None
        self._pid: int | None = None

    def _file(self) -> int | None:
        """This process's descriptor of the lock file (None if it cannot be opened: threads still queue)."""
        if self._pid != os.getpid():  # a forked worker process opens its own descriptor
            self._pid = os.getpid()
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                self._fd = None
                logging.getLogger(__name__).warning("writer gate: cannot open %s (%s); worker processes' "
                                                    "writers meet at SQLite's lock only", self.lock_path, exc)
        return self._fd

    def enter(self) -> bool:
        """Wait for this write transaction's turn; False if the wait timed out (nothing to `leave` then)."""
        deadline = time.monotonic() + self.timeout
        if not self._lock.acquire(timeout=self.timeout):
            return False
        fd = self._file() if self.lock_path is not None else None
        if fd is not None:
            pause = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._flocked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)
        return True

    def leave(self) -> None:
        """The write transaction that passed `enter` has ended."""
        if self._flocked:
            self._flocked = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return None if not database or database == ":memory:" or database.startswith("file:") else database


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite gets WAL, synchronous=FULL, a busy timeout and IMMEDIATE writes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=_canonical_json, **kwargs)
        database = _sqlite_file(url)
        gate = _GATES[engine] = WriterGate(f"{database}.writer-lock" if database else None)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Reads go through a memory map of the file (shared by every connection and worker process via
            # the OS page cache) and a larger page cache per connection, instead of one read() system call
            # per page not in SQLite's default 2 MB cache: an inbox visiting thousands of cases runs ~30 %
            # faster on a 100,000-case database. Writes still go through the WAL with full syncs.
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Write units take the database lock up front, so two writers never both read a stale
            # chain head; read-only units use a plain deferred BEGIN.
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            if mode == "IMMEDIATE" and not conn.info.get(_GATE_KEY) and gate.enter():
                conn.info[_GATE_KEY] = True  # left when the connection goes back to the pool
            try:
                conn.connection.driver_connection.execute(f"BEGIN {mode}")  # straight to the driver: every
                # transaction begins here, and nothing needs SQLAlchemy's statement machinery for it
            except BaseException:
                if conn.info.pop(_GATE_KEY, False):
                    gate.leave()
                raise

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(_dbapi_conn, record):
            # The transaction ended (commit or rollback) before its connection came back to the pool.
            if record.info.pop(_GATE_KEY, False):
                gate.leave()

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_canonical_json, **kwargs)


_GATE_KEY = "mianze.writer_gate"
_GATES: weakref.WeakKeyDictionary[Engine, WriterGate] = weakref.WeakKeyDictionary()


def writer_gate(engine: Engine) -> WriterGate | None:
    """The gate in front of a SQLite engine's write transactions (None for other databases)."""
    return _GATES.get(engine)


def writer(engine: Engine) -> Engine:
    """The same engine, marked so that SQLite transactions begin IMMEDIATE."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def analyze(engine: Engine) -> None:
    """Refresh the query planner's statistics (ANALYZE).

    SQLite keeps no statistics until asked, and without them it may drive an inbox query from the wrong
    index (tens of milliseconds instead of one). Run after migrations, the demo load and bulk imports;
    PostgreSQL's autovacuum also analyzes by itself.
    """
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One write transaction: commits when the block ends, rolls back on any error.

    Raises ConflictError when an optimistic-locking check failed (someone else changed the case first).
    """
    session = Session(writer(engine), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except StaleDataError as exc:
        session.rollback()
        raise ConflictError("the case was changed by someone else in the meantime; reload and try again") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rows(session: Session, statement, params=None):
    """Run a statement of columns (no ORM entities) on the session's connection, in its transaction.

    The same rows as `session.execute`, for half the cost per statement (the ORM's execution path adds
    nothing to plain rows). Pending changes are flushed first, as autoflush would (nothing to do, and
    nearly free, in a session that has none).
    """
    session.flush()
    return session.connection().execute(statement, params)


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only session (rolled back at the end)."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.rollback()
        session.close()
