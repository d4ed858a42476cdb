"""respondent outcome index covers the case id: the inbox's outcome filter counts from the index alone

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_respondent_outcome_case', 'respondent',
                    [sa.text('coalesce(final_outcome, decided_outcome)'), 'case_id'], unique=False)
    op.drop_index('ix_respondent_outcome', table_name='respondent')


def downgrade() -> None:
    op.create_index('ix_respondent_outcome', 'respondent',
                    [sa.text('coalesce(final_outcome, decided_outcome)')], unique=False)
    op.drop_index('ix_respondent_outcome_case', table_name='respondent')
