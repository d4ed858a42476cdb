"""Searching the inbox by part of an enterprise's name (the trigram index on SQLite, LIKE elsewhere)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text

from tests.factories import make_bank
from tests.web.support import login, set_passwords
from workflow import name_search
from workflow.db import unit_of_work
from workflow.models import Case, Enterprise, User
from workflow.services import cases

NAMES = ["洛阳华信机械制造有限公司", "Acme Trading 有限公司", 'O\'Brien "Quote" 商行', "新乡市红旗区百货店"]


@pytest.fixture
def named(engine):
    """Four registered cases whose enterprises have the NAMES above; returns (bank, case id by name)."""
    bank = make_bank(engine, n_loans=4, loans_per_enterprise=1)
    by_name = {}
    with unit_of_work(engine) as s:
        admin = s.get(User, bank.users["admin"])
        for loan_id, name in zip(bank.loans, NAMES, strict=True):
            case = cases.open_case(s, admin, [loan_id])
            s.get(Enterprise, case.enterprise_id).name = name
            by_name[name] = case.id
    set_passwords(engine)
    return bank, by_name


def _found(client, q: str) -> set[int]:
    html = client.get("/inbox", query_string={"tab": "all", "q": q}).get_data(as_text=True)
    assert re.search(r'id="result-count">\D*(\d+)', html), html[:500]
    return {int(i) for i in re.findall(r'href="/cases/(\d+)"', html)}


@pytest.fixture
def client(named, app_for):
    bank, _ = named
    c = app_for(bank.engine).test_client()
    login(c, "admin")
    return c


@pytest.mark.parametrize("q, name", [
    ("华信机械", NAMES[0]),        # four Chinese characters: the trigram index
    ("Acme Trad", NAMES[1]),      # Latin with a space
    ("acme trad", NAMES[1]),      # case ignored, on SQLite and PostgreSQL alike
    ('"Quote"', NAMES[2]),        # double quotes are text, not query syntax
    ("O'Brien", NAMES[2]),
    ("洛阳", NAMES[0]),            # two characters: too short for trigrams, LIKE answers
    ("百货店", NAMES[3]),          # the end of a name
])
def test_a_part_of_an_enterprise_name_finds_its_case_and_no_other(named, client, q, name):
    _, by_name = named
    assert _found(client, q) == {by_name[name]}


def test_a_text_in_every_name_finds_every_case_and_one_in_none_finds_nothing(named, client):
    _, by_name = named
    assert _found(client, "有限公司") == {by_name[NAMES[0]], by_name[NAMES[1]]}
    assert _found(client, "不存在的企业") == set()


def test_a_renamed_or_deleted_enterprise_is_found_by_its_new_name_only(named, client):
    bank, by_name = named
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, by_name[NAMES[3]])
        s.get(Enterprise, case.enterprise_id).name = "新乡市牧野区五金商店"
    assert _found(client, "红旗区百货") == set()
    assert _found(client, "牧野区五金") == {by_name[NAMES[3]]}


def test_on_sqlite_the_trigram_index_answers_exactly_what_like_answers(named):
    bank, _ = named
    if bank.engine.dialect.name != "sqlite":
        pytest.skip("the trigram index is SQLite's")
    with bank.engine.connect() as conn:
        indexed = conn.execute(text(f"SELECT count(*) FROM {name_search.INDEX}")).scalar()
        assert indexed == conn.execute(select(func.count()).select_from(Enterprise)).scalar()
        for q in ("有限公司", "华信", "acme", "ACME", "Trading 有", '"Quote"', "商行", "zzz"):
            via_index = set(conn.execute(name_search.enterprise_ids_named("sqlite", q, Enterprise.__table__)).scalars())
            via_like = set(conn.execute(select(Enterprise.id).where(Enterprise.name.like(f"%{q}%"))).scalars())
            assert via_index == via_like, q


def test_on_postgresql_the_name_search_can_be_answered_by_the_trigram_index(named):
    bank, _ = named
    if bank.engine.dialect.name != "postgresql":
        pytest.skip("the GIN trigram index is PostgreSQL's")
    query = name_search.enterprise_ids_named("postgresql", "华信机械", Enterprise.__table__)
    with bank.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # four rows: the planner would rather scan them
        plan = "\n".join(conn.exec_driver_sql(
            "EXPLAIN " + str(query.compile(conn, compile_kwargs={"literal_binds": True}))).scalars())
        found = set(conn.execute(query).scalars())
    assert name_search.POSTGRES_INDEX in plan, plan
    assert len(found) == 1


def test_a_persons_name_is_found_by_any_part_of_it_whatever_its_case(named, client):
    bank, by_name = named
    with unit_of_work(bank.engine) as s:
        s.get(User, bank.users["officer"]).name = "Zhang Wei"
    assert _found(client, "zhang w") == set(by_name.values())  # the officer answers in every case
    assert _found(client, "WEI") == set(by_name.values())
