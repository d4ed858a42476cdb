"""Stand-ins (代理) of committee members and chairs, and the votes they cast on a principal's behalf

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 20:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('standin',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('principal_id', sa.Integer(), nullable=False),
                    sa.Column('stand_in_id', sa.Integer(), nullable=False),
                    sa.Column('starts_on', sa.Date(), nullable=False),
                    sa.Column('ends_on', sa.Date(), nullable=False),
                    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
                    sa.Column('created_by_id', sa.Integer(), nullable=False),
                    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
                    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['principal_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['revoked_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['stand_in_id'], ['app_user.id'], ),
                    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('standin') as batch_op:
        batch_op.create_index(batch_op.f('ix_standin_principal_id'), ['principal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_standin_stand_in_id'), ['stand_in_id'], unique=False)
    # Plain ALTER TABLE (no batch copy of vote): a copy of the principal's user id, like case_branch_id.
    op.add_column('vote', sa.Column('on_behalf_of_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE vote DROP COLUMN on_behalf_of_id")  # SQLite 3.35+, PostgreSQL
    with op.batch_alter_table('standin') as batch_op:
        batch_op.drop_index(batch_op.f('ix_standin_stand_in_id'))
        batch_op.drop_index(batch_op.f('ix_standin_principal_id'))
    op.drop_table('standin')
