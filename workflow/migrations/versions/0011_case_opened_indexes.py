"""Cases newest first with their branch, and within a state: the list of all cases in a branch scope, and
the state filter, read in order from an index without reading each case's row

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:10:00
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_case_opened_branch', 'case_file', ['opened_at', 'branch_id'], unique=False)
    op.create_index('ix_case_state_opened', 'case_file', ['state', 'opened_at', 'branch_id'], unique=False)
    op.drop_index('ix_case_file_opened_at', table_name='case_file')


def downgrade() -> None:
    op.create_index('ix_case_file_opened_at', 'case_file', ['opened_at'], unique=False)
    op.drop_index('ix_case_state_opened', table_name='case_file')
    op.drop_index('ix_case_opened_branch', table_name='case_file')
