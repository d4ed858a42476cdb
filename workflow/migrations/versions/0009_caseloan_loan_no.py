"""caseloan.loan_no (the loan's number, copied) and an index by it: the inbox's loan-number search reads
the cases of a number prefix from one index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite adds a NOT NULL column only with a default; the rows are filled in at once, and the
    # application always writes the column (its model has no default).
    op.add_column('caseloan', sa.Column('loan_no', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False, server_default=''))
    op.execute("UPDATE caseloan SET loan_no = (SELECT loan.loan_no FROM loan WHERE loan.id = caseloan.loan_id)")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('caseloan', 'loan_no', server_default=None)
    op.create_index('ix_caseloan_loan_no', 'caseloan', ['loan_no', 'case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_caseloan_loan_no', table_name='caseloan')
    op.execute("ALTER TABLE caseloan DROP COLUMN loan_no")  # SQLite 3.35+, PostgreSQL
