"""Appeal panels: each member's vote on an appeal (uphold, or alter to a less severe outcome)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 17:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'appealvote',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('appeal_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('cast_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('invalidated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['appeal_id'], ['appeal.id'], ),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ),
        sa.ForeignKeyConstraint(['member_id'], ['app_user.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('appealvote', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appealvote_appeal_id'), ['appeal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appealvote_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appealvote_member_id'), ['member_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('appealvote', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appealvote_member_id'))
        batch_op.drop_index(batch_op.f('ix_appealvote_case_id'))
        batch_op.drop_index(batch_op.f('ix_appealvote_appeal_id'))
    op.drop_table('appealvote')
