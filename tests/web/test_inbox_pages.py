"""Inbox pages: totals, page bounds and scope when the list spans several pages."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from tests.factories import make_bank
from tests.web.support import login, set_passwords
from workflow.db import unit_of_work
from workflow.models import Case, User
from workflow.services import cases

PAGE = 3


@pytest.fixture
def seven(engine):
    """A bank with seven registered cases (one per enterprise) opened by the tier-1 chair's branch."""
    bank = make_bank(engine, n_loans=7, loans_per_enterprise=1)
    with unit_of_work(engine) as s:
        admin = s.get(User, bank.users["admin"])
        for loan_id in bank.loans:
            cases.open_case(s, admin, [loan_id])
    set_passwords(engine)
    return bank


def _client(bank, app_for, username):
    client = app_for(bank.engine, INBOX_PAGE_SIZE=PAGE).test_client()
    login(client, username)
    return client


def _listed(html: str) -> list[str]:
    """The cases listed, in order (a row may link its case more than once)."""
    return list(dict.fromkeys(re.findall(r'href="/cases/(\d+)"', html)))


def _total(html: str) -> int:
    return int(re.search(r'id="result-count">\D*(\d+)', html).group(1))


@pytest.mark.parametrize("user, path", [("chair", "/inbox"), ("chair", "/inbox?tab=all"),
                                        ("chair", "/inbox?tab=all&q=L"), ("auditor", "/inbox?tab=all&q=L")])
def test_every_case_appears_on_exactly_one_page_and_the_total_counts_them_all(seven, app_for, user, path):
    # (a branch-scoped search is counted in the same pass as its page; the auditor's, who sees every case,
    # in a separate count)
    client = _client(seven, app_for, user)
    seen = []
    for page in (1, 2, 3):
        html = client.get(f"{path}{'&' if '?' in path else '?'}page={page}").get_data(as_text=True)
        assert _total(html) == 7
        seen += _listed(html)
    with unit_of_work(seven.engine) as s:
        expected = {str(c.id) for c in s.exec(select(Case))}
    assert len(seen) == 7 and set(seen) == expected


def test_a_waiting_list_with_a_single_reason_pages_like_the_others(seven, app_for):
    # The investigator is neither a respondent nor yet investigating: registered cases of their branch are
    # the only reason something waits for them.
    client = _client(seven, app_for, "investigator")
    seen = []
    for page in (1, 2, 3, 4):
        html = client.get(f"/inbox?page={page}").get_data(as_text=True)
        assert _total(html) == 7
        seen += _listed(html)
    assert len(seen) == 8 and len(set(seen)) == 7  # page 4 is past the end: the last page (one case) again


def test_a_page_past_the_end_shows_the_last_page(seven, app_for):
    client = _client(seven, app_for, "chair")
    last = client.get("/inbox?tab=all&q=L&page=3").get_data(as_text=True)
    beyond = client.get("/inbox?tab=all&q=L&page=99").get_data(as_text=True)
    assert _listed(beyond) == _listed(last) and len(_listed(last)) == 1 and _total(beyond) == 7


def test_a_search_matching_nothing_says_so(seven, app_for):
    html = _client(seven, app_for, "chair").get("/inbox?tab=all&q=ZZZ&page=2").get_data(as_text=True)
    assert _total(html) == 0 and _listed(html) == []


def test_a_respondent_outside_the_branch_finds_the_cases_they_answer_in(seven, app_for):
    # The officer's home is an outlet below the cases' branch: they see the cases because they are a
    # respondent in them, not through their branch subtree.
    with unit_of_work(seven.engine) as s:
        officer = s.get(User, seven.users["officer"])
        assert officer.branch_id not in {c.branch_id for c in s.exec(select(Case))}
    html = _client(seven, app_for, "officer").get("/inbox?tab=all").get_data(as_text=True)
    assert _total(html) == 7
    other = _client(seven, app_for, "other_member").get("/inbox?tab=all").get_data(as_text=True)
    assert _total(other) == 0


def test_an_investigator_outside_the_branch_finds_the_case_they_investigate(seven, app_for):
    # A committee member of another tier-1 branch investigating one case: that case, and only it, is in
    # their scope (read from the investigator index with the case's branch).
    with unit_of_work(seven.engine) as s:
        case = s.exec(select(Case).order_by(Case.id)).first()
        case.investigator_id = seven.users["other_member"]
        s.add(case)
        case_id = case.id
    html = _client(seven, app_for, "other_member").get("/inbox?tab=all").get_data(as_text=True)
    assert _total(html) == 1 and _listed(html) == [str(case_id)]


def test_the_outcome_filter_counts_and_lists_the_cases_with_that_final_or_decided_outcome(seven, app_for):
    from workflow.models import Respondent

    with unit_of_work(seven.engine) as s:
        ids = sorted(c.id for c in s.exec(select(Case)))
        for r in s.exec(select(Respondent).where(Respondent.case_id.in_(ids[:4]))):
            r.decided_outcome = "liable"
            if r.case_id == ids[0]:
                r.final_outcome = "reduced"  # the final outcome wins over the committee's decision
            s.add(r)
    client = _client(seven, app_for, "chair")
    html = client.get("/inbox?tab=all&outcome=liable").get_data(as_text=True)
    assert _total(html) == 3 and sorted(map(int, _listed(html))) == ids[1:4]
    reduced = client.get("/inbox?tab=all&outcome=reduced").get_data(as_text=True)
    assert _total(reduced) == 1 and _listed(reduced) == [str(ids[0])]
    # The auditor sees every case: counted from the outcome index alone, each case once however many of
    # its respondents have the outcome.
    with unit_of_work(seven.engine) as s:
        assert len(s.exec(select(Respondent).where(Respondent.case_id == ids[1])).all()) > 1
    auditor = _client(seven, app_for, "auditor")
    html = auditor.get("/inbox?tab=all&outcome=liable").get_data(as_text=True)
    assert _total(html) == 3 and sorted(map(int, _listed(html))) == ids[1:4]


@pytest.mark.parametrize("sort", ["opened", "opened_asc", "number", "due"])
def test_a_search_matching_most_cases_lists_them_in_the_same_order_as_the_unfiltered_list(seven, app_for, sort):
    """Every case matches `L` (all loan numbers start with it). A search matching many cases is paged by
    walking the ordering index instead of sorting the matches (`inbox.Matches`); either way, the pages
    hold the cases in the order of the unfiltered list."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    client = _client(seven, app_for, "auditor")
    statements = []

    def seen_sql(conn, cursor, statement, *args):
        statements.append(statement)

    def pages(query):
        out = []
        for page in (1, 2, 3):
            html = client.get(f"/inbox?tab=all&sort={sort}{query}&page={page}").get_data(as_text=True)
            assert _total(html) == 7
            out += _listed(html)
        return out

    plain = pages("")
    event.listen(Engine, "before_cursor_execute", seen_sql)  # (the app has an engine of its own)
    try:
        searched = pages("&q=L")
    finally:
        event.remove(Engine, "before_cursor_execute", seen_sql)
    assert searched == plain and len(set(plain)) == 7
    walked = any("case_file.id + " in st for st in statements)
    # (SQLite's choice only, and the due-date order has no index to walk: the matches are sorted)
    assert walked == (seven.engine.dialect.name == "sqlite" and sort != "due")
