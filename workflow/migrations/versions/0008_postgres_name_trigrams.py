"""PostgreSQL: pg_trgm and a GIN trigram index of enterprise names (the name search is ILIKE there)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:45:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_FIND = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql(_FIND).scalar()
    if schema is None:  # a trusted extension: the database's owner may create it
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        schema = "public"
    op.execute(f"CREATE INDEX ix_enterprise_name_trgm ON enterprise USING gin (name {schema}.gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_enterprise_name_trgm")  # the extension stays: others may use it
