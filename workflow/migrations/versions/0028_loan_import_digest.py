"""The digest of the file row each loan was last imported from (loan.import_digest), so that a re-import
validates only the rows that changed

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 15:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): instant on both databases, whatever the book's size.
    op.add_column('loan', sa.Column('import_digest', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column('loan', 'import_digest')  # SQLite >= 3.35 drops a column in place, as 0018 does
