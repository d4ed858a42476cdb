"""trigram index of enterprise names (SQLite FTS5); case_file index covering the waiting lists

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:40:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# As in workflow/name_search.py when this migration was written (a migration does not follow later code).
_INDEX = "enterprise_name_trgm"
_SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {_INDEX} USING fts5(name, tokenize='trigram')",
    f"CREATE TRIGGER {_INDEX}_insert AFTER INSERT ON enterprise BEGIN "
    f"INSERT INTO {_INDEX}(rowid, name) VALUES (new.id, new.name); END",
    f"CREATE TRIGGER {_INDEX}_update AFTER UPDATE OF id, name ON enterprise BEGIN "
    f"DELETE FROM {_INDEX} WHERE rowid = old.id; INSERT INTO {_INDEX}(rowid, name) VALUES (new.id, new.name); END",
    f"CREATE TRIGGER {_INDEX}_delete AFTER DELETE ON enterprise BEGIN "
    f"DELETE FROM {_INDEX} WHERE rowid = old.id; END",
)


def upgrade() -> None:
    op.create_index('ix_case_state_branch_inv_due', 'case_file', ['state', 'branch_id', 'investigator_id', 'due_date'],
                    unique=False)
    op.drop_index('ix_case_state_branch', table_name='case_file')
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_DDL:
            op.execute(statement)
        op.execute(f"INSERT INTO {_INDEX}(rowid, name) SELECT id, name FROM enterprise")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for suffix in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {_INDEX}_{suffix}")
        op.execute(f"DROP TABLE {_INDEX}")
    op.create_index('ix_case_state_branch', 'case_file', ['state', 'branch_id'], unique=False)
    op.drop_index('ix_case_state_branch_inv_due', table_name='case_file')
