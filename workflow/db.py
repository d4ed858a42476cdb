"""Engines and units of work. Services flush; only `unit_of_work` commits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import BigInteger, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from .chain import canonical
from .config import ConfigurationError
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


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite gets WAL, synchronous=FULL, a busy timeout and IMMEDIATE writes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=_canonical_json, **kwargs)

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
            # chain head; read-only units use a plain deferred BEGIN. A writer that finds the lock taken
            # waits in SQLite's busy handler (busy_timeout, 30 s) rather than failing.
            options = conn.get_execution_options()
            driver = conn.connection.driver_connection  # straight to the driver: every transaction begins
            # here, and nothing needs SQLAlchemy's statement machinery for it
            sync = "NORMAL" if options.get("mianze_lazy_sync") else "FULL"
            info = conn.connection.info
            if info.get("mianze.synchronous") != sync:  # per connection, outside a transaction
                driver.execute(f"PRAGMA synchronous={sync}")
                info["mianze.synchronous"] = sync
            driver.execute(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_canonical_json, **kwargs)


def writer(engine: Engine, *, lazy_sync: bool = False) -> Engine:
    """The same engine, marked so that SQLite transactions begin IMMEDIATE.

    `lazy_sync`: on SQLite the transaction's commit does not wait for the disk (`synchronous=NORMAL` for
    it), for a page view's access-log entry only. Such a commit is atomic and in order like every other;
    after a power cut (not an application crash) the last entries of that kind may be missing, never a
    decision: the next ordinary commit, or the WAL's checkpoint, syncs them too. What it saves: the
    commit's fsync (about 4-5 ms on the benchmark machine) while SQLite's one write lock is held, which
    otherwise queues every concurrent case view behind it. PostgreSQL has no such lock (a view's insert
    waits for nobody), so it keeps its normal commit there.
    """
    if lazy_sync:
        return engine.execution_options(sqlite_begin="IMMEDIATE", mianze_lazy_sync=True)
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

    Raises ConflictError when an optimistic-locking check failed (someone else changed the case first) or a
    unique constraint refused a row (someone else wrote the same record first: the loser of a race).
    """
    session = Session(writer(engine), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except StaleDataError as exc:
        session.rollback()
        raise ConflictError("the case was changed by someone else in the meantime; reload and try again") from exc
    except IntegrityError as exc:
        session.rollback()
        if not is_unique_violation(exc):
            raise
        raise ConflictError("someone else recorded the same thing in the meantime; reload and try again") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a duplicate (PostgreSQL 23505, SQLite's UNIQUE or PRIMARY KEY)."""
    orig = exc.orig
    return (getattr(orig, "sqlstate", None) == "23505"
            or getattr(orig, "sqlite_errorname", None) in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"))


def check_database_url(url: str) -> None:
    """Raise ConfigurationError (one line naming the problem) unless `url` parses and names a database kind
    whose driver is installed. Whether the server answers shows only when it is first used."""
    example = "use, for example, postgresql+psycopg://mianze@127.0.0.1:5432/mianze or sqlite:////srv/mianze/mianze.sqlite3"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(f"DATABASE_URL {shown_url(url)!r} is not a database URL "
                                 f"(kind+driver://user:password@host:port/database); {example}") from None
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigurationError(f"DATABASE_URL {shown_url(url)!r} names an unknown kind of database "
                                 f"{parsed.drivername!r}; {example}") from None
    except ImportError as exc:
        raise ConfigurationError(f"DATABASE_URL {shown_url(url)!r} needs the Python package {exc.name!r}, which "
                                 f"is not installed; {example}") from None


def shown_url(url: str) -> str:
    """`url` with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def failure_reason(exc: DBAPIError) -> str:
    """The driver's first line about a failure (e.g. 'connection refused'), for a one-line report."""
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]


def rows(session: Session, statement, params=None):
    """Run a statement of columns (no ORM entities) on the session's connection, in its transaction.

    The same rows as `session.execute`, for half the cost per statement (the ORM's execution path adds
    nothing to plain rows). Pending changes are flushed first, as autoflush would (nothing to do, and
    nearly free, in a session that has none).
    """
    session.flush()
    return session.connection().execute(statement, params)


def stream(conn, statement, batch: int = 2000):
    """Partitions (lists of at most `batch` rows) of one SELECT, streamed from the server: a server-side cursor
    on PostgreSQL (`stream_results`), SQLite's own stepping cursor; never all the rows at once.

    On SQLite the connection reads without its memory map while it streams: pages of a map stay resident in the
    process once touched, so a read of the whole audit chain would grow the process by the size of the file
    (1 GB for 2 M events), while reads through the 16 MiB page cache keep it flat. The map comes back after.
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql("PRAGMA mmap_size=0")
    try:
        # per statement: Connection.execution_options() would set them on the connection for good
        result = conn.execute(statement, execution_options={"stream_results": True, "yield_per": batch})
        try:
            yield from result.partitions()
        finally:
            result.close()
    finally:
        if sqlite:
            conn.exec_driver_sql(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only session (rolled back at the end)."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.rollback()
        session.close()
