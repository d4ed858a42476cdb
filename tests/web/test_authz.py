"""Authorisation matrix: every route × every role × own/other branch, and each segregation-of-duties rule.

Own-branch staff come from the factory bank (tier-1 branch T1 and head office); other-branch staff hold the
same roles at tier-1 branch T2. A denied request answers 403 and changes nothing; an allowed one does not
answer 403 (POSTs here send a stale case version, so an allowed POST answers 409 and changes nothing too).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import Session, SQLModel, select

from tests.factories import drive, make_bank
from tests.web.support import login, make_app, set_passwords
from workflow.db import make_engine, unit_of_work
from workflow.models import Appeal, AuditHead, Case, Evidence, Letter, LoanStage, Respondent, User
from workflow.services import rulesets

OWN = ("officer", "investigator", "member1", "chair", "appeal", "auditor", "admin")
OTHER = ("t2_officer", "t2_investigator", "other_member", "t2_chair", "t2_appeal", "t2_auditor", "t2_admin")
EVERYONE = OWN + OTHER
OTHER_STAFF = [("t2_officer", "credit_officer"), ("t2_investigator", "investigator"), ("t2_chair", "committee_chair"),
               ("t2_appeal", "appeal_reviewer"), ("t2_auditor", "auditor"), ("t2_admin", "admin")]
STATES = ("registered", "investigating", "under_review", "determined", "in_publicity", "appeal_window",
          "appeal_review", "final")

VIEWERS = set(OWN) | {"t2_auditor"}
DASHBOARD = {"chair", "appeal", "auditor", "admin", "t2_chair", "t2_appeal", "t2_auditor", "t2_admin"}
# (method, route template, state of the case used, who is allowed). {case}, {facts}, {appeal}, {evidence},
# {letter} are filled in from that case.
MATRIX = [
    ("GET", "/inbox", None, set(EVERYONE)),
    ("GET", "/inbox?tab=all", None, set(EVERYONE)),
    ("GET", "/notifications", None, set(EVERYONE)),
    ("POST", "/notifications/read", None, set(EVERYONE)),
    ("GET", "/cases/new", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("POST", "/cases/new", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("GET", "/cases/{case}", "registered", VIEWERS),
    ("GET", "/cases/{case}", "final", VIEWERS),
    ("GET", "/cases/{case}/assign", "registered", {"investigator", "chair", "admin"}),
    ("POST", "/cases/{case}/assign", "registered", {"investigator", "chair", "admin"}),
    ("GET", "/cases/{case}/statement", "registered", {"officer"}),
    ("POST", "/cases/{case}/statement", "registered", {"officer"}),
    ("GET", "/cases/{case}/evidence", "investigating", {"officer", "investigator"}),
    ("POST", "/cases/{case}/evidence", "investigating", {"officer", "investigator"}),
    ("GET", "/cases/{case}/facts/{facts}", "investigating", {"investigator"}),
    ("POST", "/cases/{case}/facts/{facts}", "investigating", {"investigator"}),
    ("POST", "/cases/{case}/submit", "investigating", {"investigator"}),
    ("GET", "/cases/{case}/reevaluate", "under_review", {"chair", "admin"}),
    ("POST", "/cases/{case}/reevaluate", "under_review", {"chair", "admin"}),
    ("GET", "/cases/{case}/withdraw", "registered", {"chair", "admin"}),
    ("POST", "/cases/{case}/withdraw", "registered", {"chair", "admin"}),
    ("GET", "/cases/{case}/legal-hold", "registered", {"auditor", "admin", "t2_auditor"}),
    ("POST", "/cases/{case}/legal-hold", "registered", {"auditor", "admin", "t2_auditor"}),
    ("GET", "/cases/{case}/vote", "under_review", {"member1", "chair"}),
    ("POST", "/cases/{case}/vote", "under_review", {"member1", "chair"}),
    ("GET", "/cases/{case}/determine", "under_review", {"chair"}),
    ("POST", "/cases/{case}/determine", "under_review", {"chair"}),
    ("GET", "/cases/{case}/return", "under_review", {"member1", "chair"}),
    ("POST", "/cases/{case}/return", "under_review", {"member1", "chair"}),
    ("POST", "/cases/{case}/letters", "determined", {"chair", "admin"}),
    ("POST", "/cases/{case}/publicity", "determined", {"chair", "admin"}),
    ("GET", "/cases/{case}/reopen", "in_publicity", {"chair"}),
    ("POST", "/cases/{case}/reopen", "in_publicity", {"chair"}),
    ("POST", "/cases/{case}/end-publicity", "in_publicity", {"admin"}),
    ("GET", "/cases/{case}/appeal", "appeal_window", {"officer"}),
    ("POST", "/cases/{case}/appeal", "appeal_window", {"officer"}),
    ("POST", "/cases/{case}/close-appeal-window", "appeal_window", {"admin"}),
    ("GET", "/cases/{case}/appeals/{appeal}/decide", "appeal_review", {"appeal"}),
    ("POST", "/cases/{case}/appeals/{appeal}/decide", "appeal_review", {"appeal"}),
    ("POST", "/cases/{case}/conclude", "appeal_review", {"appeal"}),
    ("POST", "/cases/{case}/refer", "final", {"chair", "admin"}),
    ("POST", "/cases/{case}/close", "final", {"chair", "admin"}),
    ("GET", "/cases/{case}/letters/{letter}.pdf", "final", VIEWERS),
    ("GET", "/cases/{case}/evidence/{evidence}", "final", VIEWERS),
    ("GET", "/admin/", None, {"admin", "t2_admin"}),
    ("GET", "/admin/branches", None, {"admin", "t2_admin"}),
    ("POST", "/admin/branches", None, {"admin", "t2_admin"}),
    ("GET", "/admin/users", None, {"admin", "t2_admin"}),
    ("GET", "/admin/users/{officer}", None, {"admin"}),
    ("POST", "/admin/users/{officer}", None, {"admin"}),
    ("POST", "/admin/branches/{outlet}", None, {"admin"}),
    ("POST", "/admin/users", None, {"admin", "t2_admin"}),
    ("GET", "/admin/rulesets", None, {"admin", "t2_admin"}),
    ("GET", "/admin/rulesets/1", None, {"admin", "t2_admin"}),
    ("POST", "/admin/rulesets/drafts", None, {"admin"}),
    ("GET", "/admin/rulesets/drafts/{draft}", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/publish", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/discard", None, {"admin"}),
    ("GET", "/admin/calendar", None, {"admin", "t2_admin"}),
    ("POST", "/admin/calendar", None, {"admin"}),
    ("GET", "/admin/tolerance", None, {"admin", "t2_admin"}),
    ("POST", "/admin/tolerance", None, {"admin", "t2_admin"}),
    ("GET", "/audit/", None, {"auditor", "t2_auditor"}),
    ("GET", "/audit/export", None, {"auditor", "t2_auditor"}),
    ("POST", "/audit/export", None, {"auditor", "t2_auditor"}),
    ("GET", "/audit/bundle", None, {"auditor", "t2_auditor"}),
    ("POST", "/audit/bundle", None, {"auditor", "t2_auditor"}),
    ("GET", "/audit/access-log", None, {"auditor", "t2_auditor"}),
    ("GET", "/dashboard/", None, DASHBOARD),
    ("GET", "/dashboard/export.xlsx", None, DASHBOARD),
]
# Routes every signed-in user (or anyone) may use, outside the matrix on purpose.
OPEN_ROUTES = {"/login", "/logout", "/language", "/account/password", "/health", "/"}
# Routes whose allowed call changes something by design, covered by their own tests below.
SEPARATELY_TESTED = {("POST", "admin.delete_override")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One database with a case in every state at T1, staff of every role at T1/head office and at T2."""
    tmp = tmp_path_factory.mktemp("authz")
    engine = make_engine(f"sqlite:///{tmp / 'authz.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine, n_loans=2 * len(STATES), loans_per_enterprise=2)
    with unit_of_work(engine) as s:
        for n, (username, role) in enumerate(OTHER_STAFF):
            u = User(username=username, name=username, employee_no=f"T2{n:03d}", branch_id=bank.branches["T2"],
                     roles=role)
            s.add(u)
            s.flush()
            bank.users[username] = u.id
    cases = {}
    for n, state in enumerate(STATES):
        cases[state] = drive(replace(bank, loans=bank.loans[2 * n:2 * n + 2]), state)
    with unit_of_work(engine) as s:  # an evidence file in the final case
        from workflow.services import investigation

        ev = investigation.add_evidence(s, s.get(Case, cases["final"]), bank.user(s, "investigator"),
                                        filename="a.txt", content_type="text/plain", data=b"evidence",
                                        storage_dir=str(tmp / "evidence"))
        evidence_id = ev.id
    with unit_of_work(engine) as s:  # a rule-set draft
        draft_id = rulesets.create_draft(s, bank.user(s, "admin")).id
    set_passwords(engine)
    app = make_app(engine, tmp)
    clients = {}
    for name in EVERYONE:
        client = app.test_client()
        assert login(client, name).status_code == 302, name
        clients[name] = client
    with Session(engine) as s:
        inv_case = cases["investigating"]
        r = s.exec(select(Respondent).where(Respondent.case_id == inv_case,
                                            Respondent.user_id == bank.users["officer"])).one()
        a = s.exec(select(LoanStage).where(LoanStage.user_id == r.user_id, LoanStage.stage == "pre_loan",
                                           LoanStage.loan_id == bank.loans[2])).one()
        fill = {
            "facts": f"{r.id}/{a.loan_id}/pre_loan",
            "appeal": s.exec(select(Appeal.id).where(Appeal.case_id == cases["appeal_review"])).one(),
            "letter": s.exec(select(Letter.id).where(Letter.case_id == cases["final"])).first(),
            "evidence": evidence_id,
            "officer": bank.users["officer"],
            "outlet": bank.branches["OU"],
            "draft": draft_id,
        }
    yield {"engine": engine, "bank": bank, "cases": cases, "clients": clients, "fill": fill}
    app.extensions["mianze.engine"].dispose()
    engine.dispose()


def _snapshot(engine):
    with Session(engine) as s:
        head = s.get(AuditHead, 1)
        return head.seq, sorted((c.id, c.state, c.version, c.legal_hold) for c in s.exec(select(Case)))


def _url(world, template: str, state: str | None) -> str:
    case_id = world["cases"][state] if state else 0
    return template.format(case=case_id, **world["fill"])


def _version(world, state):
    if state is None:
        return 0
    with Session(world["engine"]) as s:
        return s.get(Case, world["cases"][state]).version


@pytest.mark.parametrize("method,template,state,allowed", MATRIX,
                         ids=[f"{m} {t} [{s or '-'}]" for m, t, s, _ in MATRIX])
def test_each_route_allows_exactly_the_expected_roles_in_own_and_other_branches(world, method, template, state,
                                                                                 allowed):
    url = _url(world, template, state)
    unexpected = []
    for name in EVERYONE:
        client = world["clients"][name]
        before = _snapshot(world["engine"])
        if method == "GET":
            with client.get(url) as response:
                status = response.status_code
        else:  # a stale version: an allowed POST is refused as a conflict (409) or as invalid input (400)
            status = client.post(url, data={"csrf_token": client.csrf,
                                            "expected_version": str(_version(world, state) - 1)}).status_code
            assert _snapshot(world["engine"]) == before, f"{name}: POST {url} changed something ({status})"
        if name in allowed and status in (403, 404):
            unexpected.append(f"unexpected deny: {name} got {status}")
        if name not in allowed and status != 403:
            unexpected.append(f"unexpected allow: {name} got {status}")
    assert unexpected == []


def test_the_matrix_covers_every_route_of_the_web_application(world):
    app = world["clients"]["admin"].application
    adapter = app.url_map.bind("localhost")
    covered = set()
    for method, template, state, _ in MATRIX:
        endpoint, _ = adapter.match(_url(world, template, state).split("?")[0], method=method)
        covered.add((method, endpoint))
    routes = {(method, rule.endpoint) for rule in app.url_map.iter_rules()
              if not rule.rule.startswith(("/api/", "/static")) and rule.rule not in OPEN_ROUTES
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes - covered - SEPARATELY_TESTED == set()


def test_only_a_head_office_administrator_removes_a_calendar_override(world):
    from datetime import date

    from workflow.models import CalendarOverride
    from workflow.services import accounts

    with unit_of_work(world["engine"]) as s:
        accounts.set_calendar_override(s, world["bank"].user(s, "admin"), date(2031, 1, 2), False, "元旦调休")
    for name in EVERYONE:
        if name == "admin":
            continue
        client = world["clients"][name]
        status = client.post("/admin/calendar/2031-01-02/delete", data={"csrf_token": client.csrf}).status_code
        assert status == 403, name
    with Session(world["engine"]) as s:
        assert s.get(CalendarOverride, date(2031, 1, 2)) is not None
    client = world["clients"]["admin"]
    assert client.post("/admin/calendar/2031-01-02/delete", data={"csrf_token": client.csrf}).status_code == 302
    with Session(world["engine"]) as s:
        assert s.get(CalendarOverride, date(2031, 1, 2)) is None


def test_the_case_page_offers_an_action_only_to_those_allowed_to_take_it(world):
    url = f"/cases/{world['cases']['under_review']}"
    offered = {name for name in EVERYONE
               if 'id="action-vote"' in world["clients"][name].get(url).get_data(as_text=True)}
    assert offered == {"member1", "chair"}


# --- segregation of duties -------------------------------------------------------------------------------

def _give_role(engine, user_id: int, role: str) -> None:
    with unit_of_work(engine) as s:
        u = s.get(User, user_id)
        u.roles = f"{u.roles} {role}"
        s.add(u)


@pytest.fixture
def small(tmp_path, app_for):
    engine = make_engine(f"sqlite:///{tmp_path / 'sod.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine)
    set_passwords(engine)
    yield bank, app_for
    engine.dispose()


def _client(bank, app_for, username):
    app = app_for(bank.engine)
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def _stale_post(client, url, data=None):
    return client.post(url, data={"csrf_token": client.csrf, "expected_version": "0", **(data or {})})


def test_a_respondent_who_sits_on_the_committee_may_not_vote_on_their_own_case(small):
    bank, tmp = small
    _give_role(bank.engine, bank.users["approver"], "committee_member")
    case_id = drive(bank, "under_review")
    client = _client(bank, tmp, "approver")
    assert client.get(f"/cases/{case_id}/vote").status_code == 403
    assert _stale_post(client, f"/cases/{case_id}/vote").status_code == 403
    assert 'id="action-vote"' not in client.get(f"/cases/{case_id}").get_data(as_text=True)


def test_the_investigator_of_a_case_may_not_vote_on_it(small):
    bank, tmp = small
    _give_role(bank.engine, bank.users["investigator"], "committee_member")
    case_id = drive(bank, "under_review")
    client = _client(bank, tmp, "investigator")
    assert client.get(f"/cases/{case_id}/vote").status_code == 403
    assert _stale_post(client, f"/cases/{case_id}/vote").status_code == 403


def test_a_respondent_who_chairs_the_committee_may_not_determine_their_own_case(small):
    bank, tmp = small
    _give_role(bank.engine, bank.users["approver"], "committee_chair")
    case_id = drive(bank, "under_review")
    client = _client(bank, tmp, "approver")
    assert client.get(f"/cases/{case_id}/determine").status_code == 403


def test_a_respondent_is_never_offered_as_investigator_and_cannot_be_assigned(small):
    bank, tmp = small
    _give_role(bank.engine, bank.users["officer"], "investigator")
    case_id = drive(bank, "registered")
    client = _client(bank, tmp, "chair")
    page = client.get(f"/cases/{case_id}/assign").get_data(as_text=True)
    assert f'value="{bank.users["officer"]}"' not in page
    with Session(bank.engine) as s:
        version = s.get(Case, case_id).version
    response = client.post(f"/cases/{case_id}/assign", data={"csrf_token": client.csrf,
                                                               "expected_version": str(version),
                                                               "investigator_id": str(bank.users["officer"])})
    assert response.status_code in (403, 409)
    with Session(bank.engine) as s:
        assert s.get(Case, case_id).state == "registered"


def test_an_appeal_reviewer_who_voted_on_the_case_may_not_review_its_appeals(small):
    bank, tmp = small
    _give_role(bank.engine, bank.users["member1"], "appeal_reviewer")
    case_id = drive(bank, "appeal_review")
    with Session(bank.engine) as s:
        appeal_id = s.exec(select(Appeal.id).where(Appeal.case_id == case_id)).one()
    client = _client(bank, tmp, "member1")
    assert client.get(f"/cases/{case_id}/appeals/{appeal_id}/decide").status_code == 403
    assert _stale_post(client, f"/cases/{case_id}/conclude").status_code == 403


def test_a_respondent_may_appeal_only_for_themselves(small):
    bank, tmp = small
    case_id = drive(bank, "appeal_window")
    client = _client(bank, tmp, "reviewer")  # another respondent of the same case
    client.post(f"/cases/{case_id}/appeal", data={"csrf_token": client.csrf, "grounds": "我的申诉",
                                                    "expected_version": "999"})
    with Session(bank.engine) as s:
        appeals = s.exec(select(Appeal).where(Appeal.case_id == case_id)).all()
        mine = s.exec(select(Respondent).where(Respondent.user_id == bank.users["reviewer"],
                                               Respondent.case_id == case_id)).one()
    assert all(a.respondent_id == mine.id for a in appeals)


def test_evidence_of_one_case_is_not_served_under_another(world):
    client = world["clients"]["auditor"]
    other_case = world["cases"]["registered"]
    assert client.get(f"/cases/{other_case}/evidence/{world['fill']['evidence']}").status_code == 404
    with Session(world["engine"]) as s:
        assert s.get(Evidence, world["fill"]["evidence"]).case_id == world["cases"]["final"]
