"""Calendar years entered whole (the State Council's holiday schedule as ranges)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 20:40:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calendaryear',
                    sa.Column('year', sa.Integer(), nullable=False),
                    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
                    sa.Column('entered_by_id', sa.Integer(), nullable=True),
                    sa.Column('entered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['entered_by_id'], ['app_user.id'], ),
                    sa.PrimaryKeyConstraint('year'))


def downgrade() -> None:
    op.drop_table('calendaryear')
