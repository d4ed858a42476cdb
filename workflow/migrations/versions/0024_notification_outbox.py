"""The notification outbox: a delivery per notification and channel (notificationdelivery), the users'
mail address and channel choices, the branches' 企业微信 group robot

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 20:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('app_user', sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True))
    op.add_column('app_user', sa.Column('notify_mail', sa.Boolean(), nullable=False, server_default=sa.text('true')))
    op.add_column('app_user', sa.Column('notify_webhook', sa.Boolean(), nullable=False,
                                        server_default=sa.text('true')))
    op.add_column('branch', sa.Column('webhook_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    op.create_table('notificationdelivery',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('notification_id', sa.Integer(), nullable=False),
                    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
                    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
                    sa.Column('attempts', sa.Integer(), nullable=False),
                    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('claim', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
                    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
                    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
                    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
                    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['notification_id'], ['notification.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('notification_id', 'channel'))
    with op.batch_alter_table('notificationdelivery') as batch_op:
        batch_op.create_index('ix_notificationdelivery_due', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notificationdelivery') as batch_op:
        batch_op.drop_index('ix_notificationdelivery_due')
    op.drop_table('notificationdelivery')
    for table, column in (('branch', 'webhook_url'), ('app_user', 'notify_webhook'), ('app_user', 'notify_mail'),
                          ('app_user', 'email')):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # SQLite 3.35+, PostgreSQL
