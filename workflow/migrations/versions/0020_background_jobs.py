"""Background jobs (RQ or the app's worker thread): kind, parameters, status, progress and result

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 20:10:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backgroundjob',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
                    sa.Column('params', sa.JSON(), nullable=False),
                    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
                    sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
                    sa.Column('done', sa.Integer(), nullable=False),
                    sa.Column('total', sa.Integer(), nullable=True),
                    sa.Column('result', sa.JSON(), nullable=False),
                    sa.Column('error', sa.Text(), nullable=False),
                    sa.Column('attempts', sa.Integer(), nullable=False),
                    sa.Column('created_by_id', sa.Integer(), nullable=True),
                    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], ),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index(op.f('ix_backgroundjob_status'), 'backgroundjob', ['status'], unique=False)
    op.create_index(op.f('ix_backgroundjob_created_by_id'), 'backgroundjob', ['created_by_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_backgroundjob_created_by_id'), table_name='backgroundjob')
    op.drop_index(op.f('ix_backgroundjob_status'), table_name='backgroundjob')
    op.drop_table('backgroundjob')
