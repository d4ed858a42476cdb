"""app_user.session_epoch: a session is valid while it carries the user's epoch, which signing out and a
new password advance (ending every session of the user)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 09:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions signed in before this carry no epoch: they end once, and their users sign in again.
    op.add_column('app_user', sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.execute("ALTER TABLE app_user DROP COLUMN session_epoch")  # SQLite 3.35+, PostgreSQL
