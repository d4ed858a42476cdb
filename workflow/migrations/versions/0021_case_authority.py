"""Delegated authority: the branch a case's loans are booked at and why its committee has authority

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy of case_file, which the other tables reference); cases registered before
    # keep NULL: the tier-1 branch decided them, and the case page says nothing more.
    op.add_column('case_file', sa.Column('origin_branch_id', sa.Integer(), nullable=True))
    op.add_column('case_file', sa.Column('authority', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE case_file DROP COLUMN authority")  # SQLite 3.35+, PostgreSQL
    op.execute("ALTER TABLE case_file DROP COLUMN origin_branch_id")
