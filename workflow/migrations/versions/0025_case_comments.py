"""Comments on a case (case_comment): who, when, the text and who was @mentioned

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 20:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_comment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('mentions', sa.JSON(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['author_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_case_comment_case_id', 'case_comment', ['case_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_case_comment_case_id', table_name='case_comment')
    op.drop_table('case_comment')
