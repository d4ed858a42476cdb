"""NPL intake: why no case is opened for a non-performing loan on the intake list

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 20:10:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intakedismissal',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('loan_id', sa.Integer(), nullable=False),
                    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
                    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
                    sa.Column('dismissed_by_id', sa.Integer(), nullable=True),
                    sa.Column('dismissed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['dismissed_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['loan_id'], ['loan.id'], ),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('loan_id'))


def downgrade() -> None:
    op.drop_table('intakedismissal')
