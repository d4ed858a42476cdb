"""The unit of work: a row the database refuses as a duplicate is a conflict (409), and nothing is written."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from workflow.db import unit_of_work
from workflow.domain.errors import ConflictError
from workflow.models import Branch


def test_a_duplicate_refused_by_a_unique_constraint_is_a_conflict_and_nothing_of_the_unit_is_written(engine):
    with unit_of_work(engine) as s:
        s.add(Branch(code="X01", name="先到支行", level=0))
    with pytest.raises(ConflictError):
        with unit_of_work(engine) as s:
            s.add(Branch(code="X02", name="同一单元的另一行", level=0))
            s.flush()
            s.add(Branch(code="X01", name="后到支行", level=0))
    with Session(engine) as s:
        assert s.exec(select(Branch.name).where(Branch.code.in_(["X01", "X02"]))).all() == ["先到支行"]


def test_other_integrity_errors_are_not_disguised_as_conflicts(engine):
    with pytest.raises(IntegrityError):
        with unit_of_work(engine) as s:
            s.add(Branch(code="X03", name="无上级", level=1, parent_id=987654))
