"""Authorisation matrix: one table of who may take which action on a case, run at every door.

`CASE_MATRIX` says, for each action on a case, in which state it is tried and who may take it; it runs
against the services (the verb called in a unit of work that is rolled back), the web (every route of the
action) and the API (the operation of the action), for every role in its own branch (tier-1 branch T1 and
head office) and in another (T2). `SOD` adds the segregation-of-duties relations: a respondent, the case's
investigator, a stage handler and an original decider who also hold the role the action needs. Each denial
carries the policy's reason, and the three doors give the same one. Routes outside cases (administration,
audit, dashboard) are web-only rows of `MATRIX`.

A denied request answers 403 (the API: 404 outside the caller's scope, as if the case did not exist) and
changes nothing; an allowed one does not answer 403 (web and API requests here send a stale case version,
so an allowed one answers 409 and changes nothing either).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from sqlmodel import Session, SQLModel, select

from tests.factories import drive, make_bank
from tests.web.support import login, make_app, set_passwords
from workflow.db import make_engine, unit_of_work, writer
from workflow.domain.errors import DomainError, PermissionDenied
from workflow.models import Appeal, AuditHead, Case, CaseLoan, Evidence, Letter, LoanStage, Respondent, User
from workflow.services import cases, guidance, hr, investigation, letters, rulesets, tokens

OWN = ("officer", "investigator", "member1", "chair", "appeal", "appeal_chair", "auditor", "admin")
OTHER = ("t2_officer", "t2_investigator", "other_member", "t2_chair", "t2_appeal", "t2_auditor", "t2_admin")
EVERYONE = OWN + OTHER
OTHER_STAFF = [("t2_officer", "credit_officer"), ("t2_investigator", "investigator"), ("t2_chair", "committee_chair"),
               ("t2_appeal", "appeal_reviewer"), ("t2_auditor", "auditor"), ("t2_admin", "admin")]
STATES = ("registered", "investigating", "under_review", "determined", "in_publicity", "appeal_window",
          "appeal_review", "final")

VIEWERS = set(OWN) | {"t2_auditor"}
DASHBOARD = {"chair", "appeal", "appeal_chair", "auditor", "admin", "t2_chair", "t2_appeal", "t2_auditor", "t2_admin"}
# (method, route template, state of the case used, who is allowed). {case}, {facts}, {appeal}, {evidence},
# {letter} are filled in from that case.
# action -> (state of the case it is tried on, who may take it)
CASE_MATRIX: dict[str, tuple[str, set[str]]] = {
    "assign": ("registered", {"investigator", "chair", "admin"}),
    "statement": ("registered", {"officer"}),
    "evidence": ("investigating", {"officer", "investigator"}),
    "facts": ("investigating", {"investigator"}),
    "submit": ("investigating", {"investigator"}),
    "reevaluate": ("investigating", {"chair", "admin"}),
    "withdraw": ("registered", {"chair", "admin"}),
    "legal_hold": ("registered", {"auditor", "admin", "t2_auditor"}),
    "vote": ("under_review", {"member1", "chair"}),
    "determine": ("under_review", {"chair"}),
    "return": ("under_review", {"member1", "chair"}),
    "issue_letters": ("determined", {"chair", "admin"}),
    "start_publicity": ("determined", {"chair", "admin"}),
    "reopen": ("in_publicity", {"chair"}),
    "end_publicity": ("in_publicity", {"admin"}),
    "appeal": ("appeal_window", {"officer"}),
    "close_appeal_window": ("appeal_window", {"admin"}),
    "appeal_vote": ("appeal_review", {"appeal", "appeal_chair"}),
    "decide_appeal": ("appeal_review", {"appeal_chair"}),
    "conclude": ("appeal_review", {"appeal", "appeal_chair"}),
    "refer": ("final", {"chair", "admin"}),
    "close": ("final", {"chair", "admin"}),
    "record_service": ("in_publicity", {"chair", "admin"}),
    "acknowledge": ("in_publicity", {"officer"}),
    "waive_appeal": ("appeal_window", {"officer"}),
    "preview_documents": ("determined", {"chair", "admin"}),
    "urge": ("investigating", {"chair", "admin"}),  # the branch's chair (or one above) and head office
    "propose_precedent": ("final", {"chair", "admin"}),  # a chair of the branch (or above), head-office admin
    "record_sanctions": ("final", {"admin"}),  # an administrator whose scope holds the case (HR's result)
}
# action -> its web routes
WEB_ROUTES: dict[str, list[tuple[str, str]]] = {
    "assign": [("GET", "/cases/{case}/assign"), ("POST", "/cases/{case}/assign")],
    "statement": [("GET", "/cases/{case}/statement"), ("POST", "/cases/{case}/statement"),
                  ("POST", "/cases/{case}/statement/decline")],
    "evidence": [("GET", "/cases/{case}/evidence"), ("POST", "/cases/{case}/evidence")],
    "facts": [("GET", "/cases/{case}/facts/{facts}"), ("POST", "/cases/{case}/facts/{facts}")],
    "submit": [("POST", "/cases/{case}/submit")],
    "reevaluate": [("GET", "/cases/{case}/reevaluate"), ("POST", "/cases/{case}/reevaluate")],
    "withdraw": [("GET", "/cases/{case}/withdraw"), ("POST", "/cases/{case}/withdraw")],
    "legal_hold": [("GET", "/cases/{case}/legal-hold"), ("POST", "/cases/{case}/legal-hold")],
    "vote": [("GET", "/cases/{case}/vote"), ("POST", "/cases/{case}/vote")],
    "determine": [("GET", "/cases/{case}/determine"), ("POST", "/cases/{case}/determine")],
    "return": [("GET", "/cases/{case}/return"), ("POST", "/cases/{case}/return")],
    "issue_letters": [("POST", "/cases/{case}/letters")],
    "start_publicity": [("POST", "/cases/{case}/publicity")],
    "reopen": [("GET", "/cases/{case}/reopen"), ("POST", "/cases/{case}/reopen")],
    "end_publicity": [("POST", "/cases/{case}/end-publicity")],
    "appeal": [("GET", "/cases/{case}/appeal"), ("POST", "/cases/{case}/appeal")],
    "close_appeal_window": [("POST", "/cases/{case}/close-appeal-window")],
    "appeal_vote": [("GET", "/cases/{case}/appeals/{appeal}/vote"),
                    ("POST", "/cases/{case}/appeals/{appeal}/vote")],
    "decide_appeal": [("GET", "/cases/{case}/appeals/{appeal}/decide"),
                      ("POST", "/cases/{case}/appeals/{appeal}/decide")],
    "conclude": [("POST", "/cases/{case}/conclude")],
    "refer": [("POST", "/cases/{case}/refer")],
    "close": [("POST", "/cases/{case}/close")],
    "record_service": [("POST", "/cases/{case}/letters/{det_letter}/service")],
    "acknowledge": [("POST", "/cases/{case}/letters/{det_letter}/acknowledge")],
    "waive_appeal": [("GET", "/cases/{case}/waive"), ("POST", "/cases/{case}/waive")],
    "preview_documents": [("GET", "/cases/{case}/preview/minutes")],
    "urge": [("GET", "/cases/{case}/urge"), ("POST", "/cases/{case}/urge")],
    "propose_precedent": [("POST", "/precedents/propose/{case}")],
    "record_sanctions": [("POST", "/cases/{case}/sanctions")],  # no person chosen: nothing recorded
}
# action -> the API's operation (method, path, body); {version} is a stale case version. Evidence, re-evaluation
# and legal holds have no API operation.
_EVENT = {"assign": "assign_investigator", "submit": "submit_investigation", "return": "return_for_investigation",
          "determine": "determine", "start_publicity": "start_publicity", "reopen": "reopen",
          "end_publicity": "end_publicity", "close_appeal_window": "close_appeal_window",
          "conclude": "conclude_appeals", "refer": "refer_for_accountability", "close": "close",
          "withdraw": "withdraw"}
_PAYLOAD = {"assign": {"investigator_id": "{investigator_id}"}, "return": {"reason": "需补充调查"},
            "reopen": {"reason": "有实质性异议"}, "withdraw": {"reason": "贷款已收回"}}
API_CALLS: dict[str, tuple[str, str, dict | None]] = {
    **{a: ("POST", "/api/v1/cases/{case}/events", {"event": e, "payload": _PAYLOAD.get(a, {}),
                                                   "expected_version": "{version}"}) for a, e in _EVENT.items()},
    "statement": ("POST", "/api/v1/cases/{case}/statement", {"statement": "我已尽职", "expected_version": "{version}"}),
    "facts": ("PUT", "/api/v1/cases/{case}/respondents/{respondent}/facts",
              {"loan_id": "{loan}", "stage": "pre_loan", "expected_version": "{version}",
               "facts": {"positive": [], "mitigating": [], "negative": [], "violation": False, "unperformed": [],
                         "dissented": False}}),
    "vote": ("POST", "/api/v1/cases/{case}/votes",
             {"respondent_id": "{respondent}", "outcome": "exempt", "expected_version": "{version}"}),
    "issue_letters": ("POST", "/api/v1/cases/{case}/letters", None),
    "appeal": ("POST", "/api/v1/cases/{case}/appeals", {"grounds": "我已尽职", "expected_version": "{version}"}),
    "appeal_vote": ("POST", "/api/v1/cases/{case}/appeals/{appeal}/votes",
                    {"decision": "upheld", "reason": "事实清楚", "expected_version": "{version}"}),
    "decide_appeal": ("POST", "/api/v1/cases/{case}/appeals/{appeal}/decision",
                      {"reason": "事实清楚", "expected_version": "{version}"}),
    "record_service": ("POST", "/api/v1/letters/{det_letter}/service",
                       {"method": "in_person", "served_on": "{today}", "expected_version": "{version}"}),
    "acknowledge": ("POST", "/api/v1/letters/{det_letter}/acknowledgement", {"expected_version": "{version}"}),
    "waive_appeal": ("POST", "/api/v1/cases/{case}/waiver", {"statement": "放弃申诉", "expected_version": "{version}"}),
    "urge": ("POST", "/api/v1/cases/{case}/urges", {"message": "请尽快办理。"}),
    "record_sanctions": ("POST", "/api/v1/cases/{case}/sanctions", {"respondent_id": "{respondent}", "points": 1}),
}
# Segregation of duties: (action, case, who, the policy's reason). "sod:<state>" cases are investigated by
# `inv2` (who also chairs, sits on the committee and reviews appeals) and determined by `chair2` (who also
# reviews appeals); `approver` handled a stage of every case's loans (so is a respondent) and also chairs,
# sits on the committee, administers T1 and reviews appeals.
SOD = [
    ("withdraw", "registered", "approver", "own_case"),  # a respondent who is also chair withdraws his own case
    ("assign", "registered", "approver", "own_case"),  # a respondent assigns the investigator of his own case
    ("return", "under_review", "approver", "own_case"),  # a respondent returns the case (wiping the votes)
    ("determine", "under_review", "approver", "own_case"),
    ("vote", "under_review", "approver", "own_case"),
    ("return", "sod:under_review", "inv2", "recused"),  # the case's own investigator returns the case
    ("vote", "sod:under_review", "inv2", "recused"),
    ("determine", "sod:under_review", "inv2", "recused"),
    ("reopen", "sod:in_publicity", "inv2", "recused"),  # a recused investigator who is also chair reopens
    ("conclude", "sod:appeal_review", "chair2", "conflicted"),  # a reviewer who signed the determination
    ("decide_appeal", "sod:appeal_review", "chair2", "conflicted"),
    ("decide_appeal", "sod:appeal_review", "inv2", "conflicted"),
    ("decide_appeal", "appeal_review", "approver", "own_case"),
    ("appeal_vote", "sod:appeal_review", "chair2", "conflicted"),  # signed the determination: recused
    ("appeal_vote", "sod:appeal_review", "inv2", "conflicted"),
    ("appeal_vote", "appeal_review", "approver", "own_case"),
    ("decide_appeal", "appeal_review", "appeal", "not_panel_chair"),  # a reviewer alone never signs
    ("end_publicity", "in_publicity", "officer", "own_case"),  # a respondent, an auditor or a member
    ("end_publicity", "in_publicity", "auditor", "not_yours"),  # ends publicity or closes the appeal window
    ("end_publicity", "in_publicity", "member1", "not_yours"),
    ("close_appeal_window", "appeal_window", "officer", "own_case"),
    ("close_appeal_window", "appeal_window", "auditor", "not_yours"),
    ("close_appeal_window", "appeal_window", "member1", "not_yours"),
    ("legal_hold", "registered", "officer", "own_case"),
    ("record_service", "in_publicity", "approver", "own_case"),  # a respondent who chairs serves his own letter
    ("urge", "registered", "approver", "own_case"),  # a respondent who chairs urges his own case
    ("propose_precedent", "final", "approver", "own_case"),  # a respondent who chairs proposes his own case
]
SOD_STAFF = ("approver", "inv2", "chair2")
SOD_STATES = ("registered", "under_review", "in_publicity", "appeal_review")

MATRIX = [
    ("GET", "/inbox", None, set(EVERYONE)),
    ("GET", "/inbox?tab=all", None, set(EVERYONE)),
    ("GET", "/notifications", None, set(EVERYONE)),
    ("POST", "/notifications/read", None, set(EVERYONE)),
    ("GET", "/account", None, set(EVERYONE)),
    ("GET", "/cases/new", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("POST", "/cases/new", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    # The NPL intake list: those who register cases (an unknown enterprise: refused, or told it has no NPLs).
    ("GET", "/intake/", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("POST", "/intake/999999/register", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("POST", "/intake/999999/dismiss", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    # Background jobs: everyone has a list of their own; a committee's chair and administrators start batches.
    ("GET", "/jobs/", None, set(EVERYONE)),
    ("GET", "/jobs/letter-batch", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("POST", "/jobs/letter-batch", None, {"chair", "admin", "t2_chair", "t2_admin"}),
    ("GET", "/cases/{case}", "registered", VIEWERS),
    ("GET", "/cases/{case}", "final", VIEWERS),
    *[(method, route, CASE_MATRIX[action][0], CASE_MATRIX[action][1])
      for action, routes in WEB_ROUTES.items() for method, route in routes],
    # need to know: the officer (a respondent) reads their own letter and the publicity notice, not the minutes
    # (they name the votes) nor a co-respondent's letter or evidence
    ("GET", "/cases/{case}/letters/{letter}.pdf", "final", VIEWERS - {"officer"}),
    ("GET", "/cases/{case}/case-file.pdf", "final", VIEWERS - {"officer"}),  # the whole file: not a respondent
    ("GET", "/cases/{case}/letters/{det_letter}.pdf", "final", VIEWERS),
    ("GET", "/cases/{case}/letters/{notice}.pdf", "final", VIEWERS),
    ("GET", "/cases/{case}/letters/{their_letter}.pdf", "final", VIEWERS - {"officer"}),
    ("GET", "/cases/{case}/evidence/{evidence}", "final", VIEWERS),
    ("GET", "/cases/{case}/evidence/{their_evidence}", "final", VIEWERS - {"officer"}),
    ("GET", "/cases/{case}/evidence/{pdf_evidence}/preview", "final", VIEWERS),
    ("GET", "/cases/{case}/evidence/{their_pdf}/preview", "final", VIEWERS - {"officer"}),
    # comments are the staff's (policy.reads_comments): a respondent of the case neither reads nor writes them
    ("GET", "/cases/{case}/comments", "final", VIEWERS - {"officer"}),
    ("POST", "/cases/{case}/comments", "final", VIEWERS - {"officer"}),  # no text: 400, nothing added
    # the referral record and the sanctions: everyone who sees the case (a respondent: their own rows)
    ("GET", "/cases/{case}/accountability", "final", VIEWERS),
    ("GET", "/admin/", None, {"admin", "t2_admin"}),
    ("GET", "/admin/branches", None, {"admin", "t2_admin"}),
    ("POST", "/admin/branches", None, {"admin", "t2_admin"}),
    ("GET", "/admin/users", None, {"admin", "t2_admin"}),
    ("GET", "/admin/users/{officer}", None, {"admin"}),
    ("POST", "/admin/users/{officer}", None, {"admin"}),
    ("POST", "/admin/branches/{outlet}", None, {"admin"}),
    ("POST", "/admin/branches/{outlet}/webhook", None, {"admin"}),  # nothing set: nothing removed
    ("GET", "/admin/notifications", None, {"admin"}),  # head office only: deliveries of the whole bank
    ("POST", "/admin/users", None, {"admin", "t2_admin"}),
    ("POST", "/admin/users/import", None, {"admin", "t2_admin"}),  # no file: 400, nothing imported
    # the officer has no open invitation: revoking says so and changes nothing; only their subtree's administrator
    ("POST", "/admin/users/{officer}/invite/revoke", None, {"admin"}),
    ("GET", "/admin/rulesets", None, {"admin", "t2_admin"}),
    ("GET", "/admin/rulesets/1", None, {"admin", "t2_admin"}),
    ("POST", "/admin/rulesets/drafts", None, {"admin"}),
    ("GET", "/admin/rulesets/drafts/{draft}", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/items", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/items/retire", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/submit", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/publish", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/reject", None, {"admin"}),
    ("POST", "/admin/rulesets/drafts/{draft}/discard", None, {"admin"}),
    ("GET", "/admin/timer", None, {"admin", "t2_admin"}),
    ("POST", "/admin/timer", None, {"admin"}),  # head office only: the timer acts on the whole bank
    ("GET", "/admin/calendar", None, {"admin", "t2_admin"}),
    ("POST", "/admin/calendar", None, {"admin"}),
    ("POST", "/admin/calendar/schedule", None, {"admin"}),  # a year's schedule: head office (no year: 400)
    ("GET", "/admin/tolerance", None, {"admin", "t2_admin"}),
    ("POST", "/admin/tolerance", None, {"admin", "t2_admin"}),
    ("GET", "/admin/documents/", None, {"admin", "t2_admin"}),
    ("POST", "/admin/documents/", None, {"admin"}),
    ("POST", "/admin/documents/organs/{outlet}", None, {"admin"}),
    ("GET", "/audit/", None, {"auditor", "t2_auditor"}),
    ("GET", "/audit/export", None, {"auditor", "t2_auditor"}),
    ("POST", "/audit/export", None, {"auditor", "t2_auditor"}),
    ("GET", "/audit/bundle", None, {"auditor", "t2_auditor"}),
    ("POST", "/audit/bundle", None, {"auditor", "t2_auditor"}),
    ("GET", "/audit/access-log", None, {"auditor", "t2_auditor"}),
    # the HR list: head-office administrators and internal auditors (policy.why_not_hr_export); no reason: 400
    ("GET", "/hr/", None, {"admin", "auditor", "t2_auditor"}),
    ("GET", "/hr/export", None, {"admin", "auditor", "t2_auditor"}),
    ("POST", "/hr/export", None, {"admin", "auditor", "t2_auditor"}),
    ("GET", "/dashboard/", None, DASHBOARD),
    # the exports: a GET only returns to the page; a POST without its reason is refused and returns there
    ("GET", "/dashboard/export.xlsx", None, DASHBOARD),
    ("POST", "/dashboard/export.xlsx", None, DASHBOARD),
    ("GET", "/dashboard/consistency", None, DASHBOARD),  # the like cases: auditors and head office only
    ("GET", "/dashboard/consistency.xlsx", None, DASHBOARD),
    ("POST", "/dashboard/consistency.xlsx", None, DASHBOARD),
    # The precedent library: approved precedents are guidance for everyone; the world's precedent was
    # proposed by `chair` and approved by `admin`, so deciding it again is a conflict (409) for a second
    # curator and refused to its proposer (self-approval).
    ("GET", "/precedents/", None, set(EVERYONE)),
    ("GET", "/whatif/", None, set(EVERYONE)),  # a simulation: nothing of any case is read or stored
    # the role guides, in the user's language: for everyone signed in
    ("GET", "/help/", None, set(EVERYONE)),
    *[("GET", f"/help/{guide}", None, set(EVERYONE)) for guide in
      ("credit-officer", "investigator", "committee", "appeal-reviewer", "auditor", "admin")],
    ("GET", "/precedents/{precedent}", None, set(EVERYONE)),
    ("GET", "/precedents/booklet.pdf", None, set(EVERYONE)),
    ("GET", "/precedents/export.xlsx", None, set(EVERYONE)),
    ("POST", "/precedents/booklet.pdf", None, set(EVERYONE)),
    ("POST", "/precedents/export.xlsx", None, set(EVERYONE)),
    ("POST", "/precedents/{precedent}", None, {"chair", "admin"}),
    ("POST", "/precedents/{precedent}/approve", None, {"admin"}),
    ("POST", "/precedents/{precedent}/reject", None, {"admin"}),
]
# Routes every signed-in user (or anyone) may use, outside the matrix on purpose.
OPEN_ROUTES = {"/login", "/logout", "/language", "/account/password", "/health", "/",
               "/invite/<token>"}  # an invitation's link: its token is the credential (tests/web/test_invitations.py)
# Routes whose allowed call changes something by design, covered by their own tests below.
SEPARATELY_TESTED = {("POST", "admin.delete_override"),
                     # a job's page, its rerun and its file: tests/web/test_jobs_pages.py, services/test_export.py
                     ("GET", "jobs.show"), ("POST", "jobs.retry"), ("GET", "jobs.download"),
                     # the signed-in user's own stand-ins (tests/web/test_stand_in_pages.py)
                     ("GET", "auth.stand_in_list"), ("POST", "auth.name_stand_in"), ("POST", "auth.revoke_stand_in"),
                     ("POST", "auth.account"), ("POST", "admin.resend_delivery"),  # tests/web/test_outbox_pages.py
                     ("POST", "admin.invite_user")}  # a new invitation: tests/web/test_invitations.py


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One database with a case in every state at T1, staff of every role at T1/head office and at T2."""
    tmp = tmp_path_factory.mktemp("authz")
    engine = make_engine(f"sqlite:///{tmp / 'authz.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine, n_loans=2 * (len(STATES) + len(SOD_STATES)), loans_per_enterprise=2)
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
    # Staff with conflicting duties, added once the cases above are decided (they would count in their quorum).
    with unit_of_work(engine) as s:
        approver = s.get(User, bank.users["approver"])
        approver.roles = "credit_officer committee_chair committee_member admin appeal_reviewer"
        for n, (username, roles) in enumerate((("inv2", "investigator committee_chair committee_member appeal_reviewer"),
                                                ("chair2", "committee_chair appeal_reviewer"))):
            u = User(username=username, name=username, employee_no=f"SD{n:03d}", branch_id=bank.branches["T1"],
                     roles=roles)
            s.add(u)
            s.flush()
            bank.users[username] = u.id
    sod_bank = replace(bank, users={**bank.users, "investigator": bank.users["inv2"], "chair": bank.users["chair2"]})
    for n, state in enumerate(SOD_STATES, start=len(STATES)):
        cases[f"sod:{state}"] = drive(replace(sod_bank, loans=bank.loans[2 * n:2 * n + 2]), state)
    with unit_of_work(engine) as s:  # an evidence file in the final case
        from workflow.services import investigation

        ev = investigation.add_evidence(s, s.get(Case, cases["final"]), bank.user(s, "investigator"),
                                        filename="a.txt", content_type="text/plain", data=b"evidence",
                                        storage_dir=str(tmp / "evidence"))
        evidence_id = ev.id
        final = s.get(Case, cases["final"])
        theirs = s.exec(select(Respondent).where(Respondent.case_id == final.id,
                                                 Respondent.user_id == bank.users["approver"])).one()
        officer_appeal = s.exec(select(Appeal).where(Appeal.case_id == final.id)).one()
        # evidence attached to a co-respondent (the approver) and to the officer's appeal (need to know)
        theirs_evidence = investigation.add_evidence(s, final, bank.user(s, "investigator"), filename="b.txt",
                                                     content_type="text/plain", data=b"theirs",
                                                     storage_dir=str(tmp / "evidence"), respondent_id=theirs.id).id
        # PDF files, which the browser previews: one of the whole case, one attached to the co-respondent
        pdf_evidence = investigation.add_evidence(s, final, bank.user(s, "investigator"), filename="d.pdf",
                                                  content_type="application/pdf", data=b"%PDF-1.7 case",
                                                  storage_dir=str(tmp / "evidence")).id
        their_pdf = investigation.add_evidence(s, final, bank.user(s, "investigator"), filename="e.pdf",
                                               content_type="application/pdf", data=b"%PDF-1.7 theirs",
                                               storage_dir=str(tmp / "evidence"), respondent_id=theirs.id).id
        appeal_evidence = investigation.add_evidence(s, final, bank.user(s, "investigator"), filename="c.txt",
                                                     content_type="text/plain", data=b"appeal",
                                                     storage_dir=str(tmp / "evidence"),
                                                     appeal_id=officer_appeal.id).id
    with unit_of_work(engine) as s:  # a rule-set draft
        draft_id = rulesets.create_draft(s, bank.user(s, "admin")).id
    with unit_of_work(engine) as s:  # a precedent from the final case's reviewer, proposed and approved
        final = s.get(Case, cases["final"])
        reviewer = s.exec(select(Respondent).where(Respondent.case_id == final.id,
                                                   Respondent.user_id == bank.users["reviewer"])).one()
        precedent_id = guidance.propose(s, final, bank.user(s, "chair"), reviewer.id).id
        guidance.approve(s, precedent_id, bank.user(s, "admin"))
    set_passwords(engine)
    app = make_app(engine, tmp)
    clients = {}
    for name in EVERYONE + SOD_STAFF:
        client = app.test_client()
        assert login(client, name).status_code == 302, name
        clients[name] = client
    with unit_of_work(engine) as s:
        api_tokens = {name: tokens.create(s, None, bank.users[name], f"{name} matrix")[1]
                      for name in EVERYONE + SOD_STAFF}
    with Session(engine) as s:
        inv_case = cases["investigating"]
        r = s.exec(select(Respondent).where(Respondent.case_id == inv_case,
                                            Respondent.user_id == bank.users["officer"])).one()
        a = s.exec(select(LoanStage).where(LoanStage.user_id == r.user_id, LoanStage.stage == "pre_loan",
                                           LoanStage.loan_id == bank.loans[2])).one()
        fill = {
            "facts": f"{r.id}/{a.loan_id}/pre_loan",
            "appeal": s.exec(select(Appeal.id).where(Appeal.case_id == cases["appeal_review"])).one(),
            "letter": s.exec(select(Letter.id).where(Letter.case_id == cases["final"],
                                                     Letter.kind == "minutes")).first(),
            "notice": s.exec(select(Letter.id).where(Letter.case_id == cases["final"],
                                                     Letter.kind == "publicity_notice")).first(),
            "their_letter": letters.current(s, "determination", cases["final"], theirs.id).id,
            "their_respondent": theirs.id,
            "officer_appeal_record": s.exec(select(Letter.id).where(Letter.case_id == cases["final"],
                                                                    Letter.kind == "appeal_record")).first(),
            "evidence": evidence_id,
            "their_evidence": theirs_evidence,
            "pdf_evidence": pdf_evidence,
            "their_pdf": their_pdf,
            "appeal_evidence": appeal_evidence,
            "officer": bank.users["officer"],
            "outlet": bank.branches["OU"],
            "draft": draft_id,
            "precedent": precedent_id,
            "investigator_id": bank.users["investigator"],
            "today": date.today().isoformat(),
            "det_letter": 0,
        }
        per_case = {}
        for key, case_id in cases.items():
            mine = s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                                   Respondent.user_id == bank.users["officer"])).one()
            stage = s.exec(select(LoanStage).where(LoanStage.user_id == mine.user_id, LoanStage.stage == "pre_loan")
                           .join(CaseLoan, CaseLoan.loan_id == LoanStage.loan_id)
                           .where(CaseLoan.case_id == case_id)).first()
            appeal = s.exec(select(Appeal.id).where(Appeal.case_id == case_id)).first()
            letter = letters.current(s, "determination", case_id, mine.id)
            per_case[key] = {"respondent": mine.id, "loan": stage.loan_id,
                             "facts": f"{mine.id}/{stage.loan_id}/pre_loan",
                             **({"appeal": appeal} if appeal else {}), **({"det_letter": letter.id} if letter else {})}
    yield {"engine": engine, "bank": bank, "cases": cases, "clients": clients, "fill": fill, "per_case": per_case,
           "app": app, "tokens": api_tokens, "tmp": tmp}
    app.extensions["mianze.engine"].dispose()
    engine.dispose()


def _snapshot(engine):
    with Session(engine) as s:
        head = s.get(AuditHead, 1)
        return head.seq, sorted((c.id, c.state, c.version, c.legal_hold) for c in s.exec(select(Case)))


def _fill(world, state: str | None) -> dict:
    """What fills a route template for the case used in `state` (a state, or "sod:<state>")."""
    return {**world["fill"], **(world["per_case"][state] if state else {}),
            "case": world["cases"][state] if state else 0}


def _url(world, template: str, state: str | None) -> str:
    return template.format(**_fill(world, state))


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


# --- the same table at the services' and the API's doors ------------------------------------------------------

def _clean_facts() -> dict:
    return {"positive": [], "mitigating": [], "negative": [], "violation": False, "unperformed": [], "dissented": False}


SERVICE_CALLS = {
    "assign": lambda s, w, f, case, u: cases.assign_investigator(s, case, u, f["investigator_id"]),
    "statement": lambda s, w, f, case, u: cases.file_statement(s, case, u, "我已尽职"),
    "evidence": lambda s, w, f, case, u: investigation.add_evidence(
        s, case, u, filename="e.txt", content_type="text/plain", data=b"evidence",
        storage_dir=str(w["tmp"] / "evidence")),
    "facts": lambda s, w, f, case, u: investigation.record_facts(s, case, u, f["respondent"], f["loan"], "pre_loan",
                                                                 _clean_facts()),
    "submit": lambda s, w, f, case, u: cases.submit_investigation(s, case, u),
    "reevaluate": lambda s, w, f, case, u: cases.reevaluate(s, case, u, 1, "更正后的清单"),
    "withdraw": lambda s, w, f, case, u: cases.withdraw(s, case, u, "贷款已收回"),
    "legal_hold": lambda s, w, f, case, u: cases.set_legal_hold(s, case, u, True, "诉讼保全"),
    "vote": lambda s, w, f, case, u: cases.record_vote(s, case, u, f["respondent"], "exempt"),
    "determine": lambda s, w, f, case, u: cases.determine(s, case, u),
    "return": lambda s, w, f, case, u: cases.return_for_investigation(s, case, u, "需补充调查"),
    "issue_letters": lambda s, w, f, case, u: letters.issue_determination_letters(s, case, u),
    "start_publicity": lambda s, w, f, case, u: cases.start_publicity(s, case, u),
    "reopen": lambda s, w, f, case, u: cases.reopen(s, case, u, "有实质性异议"),
    "end_publicity": lambda s, w, f, case, u: cases.end_publicity(s, case, u),
    "appeal": lambda s, w, f, case, u: cases.file_appeal(s, case, u, "我已尽职"),
    "close_appeal_window": lambda s, w, f, case, u: cases.close_appeal_window(s, case, u),
    "appeal_vote": lambda s, w, f, case, u: cases.record_appeal_vote(s, case, u, f["appeal"], "upheld", None, "事实清楚"),
    "decide_appeal": lambda s, w, f, case, u: cases.decide_appeal(s, case, u, f["appeal"], "事实清楚"),
    "conclude": lambda s, w, f, case, u: cases.conclude_appeals(s, case, u),
    "refer": lambda s, w, f, case, u: cases.refer_for_accountability(s, case, u),
    "close": lambda s, w, f, case, u: cases.close(s, case, u),
    "record_service": lambda s, w, f, case, u: letters.record_service(s, case, u, f["det_letter"], "in_person",
                                                                      date.today()),
    "acknowledge": lambda s, w, f, case, u: letters.acknowledge(s, case, u, f["det_letter"]),
    "waive_appeal": lambda s, w, f, case, u: cases.waive_appeal(s, case, u, "放弃申诉"),
    "preview_documents": lambda s, w, f, case, u: letters.preview(s, case, u, "minutes"),
    "urge": lambda s, w, f, case, u: cases.urge(s, case, u, "请尽快办理。"),
    "propose_precedent": lambda s, w, f, case, u: guidance.propose(s, case, u, f["respondent"]),
    "record_sanctions": lambda s, w, f, case, u: hr.record_sanction(s, case, u, f["respondent"], points=1),
}


def _through_service(world, action: str, state: str, name: str) -> str | None:
    """The policy's refusal code when the service refuses `name` the action, None when it lets them take it
    (whatever happens next: the unit of work is rolled back)."""
    with Session(writer(world["engine"])) as s:
        try:
            case = s.get(Case, world["cases"][state])
            SERVICE_CALLS[action](s, world, _fill(world, state), case, s.get(User, world["bank"].users[name]))
        except PermissionDenied as exc:
            return exc.details["reason"]
        except DomainError:
            return None
        finally:
            s.rollback()
    return None


@pytest.fixture(scope="module")
def service_answers(world):
    """What the services answer each actor for each action of CASE_MATRIX and SOD."""
    rows = [(a, st, name) for a, (st, _) in CASE_MATRIX.items() for name in EVERYONE]
    rows += [(a, st, who) for a, st, who, _ in SOD]
    return {(a, st, name): _through_service(world, a, st, name) for a, st, name in rows}


@pytest.mark.parametrize("action", sorted(CASE_MATRIX))
def test_each_service_verb_allows_exactly_the_expected_roles_in_own_and_other_branches(world, service_answers,
                                                                                       action):
    state, allowed = CASE_MATRIX[action]
    before = _snapshot(world["engine"])
    answers = {name: service_answers[(action, state, name)] for name in EVERYONE}
    assert {n for n, a in answers.items() if a is None} == allowed, answers
    assert _snapshot(world["engine"]) == before


def _api_call(world, action: str, state: str, name: str):
    method, path, body = API_CALLS[action]
    fill = {**_fill(world, state), "version": _version(world, state) - 1}

    def filled(value):
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            return fill[value[1:-1]]
        return value

    client = world["app"].test_client()
    headers = {"Authorization": f"Bearer {world['tokens'][name]}"}
    return client.open(path.format(**fill), method=method, headers=headers,
                       json=filled(body) if body is not None else None)


@pytest.mark.parametrize("action", sorted(API_CALLS))
def test_each_api_operation_allows_exactly_the_expected_roles_with_the_services_reasons(world, service_answers,
                                                                                        action):
    state, allowed = CASE_MATRIX[action]
    unexpected = []
    for name in EVERYONE:
        response = _api_call(world, action, state, name)
        code = service_answers[(action, state, name)]
        if name in allowed:
            if response.status_code in (401, 403, 404):
                unexpected.append(f"unexpected deny: {name} got {response.status_code} {response.json}")
        elif code == "out_of_scope":  # outside the caller's scope the API answers as if the case did not exist
            if response.status_code != 404:
                unexpected.append(f"unexpected answer: {name} got {response.status_code}, not 404")
        elif response.status_code != 403 or response.json["details"].get("reason") != code:
            unexpected.append(f"unexpected answer: {name} got {response.status_code} {response.json}, not 403 {code}")
    assert unexpected == []


def _refusal_on_page(response) -> str | None:
    match = re.search(r'data-refusal="([a-z_]+)"', response.get_data(as_text=True))
    return match.group(1) if match else None


@pytest.mark.parametrize("action", sorted(WEB_ROUTES))
def test_each_web_refusal_gives_the_policys_reason_as_the_services_do(world, service_answers, action):
    state, allowed = CASE_MATRIX[action]
    method, route = next(((m, r) for m, r in WEB_ROUTES[action] if m == "POST"), WEB_ROUTES[action][0])
    url = _url(world, route, state)
    for name in set(EVERYONE) - allowed:
        client = world["clients"][name]
        response = client.get(url) if method == "GET" else client.post(
            url, data={"csrf_token": client.csrf, "expected_version": str(_version(world, state) - 1)})
        assert (response.status_code, _refusal_on_page(response)) == (403, service_answers[(action, state, name)]), name


@pytest.mark.parametrize("action,state,who,code", SOD, ids=[f"{a} [{s}] {w}" for a, s, w, _ in SOD])
def test_each_segregation_of_duties_rule_is_refused_at_every_door_with_the_same_reason(world, service_answers, action,
                                                                                       state, who, code):
    assert service_answers[(action, state, who)] == code
    method, route = next((m, r) for m, r in WEB_ROUTES[action] if m == "POST")
    client = world["clients"][who]
    before = _snapshot(world["engine"])
    response = client.post(_url(world, route, state), data={"csrf_token": client.csrf,
                                                            "expected_version": str(_version(world, state))})
    assert (response.status_code, _refusal_on_page(response)) == (403, code)
    if action in API_CALLS:
        response = _api_call(world, action, state, who)
        assert (response.status_code, response.json["details"].get("reason")) == (403, code), response.json
    assert _snapshot(world["engine"]) == before


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


def test_the_author_of_a_rule_set_draft_may_not_approve_or_reject_it_and_the_page_says_why(world):
    """Maker-checker (policy.why_not_review_rule_set): publishing needs a second head-office administrator."""
    with unit_of_work(world["engine"]) as s:
        admin = world["bank"].user(s, "admin")
        draft = rulesets.create_draft(s, admin, note="只改标签")
        draft = rulesets.update_draft(s, admin, draft.id, {**draft.data, "version": "authz-2031"}, "只改标签",
                                      expected_revision=1)
        draft = rulesets.submit_draft(s, admin, draft.id, date(2031, 1, 1), expected_revision=draft.revision)
        draft_id, revision = draft.id, draft.revision
    before = _snapshot(world["engine"])
    client = world["clients"]["admin"]
    page = client.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert 'id="approve-draft"' not in page and 'id="review-refusal"' in page
    for action, data in (("publish", {}), ("reject", {"rejection_reason": "不同意"})):
        response = client.post(f"/admin/rulesets/drafts/{draft_id}/{action}",
                               data={"csrf_token": client.csrf, "expected_version": str(revision), **data})
        assert response.status_code == 403, action
        assert "须由另一位总行管理员审批" in response.get_data(as_text=True)
    for name in EVERYONE:
        if name == "admin":
            continue
        client = world["clients"][name]
        status = client.post(f"/admin/rulesets/drafts/{draft_id}/publish",
                             data={"csrf_token": client.csrf, "expected_version": str(revision)}).status_code
        assert status == 403, name
    with pytest.raises(PermissionDenied) as exc, unit_of_work(world["engine"]) as s:
        rulesets.publish_draft(s, world["bank"].user(s, "admin"), draft_id, expected_revision=revision)
    assert exc.value.details["reason"] == "own_draft"
    assert _snapshot(world["engine"]) == before


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


# --- need to know (domain.md §13): a respondent reads their own part and the tally only -----------------------

# API reads of the final case: (path, who may read). Outside the caller's scope the API answers 404; a
# respondent of the case (the officer) asking for a co-respondent's part, the named votes or the audit trail
# gets 403 with the policy's refusal `need_to_know`.
API_READS = [
    ("/api/v1/letters/{det_letter}", VIEWERS),
    ("/api/v1/letters/{det_letter}/pdf", VIEWERS),
    ("/api/v1/letters/{notice}/pdf", VIEWERS),
    ("/api/v1/letters/{their_letter}", VIEWERS - {"officer"}),
    ("/api/v1/letters/{their_letter}/pdf", VIEWERS - {"officer"}),
    ("/api/v1/letters/{letter}/pdf", VIEWERS - {"officer"}),  # the minutes name the votes
    ("/api/v1/cases/{case}/respondents/{respondent}/facts", VIEWERS),
    ("/api/v1/cases/{case}/respondents/{their_respondent}/facts", VIEWERS - {"officer"}),
    ("/api/v1/cases/{case}/votes", VIEWERS - {"officer"}),
    ("/api/v1/cases/{case}/audit", VIEWERS - {"officer"}),
]


@pytest.mark.parametrize("template,allowed", API_READS, ids=[t for t, _ in API_READS])
def test_each_api_read_of_a_respondents_part_answers_only_those_who_need_to_know(world, template, allowed):
    path = template.format(**_fill(world, "final"))
    unexpected = []
    for name in EVERYONE:
        response = world["app"].test_client().get(path, headers={"Authorization": f"Bearer {world['tokens'][name]}"})
        if name in allowed:
            if response.status_code != 200:
                unexpected.append(f"unexpected deny: {name} got {response.status_code}")
        elif name in VIEWERS:
            body = response.get_json()
            if response.status_code != 403 or body["details"].get("reason") != "need_to_know" or not body["message"]:
                unexpected.append(f"unexpected answer: {name} got {response.status_code} {body}")
        elif response.status_code != 404:
            unexpected.append(f"unexpected answer: {name} got {response.status_code}, not 404")
    assert unexpected == []


def _get(world, who: str, path: str, api: bool = False):
    if api:
        return world["app"].test_client().get(path, headers={"Authorization": f"Bearer {world['tokens'][who]}"})
    return world["clients"][who].get(path)


def test_a_co_respondent_is_refused_another_respondents_letter_findings_appeal_and_evidence(world):
    """The approver answers in the final case beside the officer (who appealed): web and API refuse him the
    officer's letter, findings, appeal record and the evidence of that appeal, with the product's error page
    and the API's error shape; his own parts are his."""
    case = world["cases"]["final"]
    officer = world["per_case"]["final"]
    f = world["fill"]
    for path in (f"/cases/{case}/letters/{officer['det_letter']}.pdf",
                 f"/cases/{case}/letters/{f['officer_appeal_record']}.pdf",
                 f"/cases/{case}/evidence/{f['appeal_evidence']}"):
        page = _get(world, "approver", path)
        assert page.status_code == 403, path
        assert 'data-refusal="need_to_know"' in page.get_data(as_text=True), path
    for path in (f"/api/v1/letters/{officer['det_letter']}/pdf", f"/api/v1/letters/{f['officer_appeal_record']}",
                 f"/api/v1/cases/{case}/respondents/{officer['respondent']}/facts"):
        response = _get(world, "approver", path, api=True)
        assert response.status_code == 403, path
        assert response.get_json()["code"] and response.get_json()["details"]["reason"] == "need_to_know", path
    # his own letter and findings, and the lists, hold only his part (the officer's appeal grounds are not there)
    assert _get(world, "approver", f"/cases/{case}/letters/{f['their_letter']}.pdf").status_code == 200
    assert _get(world, "approver", f"/cases/{case}/evidence/{f['their_evidence']}").status_code == 200
    own = _get(world, "approver", f"/api/v1/cases/{case}/respondents/{f['their_respondent']}/facts", api=True)
    assert own.status_code == 200 and own.get_json()["items"]
    appeals = _get(world, "approver", f"/api/v1/cases/{case}/appeals", api=True).get_json()["items"]
    assert appeals == []
    assert [a["respondent_id"] for a in _get(world, "officer", f"/api/v1/cases/{case}/appeals",
                                             api=True).get_json()["items"]] == [officer["respondent"]]
    respondents = _get(world, "approver", f"/api/v1/cases/{case}/respondents", api=True).get_json()["items"]
    assert [r["id"] for r in respondents] == [f["their_respondent"]]
    listed = {lt["id"] for lt in _get(world, "approver", f"/api/v1/cases/{case}/letters", api=True).get_json()["items"]}
    assert f["their_letter"] in listed and f["notice"] in listed
    assert officer["det_letter"] not in listed and f["letter"] not in listed and f["officer_appeal_record"] not in listed
    windows = _get(world, "approver", f"/api/v1/cases/{case}/appeal-windows", api=True).get_json()["items"]
    assert [w["respondent_id"] for w in windows] == [f["their_respondent"]]


def test_a_respondents_case_page_shows_their_findings_and_the_tally_not_the_others_nor_who_voted(world):
    case = world["cases"]["final"]
    f = world["fill"]
    officer = world["per_case"]["final"]
    with Session(world["engine"]) as s:
        members = [s.get(User, world["bank"].users[m]).name for m in ("member1", "member2")]
        evidence = {e.id: e.filename for e in s.exec(select(Evidence).where(Evidence.case_id == case))}
        grounds = s.exec(select(Appeal.grounds).where(Appeal.case_id == case)).one()
    page = _get(world, "approver", f"/cases/{case}").get_data(as_text=True)
    assert f'id="r{f["their_respondent"]}"' in page and f'id="r{officer["respondent"]}"' not in page
    assert f'id="tally-{f["their_respondent"]}"' in page and 'id="tally-only"' in page
    votes = page[page.index('id="votes"'):page.index('id="evidence"')]
    assert not any(m in votes for m in members)
    assert grounds not in page
    assert evidence[f["their_evidence"]] in page and evidence[f["appeal_evidence"]] not in page
    assert f"/letters/{officer['det_letter']}.pdf" not in page and f"/letters/{f['their_letter']}.pdf" in page
    # the officer sees their own appeal; the committee, the investigator, audit and administrators see all
    assert grounds in _get(world, "officer", f"/cases/{case}").get_data(as_text=True)
    for who in ("chair", "member1", "investigator", "auditor", "admin", "t2_auditor"):
        page = _get(world, who, f"/cases/{case}").get_data(as_text=True)
        assert f'id="r{officer["respondent"]}"' in page and f'id="r{f["their_respondent"]}"' in page, who
        assert 'id="tally-only"' not in page and all(m in page for m in members), who
        assert grounds in page and evidence[f["appeal_evidence"]] in page, who
        assert f"/letters/{officer['det_letter']}.pdf" in page and f"/letters/{f['letter']}.pdf" in page, who
