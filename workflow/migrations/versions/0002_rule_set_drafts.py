"""rule-set drafts: versions being prepared by head-office administrators (never used to judge)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:54:34.969387
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import workflow.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rulesetdraft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('based_on_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('published_version_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['based_on_id'], ['rulesetversion.id'], ),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['published_version_id'], ['rulesetversion.id'], ),
    sa.ForeignKeyConstraint(['updated_by_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rulesetdraft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rulesetdraft_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rulesetdraft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rulesetdraft_status'))

    op.drop_table('rulesetdraft')
