"""The right to be heard: each respondent's statement deadline and their refusal to file one

Plain ADD COLUMNs (no batch copy of the table: SQLite supports them, and a copy would lose the respondent
table's expression-based indexes).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:40:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('respondent', sa.Column('statement_due', sa.Date(), nullable=True))
    op.add_column('respondent', sa.Column('statement_declined_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column('respondent', 'statement_declined_at')
    op.drop_column('respondent', 'statement_due')
