"""Documents numbered per issuing organ, series and year; one version per subject (a key NULLs cannot
defeat); the service of letters (送达), appeal waivers (放弃申诉); the documents' form (bank, organs)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:00:00
"""
import warnings
from contextlib import contextmanager

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# Names for the unnamed unique constraints of 0001, so that SQLite's batch mode can drop them.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


@contextmanager
def _batch_letter():
    """SQLite's batch mode reflects the letter table and the tables it refers to; the respondent table's
    expression index cannot be reflected (and is not touched)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table('letter', naming_convention=NAMING) as batch_op:
            yield batch_op


def _old_unique_names(bind) -> tuple[str, str]:
    if bind.dialect.name == "postgresql":
        return "letter_branch_id_year_seq_key", "letter_kind_case_id_respondent_id_appeal_id_version_key"
    return "uq_letter_branch_id_year_seq", "uq_letter_kind_case_id_respondent_id_appeal_id_version"


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column('letter', sa.Column('subject_key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False,
                                      server_default=''))
    op.add_column('letter', sa.Column('series', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False,
                                      server_default='免认'))
    op.execute("UPDATE letter SET subject_key = kind || ':' || case_id || ':' || coalesce(respondent_id, 0) || ':' "
               "|| coalesce(appeal_id, 0)")
    by_columns, by_subject = _old_unique_names(bind)
    with _batch_letter() as batch_op:
        batch_op.alter_column('kind', type_=sqlmodel.sql.sqltypes.AutoString(length=24),
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=20), existing_nullable=False)
        batch_op.drop_constraint(by_columns, type_='unique')
        batch_op.drop_constraint(by_subject, type_='unique')
        batch_op.create_unique_constraint('uq_letter_branch_id_series_year_seq', ['branch_id', 'series', 'year', 'seq'])
        batch_op.create_unique_constraint('uq_letter_subject_key_version', ['subject_key', 'version'])
    if bind.dialect.name == "postgresql":
        op.alter_column('letter', 'subject_key', server_default=None)
        op.alter_column('letter', 'series', server_default=None)

    op.rename_table('docsequence', 'docsequence_old')
    op.create_table('docsequence',
                    sa.Column('branch_id', sa.Integer(), nullable=False),
                    sa.Column('series', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
                    sa.Column('year', sa.Integer(), nullable=False),
                    sa.Column('last_seq', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
                    sa.PrimaryKeyConstraint('branch_id', 'series', 'year'))
    op.execute("INSERT INTO docsequence (branch_id, series, year, last_seq) "
               "SELECT branch_id, '免认', year, last_seq FROM docsequence_old")
    op.drop_table('docsequence_old')

    op.create_table('letterservice',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('letter_id', sa.Integer(), nullable=False),
                    sa.Column('case_id', sa.Integer(), nullable=False),
                    sa.Column('respondent_id', sa.Integer(), nullable=False),
                    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
                    sa.Column('served_on', sa.Date(), nullable=False),
                    sa.Column('served_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
                    sa.Column('window_days', sa.Integer(), nullable=False),
                    sa.Column('appeal_deadline', sa.Date(), nullable=False),
                    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
                    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('receipt_id', sa.Integer(), nullable=True),
                    sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ),
                    sa.ForeignKeyConstraint(['letter_id'], ['letter.id'], ),
                    sa.ForeignKeyConstraint(['receipt_id'], ['letter.id'], ),
                    sa.ForeignKeyConstraint(['recorded_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['respondent_id'], ['respondent.id'], ),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('letter_id'))
    op.create_index(op.f('ix_letterservice_case_id'), 'letterservice', ['case_id'], unique=False)
    op.create_index(op.f('ix_letterservice_respondent_id'), 'letterservice', ['respondent_id'], unique=False)

    op.create_table('appealwaiver',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('case_id', sa.Integer(), nullable=False),
                    sa.Column('respondent_id', sa.Integer(), nullable=False),
                    sa.Column('statement', sa.Text(), nullable=False),
                    sa.Column('waived_on', sa.Date(), nullable=False),
                    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
                    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ),
                    sa.ForeignKeyConstraint(['recorded_by_id'], ['app_user.id'], ),
                    sa.ForeignKeyConstraint(['respondent_id'], ['respondent.id'], ),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('respondent_id'))
    op.create_index(op.f('ix_appealwaiver_case_id'), 'appealwaiver', ['case_id'], unique=False)

    op.create_table('documentform',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('bank_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
                    sa.Column('cc', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
                    sa.Column('updated_by_id', sa.Integer(), nullable=True),
                    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['updated_by_id'], ['app_user.id'], ),
                    sa.PrimaryKeyConstraint('id'))
    op.create_table('documentorgan',
                    sa.Column('branch_id', sa.Integer(), nullable=False),
                    sa.Column('short_name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
                    sa.Column('committee_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
                    sa.Column('appeal_committee_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
                    sa.Column('signatory', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
                    sa.Column('printed_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
                    sa.Column('updated_by_id', sa.Integer(), nullable=True),
                    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
                    sa.ForeignKeyConstraint(['updated_by_id'], ['app_user.id'], ),
                    sa.PrimaryKeyConstraint('branch_id'))


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table('documentorgan')
    op.drop_table('documentform')
    op.drop_index(op.f('ix_appealwaiver_case_id'), table_name='appealwaiver')
    op.drop_table('appealwaiver')
    op.drop_index(op.f('ix_letterservice_respondent_id'), table_name='letterservice')
    op.drop_index(op.f('ix_letterservice_case_id'), table_name='letterservice')
    op.drop_table('letterservice')
    op.rename_table('docsequence', 'docsequence_new')
    op.create_table('docsequence',
                    sa.Column('branch_id', sa.Integer(), nullable=False),
                    sa.Column('year', sa.Integer(), nullable=False),
                    sa.Column('last_seq', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
                    sa.PrimaryKeyConstraint('branch_id', 'year'))
    op.execute("INSERT INTO docsequence (branch_id, year, last_seq) "
               "SELECT branch_id, year, max(last_seq) FROM docsequence_new GROUP BY branch_id, year")
    op.drop_table('docsequence_new')
    by_columns, by_subject = _old_unique_names(bind)
    with _batch_letter() as batch_op:
        batch_op.drop_constraint('uq_letter_subject_key_version', type_='unique')
        batch_op.drop_constraint('uq_letter_branch_id_series_year_seq', type_='unique')
        batch_op.create_unique_constraint(by_columns, ['branch_id', 'year', 'seq'])
        batch_op.create_unique_constraint(by_subject, ['kind', 'case_id', 'respondent_id', 'appeal_id', 'version'])
        batch_op.drop_column('series')
        batch_op.drop_column('subject_key')
        batch_op.alter_column('kind', type_=sqlmodel.sql.sqltypes.AutoString(length=20),
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=24), existing_nullable=False)
