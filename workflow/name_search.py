"""Searching enterprise names by any part of them ("infix" search) without reading every name.

A name search is `LIKE '%text%'`, which no ordinary index answers: on 100,000 enterprises SQLite reads every
name (about 6 ms per search). On SQLite, a trigram index (FTS5 with the `trigram` tokenizer, SQLite 3.34+)
finds the names containing a text of three or more characters directly (0.03-0.4 ms); the phrase query
`name MATCH '"text"'` matches exactly the names containing the text, ignoring ASCII case as LIKE does.
Shorter texts fall back to LIKE (a trigram index cannot answer them). The index is a table of its own kept
in step with `enterprise` by triggers; `SQLITE_DDL` creates both, with `metadata.create_all` (see
`models.py`) and in migration 0006.

On PostgreSQL the search is `ILIKE` (ignoring case as SQLite's LIKE does), answered by a GIN index with
pg_trgm's trigram operator class (`create_postgres_index`; pg_trgm is a trusted extension, so the
database's owner may create it).
"""

from __future__ import annotations

from sqlalchemy import column, select, table
from sqlalchemy.exc import DBAPIError

INDEX = "enterprise_name_trgm"

SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {INDEX} USING fts5(name, tokenize='trigram')",
    f"CREATE TRIGGER {INDEX}_insert AFTER INSERT ON enterprise BEGIN "
    f"INSERT INTO {INDEX}(rowid, name) VALUES (new.id, new.name); END",
    f"CREATE TRIGGER {INDEX}_update AFTER UPDATE OF id, name ON enterprise BEGIN "
    f"DELETE FROM {INDEX} WHERE rowid = old.id; INSERT INTO {INDEX}(rowid, name) VALUES (new.id, new.name); END",
    f"CREATE TRIGGER {INDEX}_delete AFTER DELETE ON enterprise BEGIN "
    f"DELETE FROM {INDEX} WHERE rowid = old.id; END",
)

POSTGRES_INDEX = f"ix_{INDEX}"
_PG_EXTENSION_SCHEMA = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"

_trigrams = table(INDEX, column("rowid"), column("name"))


def create_postgres_index(connection) -> None:
    """pg_trgm (into `public` unless it is installed already) and the GIN index of enterprise names.

    Two sessions creating the extension at once can collide even with IF NOT EXISTS; the loser finds it
    created by the other.
    """
    schema = connection.exec_driver_sql(_PG_EXTENSION_SCHEMA).scalar()
    if schema is None:
        try:
            with connection.begin_nested():
                connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        except DBAPIError:
            pass  # created meanwhile by another session
        schema = connection.exec_driver_sql(_PG_EXTENSION_SCHEMA).scalar()
    connection.exec_driver_sql(f"CREATE INDEX {POSTGRES_INDEX} ON enterprise USING gin (name {schema}.gin_trgm_ops)")


def is_index_object(name: str | None) -> bool:
    """Whether a database object belongs to the name index (it is not part of the models' metadata: the
    schema comparisons leave it out)."""
    return bool(name) and (name.startswith(INDEX) or name == POSTGRES_INDEX)


def enterprise_ids_named(dialect: str, text: str, enterprise_table):
    """A SELECT of the ids of the enterprises whose name contains `text` (no LIKE wildcards in it)."""
    if dialect == "sqlite" and len(text) >= 3:
        phrase = '"' + text.replace('"', '""') + '"'
        return select(_trigrams.c.rowid).where(_trigrams.c.name.op("MATCH")(phrase))
    if dialect == "postgresql":
        return select(enterprise_table.c.id).where(enterprise_table.c.name.ilike(f"%{text}%"))
    return select(enterprise_table.c.id).where(enterprise_table.c.name.like(f"%{text}%"))
