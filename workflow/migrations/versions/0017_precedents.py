"""The precedent library (案例引导): anonymised decided respondents, proposed and approved by two people

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 18:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('precedent',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
                    sa.Column('case_id', sa.Integer(), nullable=False),
                    sa.Column('respondent_id', sa.Integer(), nullable=False),
                    sa.Column('branch_id', sa.Integer(), nullable=False),
                    sa.Column('rule_set_version', sa.Integer(), nullable=False),
                    sa.Column('product_class', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
                    sa.Column('amount_band', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
                    sa.Column('tolerance_within', sa.Boolean(), nullable=True),
                    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
                    sa.Column('recommended_outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
                    sa.Column('liability_kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
                    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
                    sa.Column('stages', sa.JSON(), nullable=False),
                    sa.Column('reasoning', sa.Text(), nullable=False),
                    sa.Column('codes', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
                    sa.Column('stage_codes', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
                    sa.Column('proposed_by_id', sa.Integer(), nullable=False),
                    sa.Column('proposed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('edited_by_id', sa.Integer(), nullable=True),
                    sa.Column('edited_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('decided_by_id', sa.Integer(), nullable=True),
                    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('reject_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
                    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
                    sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ),
                    sa.ForeignKeyConstraint(['decided_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['edited_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['proposed_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['respondent_id'], ['respondent.id'], ),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('case_id', 'respondent_id'))
    op.create_index(op.f('ix_precedent_status'), 'precedent', ['status'], unique=False)
    op.create_index(op.f('ix_precedent_case_id'), 'precedent', ['case_id'], unique=False)
    op.create_index(op.f('ix_precedent_branch_id'), 'precedent', ['branch_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_precedent_branch_id'), table_name='precedent')
    op.drop_index(op.f('ix_precedent_case_id'), table_name='precedent')
    op.drop_index(op.f('ix_precedent_status'), table_name='precedent')
    op.drop_table('precedent')
