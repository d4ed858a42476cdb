"""Maker-checker for rule sets: a draft is submitted with its effective date (and the reason for a date in
the past), then approved and published, or rejected with a reason, by a second head-office administrator

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 18:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rulesetdraft') as batch_op:
        batch_op.add_column(sa.Column('effective_from', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('backdate_reason', sqlmodel.sql.sqltypes.AutoString(length=500),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('submitted_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('rejection_reason', sqlmodel.sql.sqltypes.AutoString(length=500),
                                      nullable=False, server_default=''))
        batch_op.create_foreign_key('fk_rulesetdraft_submitted_by_id', 'app_user', ['submitted_by_id'], ['id'])
        batch_op.create_foreign_key('fk_rulesetdraft_reviewed_by_id', 'app_user', ['reviewed_by_id'], ['id'])
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('rulesetdraft', 'backdate_reason', server_default=None)
        op.alter_column('rulesetdraft', 'rejection_reason', server_default=None)


def downgrade() -> None:
    op.execute("UPDATE rulesetdraft SET status = 'draft' WHERE status = 'submitted'")
    with op.batch_alter_table('rulesetdraft') as batch_op:
        batch_op.drop_constraint('fk_rulesetdraft_reviewed_by_id', type_='foreignkey')
        batch_op.drop_constraint('fk_rulesetdraft_submitted_by_id', type_='foreignkey')
        for column in ('rejection_reason', 'reviewed_at', 'reviewed_by_id', 'submitted_at', 'submitted_by_id',
                       'backdate_reason', 'effective_from'):
            batch_op.drop_column(column)
