"""Covering indexes for an inbox's scope: a person's cases with the case's branch (respondents), an
investigator's cases with their state and branch, so the cases outside a branch scope are read from the
indexes alone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 08:45:00
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_respondent_user_branch', 'respondent', ['user_id', 'case_branch_id', 'case_id'], unique=False)
    op.drop_index('ix_respondent_user_id', table_name='respondent')
    op.drop_index('ix_case_investigator_state', table_name='case_file')
    op.create_index('ix_case_investigator_state', 'case_file', ['investigator_id', 'state', 'branch_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_investigator_state', table_name='case_file')
    op.create_index('ix_case_investigator_state', 'case_file', ['investigator_id', 'state'], unique=False)
    op.create_index('ix_respondent_user_id', 'respondent', ['user_id'], unique=False)
    op.drop_index('ix_respondent_user_branch', table_name='respondent')
