"""The referral record, the sanctions recorded back and the refunds due (HR feed)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 22:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import workflow.db

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'referral',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('matters', sa.Text(), nullable=False),
        sa.Column('respondents', sa.JSON(), nullable=False),
        sa.Column('letter_id', sa.Integer(), nullable=True),
        sa.Column('referred_by_id', sa.Integer(), nullable=False),
        sa.Column('referred_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id']),
        sa.ForeignKeyConstraint(['letter_id'], ['letter.id']),
        sa.ForeignKeyConstraint(['referred_by_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id'),
    )
    op.create_table(
        'sanction',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('respondent_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('basis_outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('sanction_type', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('amount', workflow.db.Money(), nullable=False),
        sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=True),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('recorded_by_id', sa.Integer(), nullable=False),
        sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id']),
        sa.ForeignKeyConstraint(['respondent_id'], ['respondent.id']),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sanction_case_id', 'sanction', ['case_id'])
    op.create_index('ix_sanction_respondent_id', 'sanction', ['respondent_id'])
    op.create_index('ix_sanction_user_id', 'sanction', ['user_id'])
    op.create_index('ix_sanction_month', 'sanction', ['month'])
    op.create_table(
        'refund',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sanction_id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('amount', workflow.db.Money(), nullable=False),
        sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('decision_ref', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column('decided_on', sa.Date(), nullable=False),
        sa.Column('new_outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['sanction_id'], ['sanction.id']),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id']),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_refund_sanction_id', 'refund', ['sanction_id'])
    op.create_index('ix_refund_case_id', 'refund', ['case_id'])
    op.create_index('ix_refund_month', 'refund', ['month'])


def downgrade() -> None:
    op.drop_index('ix_refund_month', table_name='refund')
    op.drop_index('ix_refund_case_id', table_name='refund')
    op.drop_index('ix_refund_sanction_id', table_name='refund')
    op.drop_table('refund')
    for name in ('month', 'user_id', 'respondent_id', 'case_id'):
        op.drop_index(f'ix_sanction_{name}', table_name='sanction')
    op.drop_table('sanction')
    op.drop_table('referral')
