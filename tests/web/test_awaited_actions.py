"""The inbox says what each case awaits from me (the step, its deadline, why) and the navigation counts the
cases per awaited action; every inbox row of every demo user names its action."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from tests.conftest import demo_copy
from tests.factories import drive, liable_officer, make_bank, serve_letters
from tests.web.support import login, make_app, set_passwords
from workflow import demo
from workflow.db import unit_of_work
from workflow.models import Case, Respondent, User
from workflow.services import cases

_ROW = re.compile(r'<tr>\s*<td><a href="/cases/(\d+)">.*?</tr>', re.S)
_AWAITED = re.compile(r'<div class="awaited" data-action="([a-z_]+)">([^<]+)')
_NAV = re.compile(r'<span class="awaits" id="nav-awaits">(.*?)</a></span>', re.S)
_NAV_ITEM = re.compile(r'data-action="([a-z_]+)">[^<]+<span class="count">(\d+)</span>')


def _client(bank, app_for, username):
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def _rows(html: str) -> dict[int, list[tuple[str, str]]]:
    """Case id -> [(action, label), …] of an inbox page's rows."""
    return {int(m.group(1)): [(a, label.strip()) for a, label in _AWAITED.findall(m.group(0))] for m in _ROW.finditer(html)}


def _nav(html: str) -> dict[str, int]:
    found = _NAV.search(html)
    return {a: int(n) for a, n in _NAV_ITEM.findall(found.group(0))} if found else {}


def _vote(bank, case_id, member):
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
            cases.record_vote(s, case, bank.user(s, member), r.id, r.recommended_outcome)


def test_a_chair_is_asked_to_vote_then_to_determine_and_the_navigation_counts_each(bank, app_for):
    case_id = drive(bank, "under_review")
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    html = chair.get("/inbox").get_data(as_text=True)
    assert _rows(html)[case_id] == [("vote", "投票")]
    assert _nav(html) == {"vote": 1}
    assert 'href="/inbox?tab=waiting&amp;action=vote"' in html
    _vote(bank, case_id, "chair")
    chair = _client(bank, app_for, "chair")  # a new session: the badges are counted afresh
    html = chair.get("/inbox").get_data(as_text=True)
    assert _rows(html)[case_id] == [("determine", "作出认定")]
    assert _nav(html) == {"determine": 1}
    assert re.search(r'<span class="muted small deadline[^"]*">截止', html)  # the step's deadline


@pytest.fixture
def two_enterprises(engine):
    """The small bank with two enterprises of one loan each, so that two cases can be open at once."""
    return make_bank(engine, n_loans=2, loans_per_enterprise=1)


def test_the_navigation_link_of_an_action_lists_only_the_cases_awaiting_it(two_enterprises, app_for):
    bank = two_enterprises
    registered = drive(bank, "registered", loan_ids=bank.loans[:1])
    under_review = drive(bank, "under_review", loan_ids=bank.loans[1:])
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    html = chair.get("/inbox").get_data(as_text=True)
    assert _nav(html) == {"assign": 1, "vote": 1}
    assert set(_rows(html)) == {registered, under_review}
    only = chair.get("/inbox?tab=waiting&action=assign").get_data(as_text=True)
    assert set(_rows(only)) == {registered} and 'id="awaited-filter"' in only
    assert set(_rows(chair.get("/inbox?tab=waiting&action=vote").get_data(as_text=True))) == {under_review}


def test_a_respondent_is_asked_to_acknowledge_their_letter_until_it_is_served(bank, app_for):
    case_id = drive(bank, "in_publicity")
    set_passwords(bank.engine)
    officer = _client(bank, app_for, "officer")
    html = officer.get("/inbox").get_data(as_text=True)
    assert _rows(html)[case_id] == [("acknowledge", "签收认定书")]
    assert _nav(html) == {"acknowledge": 1}
    serve_letters(bank, case_id)
    officer = _client(bank, app_for, "officer")
    assert case_id not in _rows(officer.get("/inbox").get_data(as_text=True))


def test_an_administrator_is_told_why_a_final_case_waits_for_them(two_enterprises, app_for):
    bank = two_enterprises
    liable = drive(bank, "final", facts_for=liable_officer, appeal=False, loan_ids=bank.loans[:1])
    exempt = drive(bank, "final", appeal=False, loan_ids=bank.loans[1:])
    set_passwords(bank.engine)
    admin = _client(bank, app_for, "admin")
    html = admin.get("/inbox").get_data(as_text=True)
    rows = _rows(html)
    assert rows[liable] == [("refer", "移交问责")] and rows[exempt] == [("close", "结案")]
    assert "认定已生效，有被评议人的结论为减责或不予免责：请移交问责。" in html
    assert "认定已生效，全部被评议人免责：请结案。" in html
    assert _nav(html) == {"refer": 1, "close": 1}
    english = _client(bank, app_for, "admin")
    english.post("/language", data={"csrf_token": english.csrf, "locale": "en", "next": "/inbox"})
    assert "The determination is final and every respondent is exempt: close the case." in \
        english.get("/inbox").get_data(as_text=True)


def test_the_list_of_all_cases_names_what_each_awaits_from_me_and_nothing_for_the_others(two_enterprises, app_for):
    bank = two_enterprises
    mine = drive(bank, "under_review", loan_ids=bank.loans[:1])
    closed = drive(bank, "closed", loan_ids=bank.loans[1:])
    set_passwords(bank.engine)
    rows = _rows(_client(bank, app_for, "member1").get("/inbox?tab=all").get_data(as_text=True))
    assert rows[mine] == [("vote", "投票")] and rows[closed] == []


@pytest.fixture
def demo_bank(demo_template, tmp_path):
    """A copy of the demo bank on SQLite (loaded once for the run)."""
    engine = demo_copy(demo_template, tmp_path)
    yield engine, tmp_path
    engine.dispose()


@pytest.mark.xdist_group("demo")
def test_every_inbox_row_of_every_demo_user_names_the_action_awaited_and_the_counts_agree(demo_bank):
    engine, tmp = demo_bank
    app = make_app(engine, tmp, INBOX_PAGE_SIZE=100)
    with unit_of_work(engine) as s:
        usernames = s.exec(select(User.username).where(User.active.is_(True)).order_by(User.id)).all()
    waited_for = 0
    try:
        for username in usernames:
            client = app.test_client()
            assert login(client, username, demo.DEMO_PASSWORD).status_code == 302, username
            html = client.get("/inbox").get_data(as_text=True)
            total = int(re.search(r'id="nav-waiting">(\d+)<', html).group(1))
            assert total < 100, username  # one page holds them all
            rows = _rows(html)
            assert len(rows) == total, username
            unnamed = [case_id for case_id, awaited in rows.items() if not awaited]
            assert unnamed == [], (username, unnamed)
            per_action: dict[str, int] = {}
            for awaited in rows.values():
                for action in {a for a, _ in awaited}:
                    per_action[action] = per_action.get(action, 0) + 1
            assert _nav(html) == per_action, username
            waited_for += bool(rows)
    finally:
        app.extensions["mianze.engine"].dispose()
    assert waited_for >= 10  # the demo gives most of its staff something to do


def test_a_respondent_is_asked_for_their_statement_by_their_own_deadline(bank, app_for):
    case_id = drive(bank, "registered")
    with unit_of_work(bank.engine) as s:
        due = s.exec(select(Respondent.statement_due).join(User, User.id == Respondent.user_id)
                     .where(Respondent.case_id == case_id, User.username == "officer")).one()
    set_passwords(bank.engine)
    html = _client(bank, app_for, "officer").get("/inbox").get_data(as_text=True)
    assert _rows(html)[case_id] == [("statement", "提交免责陈述")]
    assert f"截止{due.year}年{due.month}月{due.day}日" in html
