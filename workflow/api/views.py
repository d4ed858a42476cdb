"""The API's operations. Thin: parse (core), load in scope (404), one service call, answer.

Permissions are the services' own (roles, segregation of duties); branch scope is `scope`.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from datetime import UTC, date, datetime
from urllib.parse import quote

from flask import Response, current_app, request
from sqlmodel import select

from ..domain import hearing, policy, states
from ..domain.errors import NotFound
from ..models import (
    Appeal,
    AppealVote,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Letter,
    Loan,
    LoanStage,
    Respondent,
    StageFact,
    StandIn,
    User,
    Vote,
)
from ..services import (
    access_log,
    audit,
    background,
    case_file,
    cases,
    comments,
    deadlines,
    evaluation,
    guidance,
    hr,
    imports,
    intake,
    investigation,
    letters,
    queries,
    stand_ins,
    tabular,
    tolerance,
)
from ..unit import after_commit, reading, work
from . import schemas as S
from . import scope
from .core import MalformedRequest, UnsupportedMediaType, operation, read_json_body

E_READ = (401, 404)
E_PART = (401, 403, 404)  # reads refused by need to know (a respondent reads only their own part)
E_WRITE = (400, 401, 403, 404, 409, 413, 415, 422)
E_ISSUE = (*E_WRITE, 503)  # operations that issue documents: 503 letter_font_missing when they cannot be rendered


def _engine():
    return current_app.extensions["mianze.engine"]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- pagination -----------------------------------------------------------------------------------------

def _encode_cursor(last_id: int) -> str:
    return str(last_id)


def _decode_cursor(cursor: str | None) -> int:
    """The id a page starts after. Every cursor the document allows (1-10 digits) reads as one, so a page
    after the last id is simply empty."""
    return 0 if cursor is None else int(cursor)


def _page(session, query, id_col, q: S.PageQuery):
    rows = list(session.exec(query.where(id_col > _decode_cursor(q.cursor)).order_by(id_col).limit(q.limit + 1)))
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    return rows, (_encode_cursor(rows[-1].id) if more and rows else None)


# --- serialisers ----------------------------------------------------------------------------------------

def _branch(b: Branch) -> S.BranchOut:
    return S.BranchOut(id=b.id, code=b.code, name=b.name, name_en=b.name_en, level=b.level, parent_id=b.parent_id,
                       path=b.path, active=b.active)


def _staff(u: User) -> S.StaffOut:
    return S.StaffOut(id=u.id, username=u.username, name=u.name, employee_no=u.employee_no, branch_id=u.branch_id,
                      roles=sorted(u.role_set), active=u.active)


def _enterprise(e: Enterprise) -> S.EnterpriseOut:
    return S.EnterpriseOut(id=e.id, name=e.name, uscc=e.uscc, kind=e.kind, owner_name=e.owner_name,
                           industry=e.industry)


def _loans(session, loans: list[Loan]) -> list[S.LoanOut]:
    ids = [lo.id for lo in loans]
    handlers: dict[int, list[S.StageHandlerOut]] = {i: [] for i in ids}
    if ids:
        rows = session.exec(select(LoanStage, User.employee_no).join(User, User.id == LoanStage.user_id)
                            .where(LoanStage.loan_id.in_(ids)).order_by(LoanStage.loan_id, LoanStage.id))
        for st, emp in rows:
            handlers[st.loan_id].append(S.StageHandlerOut(stage=st.stage, user_id=st.user_id, employee_no=emp,
                                                          performed_on=st.performed_on))
    return [S.LoanOut(id=lo.id, loan_no=lo.loan_no, enterprise_id=lo.enterprise_id, branch_id=lo.branch_id,
                      product_class=lo.product_class, credit_total=str(lo.credit_total), amount=str(lo.amount),
                      balance=str(lo.balance), start_date=lo.start_date, maturity_date=lo.maturity_date,
                      classification=lo.classification, written_off=lo.written_off, stages=handlers[lo.id])
            for lo in loans]


def _cases(session, rows: list[Case]) -> list[S.CaseOut]:
    ids = [c.id for c in rows]
    limits = {c.id: deadlines.one_year(session, c) for c in rows}
    loans: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for cl in session.exec(select(CaseLoan).where(CaseLoan.case_id.in_(ids)).order_by(CaseLoan.loan_id)):
            loans[cl.case_id].append(cl.loan_id)
    return [S.CaseOut(
        id=c.id, number=c.number, branch_id=c.branch_id, enterprise_id=c.enterprise_id, state=c.state,
        version=c.version, opened_at=_iso(c.opened_at), opened_by_id=c.opened_by_id,
        investigator_id=c.investigator_id, legal_hold=c.legal_hold, batch_report=c.batch_report,
        due_date=c.due_date, publicity_ends=c.publicity_ends, appeal_window_ends=c.appeal_window_ends,
        submitted_at=_iso(c.submitted_at), determined_at=_iso(c.determined_at), final_at=_iso(c.final_at),
        closed_at=_iso(c.closed_at), updated_at=_iso(c.updated_at), loan_ids=loans[c.id],
        allowed_events=states.allowed_triggers(c.state),
        one_year_limit=limits[c.id]["limit"] if limits[c.id] else None, authority=_authority(c)) for c in rows]


def _authority(c: Case) -> S.AuthorityOut | None:
    a = c.authority
    if not a:
        return None
    return S.AuthorityOut(rule=a["rule"], committee_branch_id=a["committee_branch_id"],
                          committee_level=a["committee_level"], origin_branch_id=a["origin_branch_id"],
                          branch_level=a["branch_level"], total_amount=a["total_amount"], reason=a["text"],
                          basis=a["basis"])


def _respondent(session, case: Case, r: Respondent) -> S.RespondentOut:
    mine = [S.RespondentStage(loan_id=a.loan_id, stage=a.stage)
            for a in cases.stage_assignments(session, case.id) if a.user_id == r.user_id]
    return S.RespondentOut(id=r.id, user_id=r.user_id, liability_kind=r.liability_kind,
                           recommended_outcome=r.recommended_outcome, decided_outcome=r.decided_outcome,
                           final_outcome=r.final_outcome, deviation_reason=r.deviation_reason, statement=r.statement,
                           statement_at=_iso(r.statement_at), statement_due=r.statement_due.isoformat() if r.statement_due else None,
                           statement_declined_at=_iso(r.statement_declined_at),
                           statement_position=hearing.position(r.statement_at, r.statement_declined_at,
                                                               r.statement_due, date.today()),
                           stages=mine)


def _fact(f: StageFact) -> S.FactOut:
    return S.FactOut(respondent_id=f.respondent_id, loan_id=f.loan_id, stage=f.stage, facts=f.facts,
                     rule_set_version_id=f.rule_set_version_id, recorded_by_id=f.recorded_by_id,
                     recorded_at=_iso(f.recorded_at))


def _vote(v: Vote) -> S.VoteOut:
    return S.VoteOut(id=v.id, respondent_id=v.respondent_id, member_id=v.member_id,
                     on_behalf_of_id=v.on_behalf_of_id, outcome=v.outcome,
                     reason=v.reason, cast_at=_iso(v.cast_at), valid=v.invalidated_at is None)


def _appeal_vote(v: AppealVote) -> S.AppealVoteOut:
    return S.AppealVoteOut(id=v.id, appeal_id=v.appeal_id, member_id=v.member_id, decision=v.decision,
                           outcome=v.outcome, reason=v.reason, cast_at=_iso(v.cast_at))


def _appeal(a: Appeal, s=None) -> S.AppealOut:
    """An appeal; with the session, the panel's named votes too (for the chair who signed the decision)."""
    votes = [] if s is None else [_appeal_vote(v) for v in queries.aggregate(s, s.get(Case, a.case_id))
                                  .panel_votes(a.id)]
    return S.AppealOut(id=a.id, respondent_id=a.respondent_id, appealed_outcome=a.appealed_outcome, grounds=a.grounds,
                       filed_at=_iso(a.filed_at), decision=a.decision, new_outcome=a.new_outcome,
                       decision_reason=a.decision_reason, decided_by_id=a.decided_by_id,
                       decided_at=_iso(a.decided_at), votes=votes)


def _letter(lt: Letter) -> S.LetterOut:
    return S.LetterOut(id=lt.id, case_id=lt.case_id, kind=lt.kind, respondent_id=lt.respondent_id,
                       appeal_id=lt.appeal_id, doc_number=lt.doc_number, version=lt.version,
                       supersedes_id=lt.supersedes_id, template=lt.template, template_version=lt.template_version,
                       locale=lt.locale, sha256=lt.sha256, issued_by_id=lt.issued_by_id, issued_at=_iso(lt.issued_at),
                       data=lt.data, pdf_url=f"/api/v1/letters/{lt.id}/pdf")


def _actor(session, user: User) -> User:
    return session.get(User, user.id)


def _respondent_of(session, case: Case, respondent_id: int) -> Respondent:
    r = session.get(Respondent, respondent_id)
    if r is None or r.case_id != case.id:
        raise NotFound(f"respondent {respondent_id} is not part of case {case.number}")
    return r


# --- branches, staff, enterprises -----------------------------------------------------------------------

@operation("GET", "/branches", summary="List branches", tag="reference", query=S.PageQuery,
           response=S.BranchPage, errors=(400, 401), personal=False)
def list_branches(user, query):
    """Every branch of the hierarchy (head office, tier-1 branches, sub-branches, outlets)."""
    with reading() as s:
        rows, nxt = _page(s, select(Branch), Branch.id, query)
        return S.BranchPage(items=[_branch(b) for b in rows], next_cursor=nxt)


@operation("GET", "/branches/{branch_id}", summary="One branch", tag="reference", response=S.BranchOut,
           errors=E_READ, personal=False)
def get_branch(user, branch_id):
    with reading() as s:
        b = s.get(Branch, branch_id)
        if b is None:
            raise NotFound(f"branch {branch_id} does not exist")
        return _branch(b)


@operation("GET", "/branches/{branch_id}/tolerance", summary="NPL tolerance of a branch for a period",
           tag="loan book", query=S.PeriodQuery, response=S.ToleranceOut, errors=(400, 401, 404), personal=False)
def get_tolerance(user, branch_id, query):
    """The branch with its whole subtree: imported regulator figures if recorded, else computed from the book."""
    with reading() as s:
        return S.ToleranceOut(**tolerance.for_branch(s, branch_id, query.period))


@operation("GET", "/branches/{branch_id}/loan-book", summary="Loan-book snapshot of a branch for a period",
           tag="loan book", query=S.PeriodQuery, response=S.LoanBookOut, errors=(400, 401, 404), personal=False)
def get_loan_book(user, branch_id, query):
    """Balances of the branch and its subtree for the loans on the book at the period end (computed)."""
    with reading() as s:
        b = s.get(Branch, branch_id)
        if b is None:
            raise NotFound(f"branch {branch_id} does not exist")
        snap = tolerance.all_branches(s, query.period)[branch_id].to_dict()
        return S.LoanBookOut(branch_id=b.id, branch=b.code, period=query.period,
                             **{k: snap.get(k) for k in ("all_balance", "all_npl_balance", "sme_balance",
                                                         "sme_npl_balance", "all_ratio", "sme_ratio")})


@operation("GET", "/staff", summary="List staff", tag="reference", query=S.StaffQuery, response=S.StaffPage,
           errors=(400, 401))
def list_staff(user, query):
    """Staff with their branch and roles (identity numbers and phones are not exposed)."""
    with reading() as s:
        q = select(User)
        if query.branch_id is not None:
            q = q.where(User.branch_id == query.branch_id)
        if query.role is not None:
            q = q.where(User.roles.contains(query.role))
        rows, nxt = _page(s, q, User.id, query)
        return S.StaffPage(items=[_staff(u) for u in rows if query.role is None or query.role in u.role_set],
                           next_cursor=nxt)


@operation("GET", "/staff/{user_id}", summary="One member of staff", tag="reference", response=S.StaffOut,
           errors=E_READ)
def get_staff(user, user_id):
    with reading() as s:
        u = s.get(User, user_id)
        if u is None:
            raise NotFound(f"user {user_id} does not exist")
        return _staff(u)


@operation("GET", "/enterprises", summary="List enterprises (borrowers)", tag="reference",
           query=S.EnterpriseQuery, response=S.EnterprisePage, errors=(400, 401))
def list_enterprises(user, query):
    """Borrowers with a loan in your branch scope."""
    with reading() as s:
        q = select(Enterprise)
        where = scope.enterprise_filter(s, user)
        if where is not None:
            q = q.where(where)
        if query.uscc is not None:
            q = q.where(Enterprise.uscc == query.uscc)
        rows, nxt = _page(s, q, Enterprise.id, query)
        return S.EnterprisePage(items=[_enterprise(e) for e in rows], next_cursor=nxt)


@operation("GET", "/enterprises/{enterprise_id}", summary="One enterprise", tag="reference",
           response=S.EnterpriseOut, errors=E_READ)
def get_enterprise(user, enterprise_id):
    with reading() as s:
        return _enterprise(scope.visible_enterprise(s, user, enterprise_id))


# --- loans ----------------------------------------------------------------------------------------------

@operation("GET", "/loans", summary="List loans with their stage handlers", tag="loans", query=S.LoanQuery,
           response=S.LoanPage, errors=(400, 401))
def list_loans(user, query):
    """Loans booked in your branch scope, filtered, in id order with cursor pagination."""
    with reading() as s:
        q = select(Loan)
        where = scope.loan_filter(s, user)
        if where is not None:
            q = q.where(where)
        for column, value in ((Loan.branch_id, query.branch_id), (Loan.enterprise_id, query.enterprise_id),
                              (Loan.classification, query.classification),
                              (Loan.product_class, query.product_class), (Loan.loan_no, query.loan_no)):
            if value is not None:
                q = q.where(column == value)
        rows, nxt = _page(s, q, Loan.id, query)
        return S.LoanPage(items=_loans(s, rows), next_cursor=nxt)


@operation("GET", "/loans/{loan_id}", summary="One loan with its stage handlers", tag="loans",
           response=S.LoanOut, errors=E_READ)
def get_loan(user, loan_id):
    with reading() as s:
        return _loans(s, [scope.visible_loan(s, user, loan_id)])[0]


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


_FILE_BODIES = {"text/csv": {"schema": {"type": "string"}},
                _XLSX: {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"], "additionalProperties": False,
                    "properties": {"file": {"type": "string", "format": "binary",
                                            "description": "a .json, .csv or .xlsx file"}}}}}


def _may_import(user) -> None:
    """Ask the policy before the body is read, so that a caller who may not import does not have a loan book of
    up to IMPORT_MAX_BYTES spooled to disk first (a short read transaction of its own: the import's unit of work
    starts after the file is read, and its service asks the same policy again)."""
    with reading() as s:
        refusal = policy.why_not_import_loans(queries.actor_of(s, _actor(s, user)))
    if refusal is not None:
        raise policy.refuse(refusal)


@operation("POST", "/imports/loans", summary="Bulk import loans and their stage handlers", tag="loans",
           query=S.ImportQuery, body=imports.LoanImport, raw_body=True, response=S.ImportResultOut,
           errors=(400, 401, 403, 413, 415, 422), extra_bodies=_FILE_BODIES)
def import_loans(user, query):
    """Administrators only. The whole file is validated first; any bad row → 422 listing every bad row
    (`details.errors`: line, loan_no, reason) and nothing is written. Idempotent by loan number. For JSON,
    `line` is the position of the loan in `loans` (1-based); for CSV and XLSX the line or row number.
    A loan book of millions of rows is better sent to `POST /jobs/loan-import`, which answers at once."""
    _may_import(user)
    limits = tabular.Limits.from_config(current_app.config)
    mimetype = request.mimetype
    with ExitStack() as files:
        if mimetype == "application/json":
            rows = imports.read_json(read_json_body(), limits)
            rows.sha256 = imports.sha256_of(request.get_data(cache=True))
        elif mimetype == "multipart/form-data":
            upload = request.files.get("file")
            if upload is None or set(request.files) != {"file"} or request.form:
                raise MalformedRequest("send one file in the form field 'file'", field="file")
            # werkzeug spooled the upload to a temporary file: it is read from there, row by row
            rows = imports.read_file(upload.stream, imports.format_of(upload.filename or ""), limits)
        elif mimetype in ("text/csv", _XLSX):
            body = files.enter_context(tabular.spool(request.stream, limits.max_bytes))
            rows = imports.read_file(body, "csv" if mimetype == "text/csv" else "xlsx", limits)
        else:
            raise UnsupportedMediaType("send application/json, text/csv, an XLSX workbook or a multipart upload",
                                       content_type=mimetype or None)
        with work() as s:
            result = imports.import_loans(s, _actor(s, user), rows, dry_run=query.dry_run, limits=limits)
    return S.ImportResultOut(**result.to_dict())


# --- NPL intake -----------------------------------------------------------------------------------------

@operation("GET", "/intake", summary="Non-performing loans awaiting a case, by enterprise", tag="intake",
           query=S.IntakeQuery, response=S.IntakePage, errors=(400, 401, 403))
def list_intake(user, query):
    """Committee chairs and administrators: the enterprises of your scope with non-performing loans in no
    case, 20 a page, with the staff who handled them and the scope check's verdict."""
    with reading() as s:
        groups, total = intake.groups(s, _actor(s, user), q=query.q, offset=(query.page - 1) * intake.PAGE)
        items = [S.IntakeGroupOut(
            enterprise_id=g.enterprise_id, enterprise=g.enterprise, uscc=g.uscc, open_case=g.open_case,
            in_scope=g.in_scope, handlers=[S.IntakeHandlerOut(**vars(h)) for h in g.handlers],
            loans=[S.IntakeLoanOut(**{**{k: v for k, v in vars(lo).items() if k not in ("branch_en", "scope_details")},
                                 "amount": f"{lo.amount:.2f}", "balance": f"{lo.balance:.2f}"})
                   for lo in g.loans]) for g in groups]
        return S.IntakePage(items=items, total=total, page=query.page)


@operation("POST", "/intake/{enterprise_id}/case", summary="Register a case for an enterprise's loans awaiting one",
           tag="intake", body=S.IntakeCaseIn, response=S.CaseOut, status=201, errors=E_WRITE)
def register_from_intake(user, enterprise_id, body):
    """One case covering every loan of the enterprise awaiting a case (统一合并考量)."""
    with work() as s:
        case = intake.register(s, _actor(s, user), enterprise_id, batch_report=body.batch_report)
        return _cases(s, [case])[0]


@operation("POST", "/intake/{enterprise_id}/dismissal", summary="Record why no case is opened", tag="intake",
           body=S.IntakeDismissalIn, response=S.IntakeDismissalOut, status=201, errors=E_WRITE)
def dismiss_intake(user, enterprise_id, body):
    """The enterprise's loans awaiting a case leave the list with the reason (audited); `other` needs a note."""
    with work() as s:
        n = intake.dismiss(s, _actor(s, user), enterprise_id, body.reason, body.note)
        return S.IntakeDismissalOut(enterprise_id=enterprise_id, loans=n)


# --- background jobs ------------------------------------------------------------------------------------

def _job(job) -> S.JobOut:
    return S.JobOut(id=job.id, kind=job.kind, status=job.status, stalled=background.stalled(job),
                    backend=job.backend, done=job.done, total=job.total, result=job.result or {},
                    error=job.error or None, attempts=job.attempts, created_at=_iso(job.created_at))


def _dispatch_after_commit(job_id: int) -> None:
    engine = current_app.extensions["mianze.engine"]
    redis_url, queue = current_app.config.get("REDIS_URL"), current_app.config.get("JOBS_QUEUE") or background.QUEUE
    after_commit(lambda: background.dispatch(engine, job_id, redis_url=redis_url, queue=queue))


@operation("POST", "/jobs/letter-batch", summary="Start a committee's letter batch", tag="jobs",
           body=S.LetterBatchIn, response=S.JobOut, status=202, errors=E_WRITE)
def start_letter_batch(user, body):
    """Every missing document of the committee's determined cases, issued in the background (an RQ worker, or
    the app's worker thread without Redis); poll `GET /jobs/{id}` for its progress."""
    with work() as s:
        job = background.create_letter_batch(s, _actor(s, user), body.branch_id)
        _dispatch_after_commit(job.id)
        return _job(job)


@operation("POST", "/jobs/loan-import", summary="Import a loan book file in the background", tag="jobs",
           query=S.ImportQuery, raw_body=True, response=S.JobOut, status=202,
           errors=(400, 401, 403, 413, 415, 422), extra_bodies={k: v for k, v in _FILE_BODIES.items()})
def start_loan_import(user, query):
    """Administrators only. The CSV or XLSX file (the body, or the form field `file`) is stored and imported
    by a background job, all or nothing, as `POST /imports/loans` does; poll `GET /jobs/{id}`: when done,
    `result.imported` says whether it was imported, with the import's counts, or its bad rows (`errors`,
    `error_total`, `error_counts`) and nothing written."""
    import os
    import shutil
    import uuid

    _may_import(user)
    limits = tabular.Limits.from_config(current_app.config)
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None or set(request.files) != {"file"} or request.form:
            raise MalformedRequest("send one file in the form field 'file'", field="file")
        fmt, filename, stream = imports.format_of(upload.filename or ""), upload.filename or "", upload.stream
    elif mimetype in ("text/csv", _XLSX):
        fmt = "csv" if mimetype == "text/csv" else "xlsx"
        filename, stream = f"loans.{fmt}", request.stream
    else:
        raise UnsupportedMediaType("send text/csv, an XLSX workbook or a multipart upload (JSON: POST "
                                   "/imports/loans)", content_type=mimetype or None)
    if fmt not in ("csv", "xlsx"):
        raise UnsupportedMediaType("a background import reads a .csv or .xlsx file", content_type=mimetype)
    folder = os.path.join(current_app.config["JOBS_DIR"], "uploads")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{uuid.uuid4().hex}.{fmt}")
    with tabular.spool(stream, limits.max_bytes) as body, open(path, "wb") as out:
        shutil.copyfileobj(body, out, 1 << 20)
    try:
        # the file's form (encoding, header, the first row's columns) is checked now, as `POST /imports/loans`
        # does, so that a body that is no loan file is refused at once; its rows are checked by the job
        next(iter(imports.read_file(path, fmt, limits)), None)
        with work() as s:
            job = background.create_loan_import(s, _actor(s, user), path=path, fmt=fmt, filename=filename,
                                                dry_run=query.dry_run, limits=dataclasses.asdict(limits))
            _dispatch_after_commit(job.id)
            return _job(job)
    except BaseException:
        os.remove(path)
        raise


@operation("GET", "/jobs/{job_id}", summary="A background job's status and progress", tag="jobs",
           response=S.JobOut, errors=E_READ, personal=False)
def get_job(user, job_id):
    with reading() as s:
        return _job(background.get(s, _actor(s, user), job_id))


@operation("POST", "/jobs/{job_id}/retry", summary="Run a failed or stalled job again", tag="jobs",
           response=S.JobOut, status=202, errors=E_WRITE)
def retry_job(user, job_id):
    """It does only what is still missing (a letter batch issues no document twice)."""
    with work() as s:
        job = background.requeue(s, _actor(s, user), job_id)
        _dispatch_after_commit(job.id)
        return _job(job)


# --- cases ----------------------------------------------------------------------------------------------

@operation("POST", "/cases", summary="Open a case for one enterprise's non-performing loans", tag="cases",
           body=S.CaseCreate, response=S.CaseOut, status=201, errors=E_WRITE)
def create_case(user, body):
    """Respondents come from the loans' stage handlers. Committee chairs and administrators; the loans must
    be in your branch scope."""
    with work() as s:
        for loan_id in body.loan_ids:
            scope.visible_loan(s, user, loan_id)
        case = cases.open_case(s, _actor(s, user), body.loan_ids, batch_report=body.batch_report)
        return _cases(s, [case])[0]


@operation("GET", "/cases", summary="List cases", tag="cases", query=S.CaseQuery, response=S.CasePage,
           errors=(400, 401))
def list_cases(user, query):
    """Cases in your scope, filtered, in id order; pass `next_cursor` back as `cursor` for the next page."""
    with reading() as s:
        q = select(Case)
        where = scope.case_filter(s, user)
        if where is not None:
            q = q.where(where)
        for column, value in ((Case.state, query.state), (Case.branch_id, query.branch_id),
                              (Case.enterprise_id, query.enterprise_id),
                              (Case.investigator_id, query.investigator_id)):
            if value is not None:
                q = q.where(column == value)
        rows, nxt = _page(s, q, Case.id, query)
        return S.CasePage(items=_cases(s, rows), next_cursor=nxt)


@operation("GET", "/cases/{case_id}", summary="One case", tag="cases", response=S.CaseOut, errors=E_READ)
def get_case(user, case_id):
    with reading() as s:
        return _cases(s, [scope.visible_case(s, user, case_id)])[0]


def _fire_event(s, case: Case, actor: User, body: S.EventIn) -> None:
    # What each event takes is in the document (EventIn): anything else was refused with 400 already.
    p, ev, v = body.root.payload, body.root.event, body.root.expected_version
    if ev == "assign_investigator":
        cases.assign_investigator(s, case, actor, p.investigator_id, expected_version=v)
    elif ev in ("return_for_investigation", "reopen", "withdraw"):
        getattr(cases, ev)(s, case, actor, p.reason or "", expected_version=v)
    elif ev == "determine":
        reasons = {int(k): r for k, r in (p.deviation_reasons or {}).items()}
        cases.determine(s, case, actor, reasons, expected_version=v)
    elif ev == "refer_for_accountability":
        cases.refer_for_accountability(s, case, actor, recipient=p.recipient, reference=p.reference,
                                       respondent_ids=p.respondent_ids, matters=p.matters, expected_version=v)
    else:
        getattr(cases, ev)(s, case, actor, expected_version=v)


@operation("POST", "/cases/{case_id}/events", summary="Fire a lifecycle event", tag="cases", body=S.EventIn,
           response=S.CaseOut, errors=E_ISSUE)
def post_event(user, case_id, body):
    """The matching service verb runs with your permissions. 409 when the event is not allowed in the
    current state, a guard does not hold, or `expected_version` is stale; `details` then has the case's
    current `state` and `version`."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        _fire_event(s, case, _actor(s, user), body)  # the verb asks the policy, then the version, then the state
    with reading() as s:
        return _cases(s, [s.get(Case, case_id)])[0]


@operation("GET", "/cases/{case_id}/respondents", summary="Respondents of a case", tag="cases",
           response=S.RespondentList, errors=E_READ)
def list_respondents(user, case_id):
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        ntk = queries.need_to_know(s, case, user)
        return S.RespondentList(items=[_respondent(s, case, r) for r in ntk.respondents(cases.respondents_of(s, case.id))])


@operation("POST", "/cases/{case_id}/statement", summary="File your exemption statement", tag="cases",
           body=S.StatementIn, response=S.RespondentOut, errors=E_WRITE)
def file_statement(user, case_id, body):
    """A respondent files (or replaces) their own statement until the investigation is submitted."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        r = cases.file_statement(s, case, _actor(s, user), body.statement, expected_version=body.expected_version)
        return _respondent(s, case, r)


@operation("POST", "/cases/{case_id}/statement/decline", summary="Decline to file an exemption statement",
           tag="cases", body=S.DeclineStatementIn, response=S.RespondentOut, errors=E_WRITE)
def decline_statement(user, case_id, body):
    """A respondent declines in writing to file a statement, so the investigation need not wait for their
    deadline; they may still file one until the investigation is submitted."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        r = cases.decline_statement(s, case, _actor(s, user), body.note, expected_version=body.expected_version)
        return _respondent(s, case, r)


def _comment(case_id: int, c) -> S.CommentOut:
    return S.CommentOut(id=c.id, case_id=case_id, author_id=c.author_id, author=c.author,
                        author_username=c.author_username, body=c.body, mentions=c.mentions,
                        created_at=_iso(c.created_at))


@operation("GET", "/cases/{case_id}/comments", summary="Comments on a case, oldest first", tag="cases",
           query=S.CommentQuery, response=S.CommentPage, errors=(401, 403, 404))
def list_comments(user, case_id, query):
    """The case's staff read its comments; a respondent of the case gets 403 comments_staff_only."""
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        found = comments.comments(s, case, user, page=query.page, size=query.size)
        return S.CommentPage(items=[_comment(case.id, c) for c in found.items], total=found.total,
                             page=found.page, pages=found.pages)


@operation("POST", "/cases/{case_id}/comments", summary="Comment on a case", tag="cases", body=S.CommentIn,
           response=S.CommentOut, status=201, errors=(400, 401, 403, 404, 422))
def post_comment(user, case_id, body):
    """Add a comment (audited; it does not change the case); each @username mentioned is told."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        c = comments.add_comment(s, case, _actor(s, user), body.body)
        found = s.get(User, c.author_id)
        return S.CommentOut(id=c.id, case_id=case.id, author_id=c.author_id, author=found.name,
                            author_username=found.username, body=c.body, mentions=list(c.mentions),
                            created_at=_iso(c.created_at))


def _accountability(s, case: Case, user) -> S.AccountabilityOut:
    found = hr.accountability(s, case, user)
    ref = found["referral"]
    people = found["people"]
    return S.AccountabilityOut(
        case_id=case.id,
        referral=None if ref is None else S.ReferralOut(
            recipient=ref.recipient, reference=ref.reference, matters=ref.matters, letter_id=ref.letter_id,
            referred_at=_iso(ref.referred_at),
            respondents=[S.ReferredOut(respondent_id=x["respondent_id"], outcome=x["outcome"],
                                       determination=x["determination"]) for x in found["referred"]]),
        sanctions=[S.SanctionOut(id=x.id, respondent_id=x.respondent_id, user_id=x.user_id,
                                 name=people[x.user_id].name, employee_no=people[x.user_id].employee_no,
                                 basis_outcome=x.basis_outcome, points=x.points, sanction_type=x.sanction_type,
                                 amount=f"{x.amount:.2f}", month=x.month, note=x.note,
                                 recorded_at=_iso(x.recorded_at)) for x in found["sanctions"]],
        refunds=[S.RefundOut(id=f.id, sanction_id=f.sanction_id, user_id=f.user_id, amount=f"{f.amount:.2f}",
                             decision=f.decision, decision_ref=f.decision_ref, decided_on=f.decided_on,
                             new_outcome=f.new_outcome, month=f.month) for f in found["refunds"]])


@operation("GET", "/cases/{case_id}/accountability", summary="The referral record, sanctions and refunds",
           tag="cases", response=S.AccountabilityOut, errors=E_READ)
def get_accountability(user, case_id):
    """The case's referral (recipient, reference, respondents and matters referred), the sanctions recorded
    back per person and the refunds due; a respondent of the case reads only their own. The read is logged."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        access_log.record(s, user, "api_read", f"accountability:{case.number}", case.id, {"via": "api"})
        return _accountability(s, case, user)


@operation("POST", "/cases/{case_id}/sanctions", summary="Record the sanctions applied to a respondent",
           tag="cases", body=S.SanctionIn, response=S.AccountabilityOut, status=201, errors=E_WRITE)
def post_sanction(user, case_id, body):
    """An administrator whose scope holds the case records the accountability result for one respondent
    (audited; the case does not change). A deduction later improved by an appeal decision or a
    re-determination is refunded in the HR list of that decision's month."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        hr.record_sanction(s, case, _actor(s, user), body.respondent_id, points=body.points,
                           sanction_type=body.sanction_type, amount=body.amount, month=body.month, note=body.note)
        return _accountability(s, case, user)


@operation("POST", "/hr/exports", summary="The monthly HR list of deductions and refunds (CSV or XLSX)",
           tag="audit", body=S.HrExportIn,
           produces="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, text/csv",
           errors=(400, 401, 403, 422))
def post_hr_export(user, body):
    """Head-office administrators and internal auditors: the month's deductions and refunds per person, with
    names, employee numbers and amounts; the export and its reason go to the access log and the audit chain."""
    with work() as s:
        details = hr.authorize_export(s, _actor(s, user), month=body.month, fmt=body.format, reason=body.reason)
        data = hr.render(details["format"], details["month"], hr.month_lines(s, details["month"]))
    mime = "text/csv; charset=utf-8" if body.format == "csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(data, content_type=mime,
                    headers={"Content-Disposition": f'attachment; filename="{hr.filename(body.month, body.format)}"',
                             "Cache-Control": "no-store"})


@operation("POST", "/cases/{case_id}/urges", summary="Urge the case's current step (督办)", tag="cases",
           body=S.UrgeIn, response=S.UrgeOut, status=201, errors=E_WRITE)
def post_urge(user, case_id, body):
    """A committee chair of the case's branch or a branch above it, or a head-office administrator, urges an
    overdue step (or a case near or past its one-year limit): recorded in the case's audit trail and sent to
    the person whose step it is. The case does not change."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        event = cases.urge(s, case, _actor(s, user), body.message)
        return S.UrgeOut(seq=event["seq"], case_id=case.id, at=event["at"], message=event["payload"]["message"],
                         to=event["payload"]["to"])


@operation("GET", "/cases/{case_id}/respondents/{respondent_id}/facts", summary="Facts of a respondent",
           tag="investigation", response=S.FactList, errors=E_PART)
def list_facts(user, case_id, respondent_id):
    """A respondent reads only their own facts (403 `need_to_know` for another respondent's)."""
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        _respondent_of(s, case, respondent_id)
        queries.need_to_know(s, case, user).require_part(respondent_id)
        rows = s.exec(select(StageFact).where(StageFact.respondent_id == respondent_id)
                      .order_by(StageFact.loan_id, StageFact.stage))
        return S.FactList(items=[_fact(f) for f in rows])


@operation("PUT", "/cases/{case_id}/respondents/{respondent_id}/facts",
           summary="Record the facts of a respondent for one stage of one loan", tag="investigation",
           body=S.FactsIn, response=S.FactOut, errors=E_WRITE)
def put_facts(user, case_id, respondent_id, body):
    """The case's investigator only. Unknown codes, a duty of another stage or a stage the respondent did
    not hold → 400. Under review, changed facts recompute the recommendation and invalidate votes."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        _respondent_of(s, case, respondent_id)
        row = investigation.record_facts(s, case, _actor(s, user), respondent_id, body.loan_id, body.stage,
                                         body.facts.model_dump(exclude_none=True),
                                         expected_version=body.expected_version)
        return _fact(row)


@operation("GET", "/cases/{case_id}/recommendation", summary="The recommendation with its explanation",
           tag="review", response=S.RecommendationOut, errors=E_READ)
def get_recommendation(user, case_id):
    """Per respondent: the recommended outcome and, per stage, each precedence step consulted (fired or not),
    the fact behind it and its source; with the tolerance frozen into the case."""
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        ntk = queries.need_to_know(s, case, user)
        return S.RecommendationOut(case_id=case.id, tolerance=case.tolerance, respondents=[
            S.RespondentRecommendation(respondent_id=r.id, user_id=r.user_id, outcome=r.recommended_outcome,
                                       recommendation=r.recommendation)
            for r in ntk.respondents(cases.respondents_of(s, case.id))])


@operation("GET", "/cases/{case_id}/votes", summary="Votes on a case", tag="review", response=S.VoteList,
           errors=E_PART)
def list_votes(user, case_id):
    """The named votes. A respondent of the case is refused (403 `need_to_know`): they see the tally on the
    case page, not who voted how."""
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        queries.need_to_know(s, case, user).require_named_votes()
        sees_tally = queries.load(s, case.id).sees_tally(queries.actor_of(s, user))
        return S.VoteList(items=[_vote(v) for v in s.exec(select(Vote).where(Vote.case_id == case.id)
                                                           .order_by(Vote.id))
                                 if sees_tally or v.member_id == user.id])


@operation("POST", "/cases/{case_id}/votes", summary="Vote on a respondent's outcome", tag="review",
           body=S.VoteIn, response=S.VoteOut, status=201, errors=E_WRITE)
def post_vote(user, case_id, body):
    """Committee members of the deciding branch, not recused; a later vote replaces your earlier one."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        vote = cases.record_vote(s, case, _actor(s, user), body.respondent_id, body.outcome, body.reason,
                                 expected_version=body.expected_version, on_behalf_of=body.on_behalf_of)
        return _vote(vote)


# --- stand-ins ------------------------------------------------------------------------------------------

def _stand_in(r: StandIn) -> S.StandInOut:
    return S.StandInOut(id=r.id, principal_id=r.principal_id, stand_in_id=r.stand_in_id, starts_on=r.starts_on,
                        ends_on=r.ends_on, reason=r.reason, created_at=_iso(r.created_at),
                        revoked_at=_iso(r.revoked_at))


@operation("GET", "/stand-ins", summary="Your stand-ins", tag="review", response=S.StandInList, errors=(401,))
def list_stand_ins(user):
    """The stand-ins you named and those named for you, newest first."""
    with reading() as s:
        return S.StandInList(items=[_stand_in(r) for r in stand_ins.stand_ins_of(s, user.id)])


@operation("POST", "/stand-ins", summary="Name a stand-in for a period", tag="review", body=S.StandInIn,
           response=S.StandInOut, status=201, errors=E_WRITE)
def post_stand_in(user, body):
    """Committee members and chairs, for their own seat: within the period the stand-in votes (and, for a
    chair, returns, signs and reopens) on their behalf, never on a case they are conflicted on; a stand-in
    never names a further one (403 `passed_on`); 409 when you have one for part of the period."""
    with work() as s:
        return _stand_in(stand_ins.name_stand_in(s, _actor(s, user), body.stand_in_id,
                                                 date.fromisoformat(body.starts_on), date.fromisoformat(body.ends_on),
                                                 body.reason))


@operation("POST", "/stand-ins/{stand_in_id}/revoke", summary="Revoke a stand-in", tag="review",
           response=S.StandInOut, errors=E_WRITE)
def revoke_stand_in(user, stand_in_id):
    """The member who named the stand-in, or an administrator of their branch."""
    with work() as s:
        return _stand_in(stand_ins.revoke_stand_in(s, _actor(s, user), stand_in_id))


@operation("GET", "/cases/{case_id}/appeals", summary="Appeals of a case", tag="appeals",
           response=S.AppealList, errors=E_READ)
def list_appeals(user, case_id):
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        ntk = queries.need_to_know(s, case, user)
        return S.AppealList(items=[_appeal(a) for a in ntk.parts(s.exec(select(Appeal).where(Appeal.case_id == case.id)
                                                                          .order_by(Appeal.id)))])


@operation("POST", "/cases/{case_id}/appeals", summary="File your appeal", tag="appeals", body=S.AppealIn,
           response=S.AppealOut, status=201, errors=E_ISSUE)
def post_appeal(user, case_id, body):
    """A respondent appeals their own outcome during the appeal window."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        return _appeal(cases.file_appeal(s, case, _actor(s, user), body.grounds,
                                         expected_version=body.expected_version))


@operation("POST", "/cases/{case_id}/appeals/{appeal_id}/votes", summary="Vote on an appeal", tag="appeals",
           body=S.AppealVoteIn, response=S.AppealVoteOut, status=201, errors=E_ISSUE)
def post_appeal_vote(user, case_id, appeal_id, body):
    """Members of the appeal committee of the level above, not recused (original deciders, stage handlers,
    respondents, the investigator): uphold, or alter to a less severe outcome (never worse). A later vote
    replaces your earlier one."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        vote = cases.record_appeal_vote(s, case, _actor(s, user), appeal_id, body.decision, body.new_outcome,
                                        body.reason, expected_version=body.expected_version)
        return _appeal_vote(vote)


@operation("POST", "/cases/{case_id}/appeals/{appeal_id}/decision", summary="Sign an appeal decision",
           tag="appeals", body=S.AppealDecisionIn, response=S.AppealOut, errors=E_ISSUE)
def post_appeal_decision(user, case_id, appeal_id, body):
    """The chair of the appeal committee signs the decision its panel's votes carry, once they reach the
    quorum and a majority (409 before): upheld, or altered to the outcome the majority voted for."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        return _appeal(cases.decide_appeal(s, case, _actor(s, user), appeal_id, body.reason,
                                           expected_version=body.expected_version), s)


@operation("GET", "/cases/{case_id}/letters", summary="Letters of a case", tag="letters",
           response=S.LetterList, errors=E_READ)
def list_letters(user, case_id):
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        ntk = queries.need_to_know(s, case, user)
        return S.LetterList(items=[_letter(lt) for lt in s.exec(select(Letter).where(Letter.case_id == case.id)
                                                                 .order_by(Letter.id)) if ntk.reads_document(lt)])


@operation("POST", "/cases/{case_id}/letters", summary="Issue the determination letters", tag="letters",
           response=S.LetterList, errors=E_ISSUE)
def issue_letters(user, case_id):
    """The deciding branch's chair or an administrator of its scope, once the case is determined: the meeting
    minutes, every respondent's determination letter (and a batch case's report). A rerun, or a concurrent
    request, issues only what is missing. 503 `letter_font_missing` when the server cannot render them
    (nothing is stored)."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        issued = letters.issue_determination_letters(s, case, _actor(s, user))
        return S.LetterList(items=[_letter(lt) for lt in issued])


def _window(w) -> S.WindowOut:
    return S.WindowOut(respondent_id=w.respondent_id, letter_id=w.letter_id, doc_number=w.doc_number,
                       served_on=w.served_on.isoformat() if w.served_on else None, method=w.method,
                       appeal_deadline=w.deadline.isoformat() if w.deadline else None, final=w.final,
                       appealed=w.appealed, waived=w.waived, open=w.open(date.today()), receipt_id=w.receipt_id)


@operation("GET", "/cases/{case_id}/appeal-windows", summary="Each respondent's service and appeal window",
           tag="letters", response=S.WindowList, errors=E_READ)
def list_windows(user, case_id):
    """Per respondent: their current determination letter, when and how it was served, and the last day
    to appeal (from that service, the rule set's working days), or whether they appealed or waived."""
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        ntk = queries.need_to_know(s, case, user)
        return S.WindowList(items=[_window(w) for k, w in letters.appeal_windows(s, case).items() if ntk.sees(k)])


@operation("POST", "/letters/{letter_id}/service", summary="Record the service of a letter", tag="letters",
           body=S.ServiceIn, response=S.WindowOut, status=201, errors=E_ISSUE)
def post_service(user, letter_id, body):
    """The deciding branch's chair or an administrator: the letter was served in person or by post on
    `served_on`; the respondent's appeal window runs from that day, and the 送达回证 is issued."""
    with work() as s:
        lt = _visible_letter(s, user, letter_id)
        case = cases.get_case(s, lt.case_id)
        service = letters.record_service(s, case, _actor(s, user), lt.id, body.method,
                                         date.fromisoformat(body.served_on), served_by=body.served_by,
                                         expected_version=body.expected_version)
        return _window(letters.appeal_windows(s, case)[service.respondent_id])


@operation("POST", "/letters/{letter_id}/acknowledgement", summary="Acknowledge your letter (签收)",
           tag="letters", body=S.AcknowledgementIn, response=S.WindowOut, status=201, errors=E_ISSUE)
def post_acknowledgement(user, letter_id, body):
    """The respondent the letter is addressed to acknowledges it in the app: it is served today."""
    with work() as s:
        lt = _visible_letter(s, user, letter_id)
        case = cases.get_case(s, lt.case_id)
        service = letters.acknowledge(s, case, _actor(s, user), lt.id, expected_version=body.expected_version)
        return _window(letters.appeal_windows(s, case)[service.respondent_id])


@operation("POST", "/cases/{case_id}/waiver", summary="Waive your appeal (放弃申诉)", tag="appeals",
           body=S.WaiverIn, response=S.WindowOut, status=201, errors=E_ISSUE)
def post_waiver(user, case_id, body):
    """A respondent whose letter was served waives their appeal in writing; when every respondent has
    appealed, waived or run out of time, the case leaves the appeal window."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        waiver = cases.waive_appeal(s, case, _actor(s, user), body.statement, expected_version=body.expected_version)
        return _window(letters.appeal_windows(s, case)[waiver.respondent_id])


def _visible_letter(s, user, letter_id: int, *, read: bool = False) -> Letter:
    """The letter, if its case is in the caller's scope; to `read` it, also by need to know (403); a verb on
    it (service, acknowledgement) is decided by the policy of that verb."""
    lt = s.get(Letter, letter_id)
    if lt is None:
        raise NotFound(f"letter {letter_id} does not exist")
    case = scope.visible_case(s, user, lt.case_id)
    if read:
        queries.need_to_know(s, case, user).require_document(lt)  # 403 need_to_know
    return lt


@operation("GET", "/letters/{letter_id}", summary="Letter metadata", tag="letters", response=S.LetterOut,
           errors=E_PART)
def get_letter(user, letter_id):
    with reading() as s:
        return _letter(_visible_letter(s, user, letter_id, read=True))


@operation("GET", "/letters/{letter_id}/pdf", summary="The letter's PDF, as issued", tag="letters",
           produces="application/pdf", errors=E_PART, personal=False)
def get_letter_pdf(user, letter_id):
    """The stored PDF, byte for byte (its SHA-256 is in the metadata). The download is logged."""
    with work() as s:
        lt = _visible_letter(s, user, letter_id, read=True)
        access_log.record(s, user, "download_letter", lt.doc_number, lt.case_id, {"letter_id": lt.id, "via": "api"})
        pdf, number, kind = lt.pdf, lt.doc_number, lt.kind
    digits = "".join(c if c.isdigit() else " " for c in number).split()
    safe = "-".join([kind.replace("_", "-"), *digits])
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename=\"{safe}.pdf\"; "
                                                    f"filename*=UTF-8''{quote(number)}.pdf"})


@operation("GET", "/cases/{case_id}/case-file", summary="The case file (案件卷宗) as one PDF", tag="letters",
           produces="application/pdf", errors=E_PART, personal=False)
def get_case_file(user, case_id):
    """Cover and contents, every current document as issued, the case's audit trail and evidence list. Not for
    a respondent (403 `need_to_know`: they see only their own part). The download is logged."""
    with work() as s:
        case = scope.visible_case(s, user, case_id)
        body = case_file.case_file_pdf(s, case, user)
        case_file.log_download(s, user, case, body, "api")
        number = case.number
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename=\"case-file-{case_id}.pdf\"; "
                                                    f"filename*=UTF-8''{quote('案件卷宗-' + number)}.pdf"})


@operation("GET", "/cases/{case_id}/audit", summary="Audit trail of a case", tag="audit",
           response=S.AuditTrail, errors=E_PART)
def get_audit(user, case_id):
    """Every event of the case in chain order, with the hashes that link it into the audit chain. It names
    every vote and every respondent's facts: a respondent of the case is refused (403 `need_to_know`)."""
    with reading() as s:
        case = scope.visible_case(s, user, case_id)
        ntk = queries.need_to_know(s, case, user)
        ntk.require_named_votes()
        return S.AuditTrail(case_id=case.id, items=[S.AuditEventOut(**{k: v for k, v in ev.items() if k != "case_id"})
                                                     for ev in ntk.unanchored(audit.iter_events(s, case_id=case.id))])


@operation("POST", "/evaluations", summary="What-if evaluation (domain.md §9)", tag="rules",
           body=S.EvaluationIn, response=S.EvaluationOut, errors=(400, 401, 413, 415, 422))
def post_evaluation(user, body):
    """The recommendation engine on facts you supply; nothing is stored. A code the rule set does not have
    → 422."""
    request_json = body.model_dump(exclude_unset=True)
    with reading() as s:
        return S.EvaluationOut(**evaluation.evaluate(s, request_json))



@operation("GET", "/precedents", summary="Search the precedent library", tag="guidance", query=S.PrecedentQuery,
           response=S.PrecedentList, errors=(400, 401), personal=False)
def list_precedents(user, query):
    """Approved precedents (案例引导) by rule code, stage, final outcome, product and text, newest first. Every
    member of staff may read them: they are anonymised."""
    with reading() as s:
        found = guidance.search(s, user, code=query.code or "", stage=query.stage or "", outcome=query.outcome or "",
                                product=query.product_class or "", text=query.text or "")
        names = {b.id: b.name for b in s.exec(select(Branch).where(Branch.id.in_({p.branch_id for p in found})))}
        return S.PrecedentList(items=[S.PrecedentOut(**guidance.public_dict(p, names.get(p.branch_id, "")))
                                      for p in found])
