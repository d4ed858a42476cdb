"""case_file index on (state, due_date): waiting lists of one state sorted by deadline without table reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 17:50:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_case_state_due', 'case_file', ['state', 'due_date'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_state_due', table_name='case_file')
