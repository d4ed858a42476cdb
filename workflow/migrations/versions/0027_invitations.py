"""Invitations to set one's password (invitation): the link's hash and salt, expiry, use and revocation

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 22:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'invitation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('salt', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=True),
        sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['notification_id'], ['notification.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_invitation_user_id', 'invitation', ['user_id'])
    op.create_index('ix_invitation_notification_id', 'invitation', ['notification_id'])


def downgrade() -> None:
    op.drop_index('ix_invitation_notification_id', table_name='invitation')
    op.drop_index('ix_invitation_user_id', table_name='invitation')
    op.drop_table('invitation')
