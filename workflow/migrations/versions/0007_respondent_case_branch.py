"""respondent.case_branch_id (the case's branch, copied) and an outcome index by branch: branch-scoped
outcome filters count from one index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:15:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite adds a NOT NULL column only with a default; the rows are filled in at once, and the
    # application always writes the column (its model has no default).
    op.add_column('respondent', sa.Column('case_branch_id', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE respondent SET case_branch_id = "
               "(SELECT case_file.branch_id FROM case_file WHERE case_file.id = respondent.case_id)")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('respondent', 'case_branch_id', server_default=None)
    op.create_index('ix_respondent_outcome_branch', 'respondent',
                    [sa.text('coalesce(final_outcome, decided_outcome)'), 'case_branch_id', 'case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_respondent_outcome_branch', table_name='respondent')
    op.execute("ALTER TABLE respondent DROP COLUMN case_branch_id")  # SQLite 3.35+, PostgreSQL
