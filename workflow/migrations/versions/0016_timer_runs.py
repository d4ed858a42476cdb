"""The deadline timer's run history (timerrun)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('timerrun',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
                    sa.Column('day', sa.Date(), nullable=False),
                    sa.Column('ok', sa.Boolean(), nullable=False),
                    sa.Column('summary', sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('timerrun') as batch_op:
        batch_op.create_index(batch_op.f('ix_timerrun_started_at'), ['started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('timerrun') as batch_op:
        batch_op.drop_index(batch_op.f('ix_timerrun_started_at'))
    op.drop_table('timerrun')
