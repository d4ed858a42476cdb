"""inbox indexes: an investigator's cases by state, respondents by effective outcome

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_index('ix_case_file_investigator_id')
        batch_op.create_index('ix_case_investigator_state', ['investigator_id', 'state'], unique=False)
    op.create_index('ix_respondent_outcome', 'respondent',
                    [sa.text('coalesce(final_outcome, decided_outcome)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_respondent_outcome', table_name='respondent')
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_index('ix_case_investigator_state')
        batch_op.create_index('ix_case_file_investigator_id', ['investigator_id'], unique=False)
