"""The case page and a form for every step of the lifecycle.

Each POST: parse, load (404), check scope and permission (403), call the service in one unit of work with
the version the user saw (409 when someone changed the case first), then redirect to the case page.
"""

from __future__ import annotations

import mimetypes
from collections import Counter
from datetime import date
from io import BytesIO
from types import SimpleNamespace
from urllib.parse import quote

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import bindparam
from sqlmodel import select

from ..db import rows
from ..domain import hearing, policy, rules
from ..domain import hr as hr_domain
from ..domain.errors import ConflictError, DocumentsUnavailable, GuardFailed, ValidationFailed
from ..domain.states import SERVICE_STATES, SEVERITY
from ..models import (
    OUTCOMES,
    Appeal,
    Branch,
    Case,
    Evidence,
    Letter,
    Loan,
    LoanStage,
    Respondent,
    RuleSetVersion,
    StageFact,
    User,
)
from ..services import (
    access_log,
    case_file,
    comments,
    deadlines,
    guidance,
    intake,
    investigation,
    letters,
    queries,
    rulesets,
)
from ..services import cases as case_service
from ..services import hr as hr_service
from ..unit import session, write_now
from . import access, help
from .common import (
    actor,
    deny,
    expected_version,
    int_field,
    load_case,
    not_found,
    reading,
    require,
    require_comment,
    text_field,
    today,
    work,
)
from .i18n import is_zh
from .messages import translate

bp = Blueprint("cases", __name__, url_prefix="/cases")


def _back(case_id: int, anchor: str = ""):
    return redirect(url_for("cases.show", case_id=case_id) + (f"#{anchor}" if anchor else ""))


def _ensure_ready(s, case: Case, action: str) -> None:
    """409 when the case's state (or the machine's guards) do not allow the action now."""
    reasons = access.machine_reasons(s, case, action, today())
    if reasons:
        raise GuardFailed("not possible now", reasons=reasons)


def _errors_from(exc: ValidationFailed, default_field: str = "_") -> dict[str, str]:
    return {exc.details.get("field") or default_field: translate(exc.message)}


# --- the case page -----------------------------------------------------------------------------------------

# What the case page reads besides the case's aggregate, built once: building a statement costs several times
# more than running it, and the page is the most visited one. Rows only shown are read as plain rows.
_PEOPLE = (select(User.id, User.name, User.employee_no, User.branch_id, Branch.name.label("branch_name"),
                  Branch.name_en.label("branch_name_en"))
           .join(Branch, Branch.id == User.branch_id).where(User.id.in_(bindparam("ids", expanding=True))))
_EVIDENCE = select(*Evidence.__table__.c).where(Evidence.case_id == bindparam("case_id")).order_by(Evidence.id)


def authority_view(case: Case) -> SimpleNamespace | None:
    """Why the case's committee has authority over it (the rule, the branch its loans are booked at with that
    branch's level, the total loan amount), for the case page; None for cases registered before."""
    why = case.authority
    if not why:
        return None
    names = why.get("origin_branch_name") or {}  # recorded with the reason: no statement more for the page
    return SimpleNamespace(rule=why["rule"], text=why["text"], total_amount=why["total_amount"],
                           branch_level=why["branch_level"], committee_level=why["committee_level"],
                           basis=why.get("basis"), source=why.get("source"),
                           origin=SimpleNamespace(name=names.get("zh", why.get("origin_branch", "")),
                                                  name_en=names.get("en", "")))


def case_page_data(s, case: Case, cf: policy.CaseView | None = None) -> dict:
    """Everything the case page shows, from the unit of work's aggregate plus what only the page shows.

    One statement per kind of record; nothing is read twice (the policy's view comes from the same reads).
    """
    agg = queries.aggregate(s, case)
    by_case = {"case_id": case.id}
    # need to know (policy.sees_all_parts): a respondent reads their own part and the tally only
    ntk = queries.need_to_know(s, case, current_user.actor)
    enterprise, events = agg.enterprise, ntk.unanchored(ntk.events(agg.events))
    cf = cf or agg.view()
    loans = agg.loans
    loan_by_id = {lo.id: lo for lo in loans}
    respondents, assignments = ntk.respondents(agg.respondents), agg.assignments
    all_votes, appeals = agg.valid_votes, ntk.parts(agg.appeals)
    # No anchoring: while the committee votes, a member sees the votes only once they have voted (policy).
    sees_tally = agg.sees_tally(current_user.actor)
    votes = ([] if not ntk.named_votes else all_votes if sees_tally
             else [v for v in all_votes if v.member_id == current_user.id])
    under_review = case.state == "under_review"
    user_ids = ({r.user_id for r in respondents} | {case.investigator_id} | {v.member_id for v in votes}
                | {v.on_behalf_of_id for v in votes}
                | {a.decided_by_id for a in appeals}) - {None}
    people = {u.id: u for u in rows(s, _PEOPLE, {"ids": list(user_ids)})} if user_ids else {}
    users = people
    branches = {u.branch_id: SimpleNamespace(id=u.branch_id, name=u.branch_name, name_en=u.branch_name_en)
                for u in people.values()}
    fact_at = {(f.respondent_id, f.loan_id, f.stage): f for f in agg.facts}
    rs_by_id = {i: rulesets.parsed_by_id(s, i) for i in {f.rule_set_version_id for f in agg.facts}
                | {case.rule_set_version_id}}
    procedure = rs_by_id[case.rule_set_version_id]
    evidence = [e for e in rows(s, _EVIDENCE, by_case).all() if ntk.reads_evidence(e)]
    out = []
    for r in respondents:
        stages = []
        for a in assignments:
            if a.user_id != r.user_id:
                continue
            f = fact_at.get((r.id, a.loan_id, a.stage))
            stages.append(SimpleNamespace(loan=loan_by_id.get(a.loan_id), stage=a.stage, performed_on=a.performed_on,
                                          fact=f, rs=rs_by_id.get(f.rule_set_version_id) if f else None))
        mine = [v.outcome for v in all_votes if v.respondent_id == r.id] if sees_tally else []
        user = users.get(r.user_id)
        # Attributes, not dict keys: templates read `p.r`, and Jinja finds a dict's keys only after a failed
        # attribute look-up (an exception each, about 80 per case page).
        out.append(SimpleNamespace(r=r, user=user, branch=branches.get(user.branch_id) if user else None,
                                   stages=stages, tally=Counter(mine),
                                   heard=hearing.position(r.statement_at, r.statement_declined_at,
                                                          r.statement_due, today()),
                                   carried=rules.decide_by_votes(mine, None, procedure)
                                   if under_review and sees_tally else None))
    return {
        "case": case, "cf": cf, "enterprise": enterprise, "branch": SimpleNamespace(
            id=case.branch_id, name=agg.branch_name, name_en=agg.branch_name_en, path=agg.branch_path),
        "authority": authority_view(case),
        "loans": loans, "people": out, "users": users, "votes": votes, "named_votes": ntk.named_votes,
        "whole_file": ntk.all,
        "sees_tally": sees_tally,
        "appeals": appeals, "evidence": evidence,
        "letters": [lt for lt in agg.letters if ntk.reads_document(lt)], "events": events, "procedure": procedure,
        "respondent_by_id": {r.id: r for r in respondents},
        "investigator": users.get(case.investigator_id),
        "eligible_voters": agg.eligible_voters() if under_review else [],
        "windows": ({k: w for k, w in letters.appeal_windows(s, case).items() if ntk.sees(k)}
                    if case.state in SERVICE_STATES else {}),
        "preview_kinds": [k for k, st in letters.PREVIEW_KINDS.items() if st == case.state
                          and (k != "batch_report" or case.batch_report)],
    }


ACTION_STATES = {k: v[0] for k, v in access.ACTIONS.items()}


@bp.get("/<int:case_id>")
@login_required
def show(case_id: int):
    me = current_user._get_current_object()
    day = today()
    s = session()
    _ = queries.load(s, case_id).events  # the timeline, which also says who signed (the policy's view reads it)
    case, view = load_case(s, case_id)
    data = case_page_data(s, case, view)
    data["deadline"] = deadlines.deadline_info(s, case, day)
    data["one_year"] = deadlines.one_year(s, case, day)
    actions = access.case_actions(s, case, me, view, day)
    help.set_page_help(*help.for_case(me.actor, view))  # the guide of the viewer's part in the case
    page = render_template("cases/show.html", **data, actions=actions, today=day, action_states=ACTION_STATES,
                           reads_comments=policy.reads_comments(me.actor, view))
    # the view's access-log entry, in the request's unit of work, once the page is made (not if it fails)
    access_log.record(write_now(), me, "view_case", target=case.number, case_id=case.id)
    return page


@bp.get("/<int:case_id>/case-file.pdf")
@login_required
def download_case_file(case_id: int):
    """The case file (案件卷宗): cover and contents, every current document, the trail, the evidence list."""
    s = session()
    case, cf = load_case(s, case_id)
    body = case_file.case_file_pdf(s, case, current_user)  # PermissionDenied: 403 with the policy's reason
    case_file.log_download(write_now(), current_user, case, body, "web")
    name = f"案件卷宗-{case.number}.pdf"
    response = send_file(BytesIO(body), mimetype="application/pdf", as_attachment=True, download_name=name)
    response.headers["Content-Disposition"] = (f'attachment; filename="case-file-{case.id}.pdf"; '
                                               f"filename*=UTF-8''{quote(name)}")
    return response


@bp.get("/<int:case_id>/evidence/<int:evidence_id>")
@login_required
def download_evidence(case_id: int, evidence_id: int):
    s = session()
    case, cf = load_case(s, case_id)
    ev = s.get(Evidence, evidence_id)
    if ev is None or ev.case_id != case.id:
        not_found()
    queries.need_to_know(s, case, current_user.actor).require_evidence(ev)  # 403 need_to_know
    path = investigation.evidence_path(current_app.config["EVIDENCE_DIR"], ev)
    if not path.exists():
        not_found(_("The file of this evidence is missing from the evidence store; tell the administrator."))
    access_log.record(write_now(), current_user, "download_evidence", target=ev.filename, case_id=case.id,
                      details={"evidence_id": ev.id, "sha256": ev.sha256})
    return send_file(BytesIO(path.read_bytes()), mimetype=ev.content_type, as_attachment=True,
                     download_name=ev.filename)


@bp.get("/<int:case_id>/evidence/<int:evidence_id>/preview")
@login_required
def preview_evidence(case_id: int, evidence_id: int):
    """A PDF or image evidence file shown in the browser: its type from its content, in a sandbox (no
    scripts, no forms, no access to the site), recorded in the access log like a download."""
    s = session()
    case, cf = load_case(s, case_id)
    ev = s.get(Evidence, evidence_id)
    if ev is None or ev.case_id != case.id:
        not_found()
    queries.need_to_know(s, case, current_user.actor).require_evidence(ev)  # 403 need_to_know
    path = investigation.evidence_path(current_app.config["EVIDENCE_DIR"], ev)
    if not path.exists():
        not_found(_("The file of this evidence is missing from the evidence store; tell the administrator."))
    data = path.read_bytes()
    kind = investigation.preview_type(data[:16])
    if kind is None:
        not_found(_("Only PDF files and PNG or JPEG images can be previewed; download this file instead."))
    access_log.record(write_now(), current_user, "preview_evidence", target=ev.filename, case_id=case.id,
                      details={"evidence_id": ev.id, "sha256": ev.sha256})
    response = send_file(BytesIO(data), mimetype=kind, as_attachment=False, download_name=ev.filename)
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/<int:case_id>/letters/<int:letter_id>.pdf")
@login_required
def download_letter(case_id: int, letter_id: int):
    s = session()
    case, cf = load_case(s, case_id)
    letter = s.get(Letter, letter_id)
    if letter is None or letter.case_id != case.id:
        not_found()
    queries.need_to_know(s, case, current_user.actor).require_document(letter)  # 403 need_to_know
    pdf, name = letter.pdf, f"{letter.doc_number}.pdf"
    access_log.record(write_now(), current_user, "download_letter", target=letter.doc_number, case_id=case.id,
                      details={"letter_id": letter.id, "sha256": letter.sha256})
    response = send_file(BytesIO(pdf), mimetype="application/pdf", as_attachment=False, download_name=name)
    response.headers["Content-Disposition"] = (
        f'inline; filename="{ascii_filename(letter.doc_number, letter.kind)}"; '
        f"filename*=UTF-8''{quote(name)}")
    return response


def ascii_filename(doc_number: str, kind: str) -> str:
    """An ASCII fallback name for a document (郑分免认〔2026〕12号 → determination-2026-12.pdf); the UTF-8 name
    goes beside it in Content-Disposition (filename*)."""
    digits = [part for part in "".join(c if c.isdigit() else " " for c in doc_number).split()]
    return "-".join([kind.replace("_", "-"), *digits]) + ".pdf"


# --- registration ------------------------------------------------------------------------------------------

@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    refusal = policy.why_not_register(current_user.actor)
    if refusal is not None:
        deny(access.refusal_text(refusal), refusal.code)
    errors: dict[str, str] = {}
    loan_text = text_field("loans") if request.method == "POST" else request.args.get("loans", "")
    picked = sorted({int(v) for v in request.form.getlist("loan_ids") if v.isdigit()})
    if request.method == "POST":
        numbers = [n for n in loan_text.replace(",", " ").replace("，", " ").split() if n]
        if not numbers and not picked:
            errors["loans"] = _("Enter at least one loan number.")
        else:
            try:
                with work() as s:
                    found = dict(s.exec(select(Loan.loan_no, Loan.id).where(Loan.loan_no.in_(numbers))).all())
                    unknown = [n for n in numbers if n not in found]
                    if unknown:
                        raise ValidationFailed("unknown loans", field="loans", unknown=unknown)
                    case = case_service.open_case(s, actor(s), sorted(set(found.values()) | set(picked)),
                                                  batch_report=request.form.get("batch_report") == "1")
                    case_id = case.id
                    # Registered to a committee above the registrar's branch: it leaves their scope.
                    committee = s.get(Branch, case.branch_id)
                    visible = policy.can_view(current_user.actor, queries.aggregate(s, case).view())
            except ValidationFailed as exc:
                if exc.details.get("unknown"):
                    errors["loans"] = _("Unknown loan number(s): %(numbers)s", numbers=", ".join(exc.details["unknown"]))
                else:
                    errors = _errors_from(exc, "loans")
            else:
                if not visible:
                    flash(_("The case has been registered to the committee of %(branch)s, which has authority "
                            "over it; it is now in that committee's hands.",
                            branch=committee.name if is_zh() else (committee.name_en or committee.name)), "success")
                    return redirect(url_for("inbox.index"))
                flash(_("The case has been registered."), "success")
                return _back(case_id)
    # The loan picker: loans of the user's scope by number prefix or enterprise name, awaiting a case first.
    q = request.args.get("q", "").strip()
    with reading() as s:
        results = intake.search_loans(s, actor(s), q) if q else []
    return render_template("cases/new.html", errors=errors, loan_text=loan_text, q=q, results=results,
                           picked=set(picked)), (400 if errors else 200)


# --- investigation -----------------------------------------------------------------------------------------

@bp.route("/<int:case_id>/assign", methods=["GET", "POST"])
@login_required
def assign(case_id: int):
    errors: dict[str, str] = {}
    if request.method == "POST":
        version = expected_version()
        investigator_id = int_field("investigator_id")
        if investigator_id is None:
            errors["investigator_id"] = _("Choose an investigator.")
        else:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "assign")
                    case_service.assign_investigator(s, case, actor(s), investigator_id, expected_version=version)
            except ValidationFailed as exc:
                errors = _errors_from(exc, "investigator_id")
            else:
                flash(_("The investigator has been assigned and the investigation has started."), "success")
                return _back(case_id)
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "assign")
        _ensure_ready_for_form(s, case, "assign")
        candidates = access.investigator_candidates(s, case)
        branches = {b.id: b for b in s.exec(select(Branch))}
    return render_template("cases/assign.html", case=case, candidates=candidates, branches=branches,
                           errors=errors), (400 if errors else 200)


def _ensure_ready_for_form(s, case: Case, action: str) -> None:
    """A form page is only offered in a state where its step can be taken."""
    action_states, _trigger = access.ACTIONS[action]
    if case.state not in action_states:
        _ensure_ready(s, case, action)


def _my_respondent(s, case: Case) -> Respondent | None:
    return s.exec(select(Respondent).where(Respondent.case_id == case.id,
                                           Respondent.user_id == current_user.id)).first()


def _store_upload(s, case: Case, me: User, *, field: str = "file", kind: str, respondent_id=None,
                  appeal_id=None, description: str = "") -> Evidence | None:
    """Store an uploaded file as evidence (None when no file was chosen)."""
    upload = request.files.get(field)
    if upload is None or not upload.filename:
        return None
    content_type = upload.mimetype or ""
    if content_type in ("", "application/octet-stream"):
        content_type = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    return investigation.add_evidence(
        s, case, me, filename=upload.filename, content_type=content_type, data=upload.read(),
        storage_dir=current_app.config["EVIDENCE_DIR"], description=description, respondent_id=respondent_id,
        appeal_id=appeal_id, kind=kind, max_bytes=int(current_app.config.get("MAX_CONTENT_LENGTH") or 20 << 20))


@bp.route("/<int:case_id>/statement", methods=["GET", "POST"])
@login_required
def statement(case_id: int):
    errors: dict[str, str] = {}
    text = text_field("statement") if request.method == "POST" else None
    if request.method == "POST":
        version = expected_version()
        if not text:
            errors["statement"] = _("Write your statement.")
        else:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "statement")
                    me = actor(s)
                    mine = _my_respondent(s, case)
                    _store_upload(s, case, me, kind="statement", respondent_id=mine.id if mine else None,
                                  description=text_field("description"))
                    case_service.file_statement(s, case, me, text, expected_version=version)
            except ValidationFailed as exc:
                errors = _errors_from(exc, "statement")
            else:
                flash(_("Your statement has been filed."), "success")
                return _back(case_id, "respondents")
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "statement")
        _ensure_ready_for_form(s, case, "statement")
        mine = _my_respondent(s, case)
    return render_template("cases/statement.html", case=case, respondent=mine,
                           text=text if text is not None else (mine.statement or ""), errors=errors), \
        (400 if errors else 200)


@bp.route("/<int:case_id>/statement/decline", methods=["POST"])
@login_required
def decline_statement(case_id: int):
    """A respondent declines in writing to file a statement (they may still file one until submission)."""
    version = expected_version()
    try:
        with work() as s:
            case, cf = load_case(s, case_id)
            require(cf, "statement")
            case_service.decline_statement(s, case, actor(s), text_field("note") or "", expected_version=version)
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("cases.statement", case_id=case_id))
    flash(_("You have declined to file a statement. You can still file one until the investigation is submitted."),
          "success")
    return _back(case_id, "respondents")


@bp.route("/<int:case_id>/evidence", methods=["GET", "POST"])
@login_required
def evidence(case_id: int):
    errors: dict[str, str] = {}
    next_url = request.values.get("next") or ""
    if not next_url.startswith(f"/cases/{case_id}"):
        next_url = url_for("cases.show", case_id=case_id) + "#evidence"
    if request.method == "POST":
        expected_version()
        try:
            with work() as s:
                case, cf = load_case(s, case_id)
                require(cf, "evidence")
                _ensure_ready(s, case, "evidence")
                me = actor(s)
                mine = _my_respondent(s, case)
                if mine is not None:
                    appeal = s.exec(select(Appeal).where(Appeal.respondent_id == mine.id)).first()
                    kind, rid, aid = ("appeal" if case.state == "appeal_window" else "statement"), mine.id, \
                        (appeal.id if appeal else None)
                else:
                    kind, rid, aid = "investigation", int_field("respondent_id"), None
                    if rid is not None and rid not in {r.id for r in case_service.respondents_of(s, case.id)}:
                        raise ValidationFailed("unknown respondent", field="respondent_id")
                if _store_upload(s, case, me, kind=kind, respondent_id=rid, appeal_id=aid,
                                 description=text_field("description")) is None:
                    raise ValidationFailed("choose a file", field="file")
        except ValidationFailed as exc:
            errors = _errors_from(exc, "file")
            if exc.message == "choose a file":
                errors = {"file": _("Choose a file to upload.")}
        else:
            flash(_("The evidence has been stored."), "success")
            return redirect(next_url)
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "evidence")
        _ensure_ready_for_form(s, case, "evidence")
        respondents = case_service.respondents_of(s, case.id)
        users = {u.id: u for u in s.exec(select(User).where(User.id.in_([r.user_id for r in respondents])))}
    return render_template("cases/evidence.html", case=case, respondents=respondents, users=users,
                           is_respondent=current_user.id in cf.respondent_user_ids, next_url=next_url,
                           errors=errors), (400 if errors else 200)


def _facts_from_form(form, rs: rules.RuleSet, stage: str) -> dict:
    unperformed = []
    for duty in rs.duties_for(stage):
        if form.get(f"duty_{duty.code}") == "unperformed":
            unperformed.append({"duty": duty.code, "causal": form.get(f"causal_{duty.code}") == "1",
                                "evidence": [int(e) for e in form.getlist(f"evidence_{duty.code}") if e.isdigit()]})
    return {"positive": form.getlist("positive"), "mitigating": form.getlist("mitigating"),
            "negative": form.getlist("negative"), "violation": form.get("violation") == "1",
            "dissented": form.get("dissented") == "1", "unperformed": unperformed,
            "findings": (form.get("findings") or "").strip(),
            "findings_evidence": [int(e) for e in form.getlist("findings_evidence") if e.isdigit()]}


def _items_for(items, stage: str):
    return [i for i in items if i.stages is None or stage in i.stages]


@bp.route("/<int:case_id>/facts/<int:respondent_id>/<int:loan_id>/<stage>", methods=["GET", "POST"])
@login_required
def facts(case_id: int, respondent_id: int, loan_id: int, stage: str):
    errors: dict[str, str] = {}
    posted = None
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "facts")
        _ensure_ready_for_form(s, case, "facts")
        respondent = s.get(Respondent, respondent_id)
        loan = s.get(Loan, loan_id)
        if respondent is None or respondent.case_id != case.id or loan is None:
            not_found()
        assignment = s.exec(select(LoanStage).where(LoanStage.loan_id == loan_id, LoanStage.stage == stage,
                                                    LoanStage.user_id == respondent.user_id)).first()
        if assignment is None:
            not_found()
        version_row = rulesets.version_in_force(s, assignment.performed_on)
        rs = rulesets.parsed(version_row)
        existing = s.exec(select(StageFact).where(StageFact.respondent_id == respondent_id,
                                                  StageFact.loan_id == loan_id, StageFact.stage == stage)).first()
        evidence_rows = list(s.exec(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)))
        person = s.get(User, respondent.user_id)
    if request.method == "POST":
        version = expected_version()
        posted = _facts_from_form(request.form, rs, stage)
        try:
            if not posted["findings"]:
                raise ValidationFailed("write the findings", field="findings")
            with work() as s:
                case, cf = load_case(s, case_id)
                require(cf, "facts")
                investigation.record_facts(s, case, actor(s), respondent_id, loan_id, stage, posted,
                                           expected_version=version)
        except ValidationFailed as exc:
            errors = _errors_from(exc)
            if exc.message == "write the findings":
                errors = {"findings": _("Write the findings: a stage is recorded only with them.")}
        else:
            flash(_("The facts have been recorded."), "success")
            return _back(case_id, f"r{respondent_id}")
    current = posted if posted is not None else (existing.facts if existing else None)
    unperformed = {u["duty"]: u for u in (current or {}).get("unperformed", [])}
    with reading() as s:
        similar = guidance.similar(s, stage, guidance.facts_codes(current), exclude_case_id=case_id)
    return render_template("cases/facts.html", case=case, respondent=respondent, person=person, loan=loan,
                           stage=stage, assignment=assignment, version_row=version_row, rs=rs,
                           positive=_items_for(rs.positive, stage), mitigating=_items_for(rs.mitigating, stage),
                           negative=_items_for(rs.negative, stage), duties=rs.duties_for(stage),
                           current=current or {}, unperformed=unperformed, evidence=evidence_rows,
                           errors=errors, similar=similar), (400 if errors else 200)


# --- simple state changes (one button) ------------------------------------------------------------------------

# Steps that cannot be undone from the case page: the first POST shows what will happen (who is told, what is
# issued, what can no longer change) and acts only when it comes back with confirm=1. No JavaScript needed.
CONFIRMED_STEPS = ("submit", "determine", "issue_letters", "start_publicity", "refer", "close", "withdraw")


def _confirm_texts(action: str) -> dict:
    if action == "submit":
        return {"title": _("Submit the investigation?"), "button": _("Yes, submit the investigation"),
                "told": _("The deciding branch's committee: the case appears in its members' and chair's inbox "
                          "for review."),
                "issued": _("The recommendation for every respondent and the investigation report; the NPL "
                            "tolerance figures are frozen into the case."),
                "final": _("The investigation is closed: it reopens only if the committee returns the case for "
                           "investigation.")}
    if action == "determine":
        return {"title": _("Sign the determination?"), "button": _("Yes, sign the determination"),
                "told": _("Nobody yet: the respondents learn the outcome from the determination letters, which "
                          "are issued next."),
                "issued": _("The determination, with the outcome carried by the votes for each respondent and "
                            "your deviation reasons."),
                "final": _("Voting ends and the outcomes are fixed; only an objection during publicity or an "
                           "appeal can change them.")}
    if action == "issue_letters":
        return {"title": _("Issue the determination letters?"), "button": _("Yes, issue the letters"),
                "told": _("Every respondent: each receives their determination letter."),
                "issued": _("The minutes of the committee meeting (with each member's vote by name) and one "
                            "determination letter per respondent."),
                "final": _("Issued documents are numbered and signed; they cannot be withdrawn or edited.")}
    if action == "start_publicity":
        return {"title": _("Start publicity?"), "button": _("Yes, start publicity"),
                "told": _("The bank's staff: the results are put on public notice for the publicity period."),
                "issued": _("The public notice of the results."),
                "final": _("The results are public; from now on they change only after a substantiated "
                           "objection or an appeal.")}
    if action == "refer":
        return {"title": _("Refer for accountability?"), "button": _("Yes, refer the case"),
                "told": _("The accountability procedure: respondents found liable or with reduced liability "
                          "are handed to it."),
                "issued": _("The referral letter."),
                "final": _("The final outcomes can no longer be appealed or changed in this case.")}
    if action == "close":
        return {"title": _("Close the case?"), "button": _("Yes, close the case"),
                "told": _("Nobody is notified; the case leaves every inbox."),
                "issued": _("Nothing is issued."),
                "final": _("A closed case is read-only: nothing in it can change any more.")}
    if action == "withdraw":
        return {"title": _("Withdraw the case?"), "button": _("Yes, withdraw the case"),
                "told": _("Nobody is notified; the case leaves every inbox."),
                "issued": _("Nothing is issued; the reason is recorded in the timeline."),
                "final": _("A withdrawn case is ended without a determination and cannot be resumed.")}
    raise KeyError(action)


def _unconfirmed(case_id: int, action: str):
    """The confirmation page when a POST for an irreversible step does not carry confirm=1, else None.

    Every posted field (the expected version, a reason, deviation reasons) is carried to the confirming POST, so
    a change by someone else in the meantime is still detected.
    """
    if request.form.get("confirm") == "1":
        return None
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, action)
        _ensure_ready_for_form(s, case, action)
    carried = [(k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token", "confirm")]
    return render_template("cases/confirm.html", case=case, texts=_confirm_texts(action), carried=carried,
                           action_url=request.path)


def _button(case_id: int, action: str, call, done: str, anchor: str = ""):
    if action in CONFIRMED_STEPS and (page := _unconfirmed(case_id, action)) is not None:
        return page
    version = expected_version()
    try:
        with work() as s:
            case, cf = load_case(s, case_id)
            require(cf, action)
            call(s, case, actor(s), version)
    except DocumentsUnavailable as exc:
        # Nothing was stored (the step was rolled back); the user reads why on the case page.
        if exc.message.startswith("documents cannot be signed"):
            flash(_("The documents cannot be signed on this server because the signing certificate cannot be "
                    "read. Nothing was issued or changed; ask the administrator to check LETTER_SIGNING_P12."),
                  "error")
        else:
            flash(_("The documents cannot be produced on this server because the Chinese letter font is missing. "
                    "Nothing was issued or changed; ask the administrator to run scripts/setup."), "error")
        return _back(case_id, anchor)
    flash(done, "success")
    return _back(case_id, anchor)


@bp.post("/<int:case_id>/submit")
@login_required
def submit(case_id: int):
    return _button(case_id, "submit", lambda s, c, a, v: case_service.submit_investigation(
        s, c, a, expected_version=v, today=today()), _("The investigation has been submitted to the committee."))


@bp.post("/<int:case_id>/letters")
@login_required
def issue_letters(case_id: int):
    def call(s, case, me, version):
        if case.version != version:  # issuing letters does not change the case, so compare here
            raise ConflictError("the case was changed by someone else in the meantime; reload and try again")
        letters.issue_determination_letters(s, case, me, today=today())

    return _button(case_id, "issue_letters", call, _("The minutes and the determination letters have been issued."),
                   "letters")


@bp.post("/<int:case_id>/letters/<int:letter_id>/service")
@login_required
def record_service(case_id: int, letter_id: int):
    """The chair (or an administrator) records how and when a determination letter was served."""
    method = request.form.get("method", "")
    served_by = text_field("served_by")
    try:
        served_on = date.fromisoformat(text_field("served_on"))
    except ValueError:
        served_on = None

    def call(s, case, me, version):
        if served_on is None:
            raise ValidationFailed("give the day of service", field="served_on")
        letters.record_service(s, case, me, letter_id, method, served_on, served_by=served_by,
                               expected_version=version, today=today())

    return _form_button(case_id, "record_service", call, _("The service of the letter has been recorded."),
                        "letters")


@bp.post("/<int:case_id>/letters/<int:letter_id>/acknowledge")
@login_required
def acknowledge(case_id: int, letter_id: int):
    """A respondent acknowledges their letter in the app (签收): it is served today."""
    return _form_button(case_id, "acknowledge", lambda s, c, a, v: letters.acknowledge(
        s, c, a, letter_id, expected_version=v, today=today()),
        _("You have acknowledged your letter; your appeal window runs from today."), "letters")


def _form_button(case_id: int, action: str, call, done: str, anchor: str):
    """A small form on the case page: a refused input is flashed there (nothing is changed)."""
    try:
        return _button(case_id, action, call, done, anchor)
    except (ValidationFailed, ConflictError) as exc:
        flash(translate(exc.message), "error")
        return _back(case_id, anchor)


@bp.route("/<int:case_id>/waive", methods=["GET", "POST"])
@login_required
def waive_appeal(case_id: int):
    """A respondent waives their appeal in writing (放弃申诉)."""
    errors: dict[str, str] = {}
    statement = text_field("statement")
    if request.method == "POST":
        version = expected_version()
        if not statement:
            errors["statement"] = _("Write that you waive your appeal.")
        else:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "waive_appeal")
                    case_service.waive_appeal(s, case, actor(s), statement, expected_version=version, today=today())
            except ValidationFailed as exc:
                errors = _errors_from(exc, "statement")
            else:
                flash(_("Your waiver of appeal has been recorded."), "success")
                return _back(case_id, "windows")
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "waive_appeal")
        _ensure_ready_for_form(s, case, "waive_appeal")
        mine = _my_respondent(s, case)
        window = letters.appeal_windows(s, case).get(mine.id) if mine else None
    return render_template("cases/waive.html", case=case, window=window,
                           statement=statement or _("I have received my determination letter, accept its outcome and "
                                                    "waive my right to appeal."),
                           errors=errors), (400 if errors else 200)


@bp.get("/<int:case_id>/preview/<kind>")
@login_required
def preview(case_id: int, kind: str):
    """A document as it would be issued now: watermarked 草稿, unnumbered, stored nowhere."""
    respondent_id = request.args.get("respondent", type=int)
    try:
        with reading() as s:
            case, cf = load_case(s, case_id)
            require(cf, "preview_documents")
            rendered = letters.preview(s, case, actor(s), kind, respondent_id=respondent_id, today=today())
    except DocumentsUnavailable:
        flash(_("The documents cannot be produced on this server because the Chinese letter font is missing. "
                "Nothing was issued or changed; ask the administrator to run scripts/setup."), "error")
        return _back(case_id, "letters")
    return send_file(BytesIO(rendered.pdf), mimetype="application/pdf", as_attachment=False,
                     download_name=f"draft-{kind}.pdf")


@bp.post("/<int:case_id>/publicity")
@login_required
def start_publicity(case_id: int):
    return _button(case_id, "start_publicity", lambda s, c, a, v: case_service.start_publicity(
        s, c, a, expected_version=v), _("The results are now on public notice."))


@bp.post("/<int:case_id>/end-publicity")
@login_required
def end_publicity(case_id: int):
    return _button(case_id, "end_publicity", lambda s, c, a, v: case_service.end_publicity(
        s, c, a, expected_version=v), _("The publicity period has ended; the appeal window is open."))


@bp.post("/<int:case_id>/close-appeal-window")
@login_required
def close_appeal_window(case_id: int):
    return _button(case_id, "close_appeal_window", lambda s, c, a, v: case_service.close_appeal_window(
        s, c, a, expected_version=v), _("The appeal window has been closed."))


@bp.post("/<int:case_id>/conclude")
@login_required
def conclude(case_id: int):
    return _button(case_id, "conclude", lambda s, c, a, v: case_service.conclude_appeals(
        s, c, a, expected_version=v), _("The appeals are concluded; the determination is final."))


@bp.post("/<int:case_id>/refer")
@login_required
def refer(case_id: int):
    """Refer the case with its record (recipient department, reference, respondents, matters) from the
    accountability page's form; a bad field sends the user back there with the error, nothing changed."""
    def call(s, case, me, version):
        chosen = [int(v) for v in request.form.getlist("respondents") if v.isdigit()]
        case_service.refer_for_accountability(s, case, me, recipient=text_field("recipient"),
                                              reference=text_field("reference"), matters=text_field("matters"),
                                              respondent_ids=chosen or None, expected_version=version,
                                              today=today())

    try:
        return _button(case_id, "refer", call, _("The case has been referred to the accountability procedure."))
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("cases.accountability", case_id=case_id))


# --- accountability: the referral record, the sanctions recorded back, refunds -------------------------------

@bp.get("/<int:case_id>/accountability")
@login_required
def accountability(case_id: int):
    """The case's referral record, the sanctions recorded for each person and the refunds due (a respondent
    reads their own), with the referral form and the form to record sanctions for those the policy allows."""
    with reading() as s:
        case, cf = load_case(s, case_id)
        me = current_user.actor
        found = hr_service.accountability(s, case, me)
        agg = queries.aggregate(s, case)
        may_refer = policy.why_not(me, cf, "refer") is None and case.state == "final"
        may_record = (policy.why_not(me, cf, "record_sanctions") is None
                      and case.state in policy.ACTIONS["record_sanctions"][0])
        outcomes = {r.id: hr_service.current_outcome(agg, r) for r in agg.respondents}
        people = {u.id: u for u in s.exec(select(User).where(User.id.in_([r.user_id for r in agg.respondents])))}
        respondents = [(r, people.get(r.user_id), outcomes[r.id]) for r in agg.respondents
                       if policy.why_not_see(me, cf, r.id) is None]
        default_recipient = letters.default_recipient(agg.procedure)
    return render_template("cases/accountability.html", case=case, found=found, may_refer=may_refer,
                           may_record=may_record, respondents=respondents, default_recipient=default_recipient,
                           sanction_types=hr_domain.SANCTION_TYPES, decisions=hr_domain.IMPROVING_DECISIONS,
                           people=people)


@bp.post("/<int:case_id>/sanctions")
@login_required
def record_sanction(case_id: int):
    """Record the sanctions applied to one respondent (an administrator whose scope holds the case)."""
    try:
        with work() as s:
            case, cf = load_case(s, case_id)
            require(cf, "record_sanctions")
            hr_service.record_sanction(s, case, actor(s), int_field("respondent_id") or 0,
                                       points=text_field("points") or 0, sanction_type=text_field("sanction_type"),
                                       amount=text_field("amount") or None, month=text_field("month"),
                                       note=text_field("note"))
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("cases.accountability", case_id=case_id)), 303
    flash(_("The sanctions have been recorded."), "success")
    return redirect(url_for("cases.accountability", case_id=case_id) + "#sanctions")


@bp.post("/<int:case_id>/close")
@login_required
def close(case_id: int):
    return _button(case_id, "close", lambda s, c, a, v: case_service.close(s, c, a, expected_version=v),
                   _("The case has been closed."))


# --- steps that need a reason -------------------------------------------------------------------------------

REASON_ACTIONS = {
    "return": (lambda s, c, a, reason, v: case_service.return_for_investigation(s, c, a, reason, expected_version=v)),
    "reopen": (lambda s, c, a, reason, v: case_service.reopen(s, c, a, reason, expected_version=v)),
    "withdraw": (lambda s, c, a, reason, v: case_service.withdraw(s, c, a, reason, expected_version=v)),
    "reevaluate": (lambda s, c, a, reason, v: case_service.reevaluate(
        s, c, a, int_field("rule_set_version") or 0, reason, expected_version=v)),
}


def _reason_texts(action: str, case: Case | None = None) -> dict:
    if action == "return":
        return {"title": _("Return for investigation"), "button": _("Return to the investigator"),
                "help": _("Votes cast so far will no longer count. Say what must be investigated further."),
                "done": _("The case has been returned for investigation.")}
    if action == "reopen":
        return {"title": _("Reopen after an objection"), "button": _("Reopen"),
                "help": _("A substantiated objection sends the case back to the committee; votes cast so far "
                          "will no longer count."),
                "done": _("The case has been reopened for review.")}
    if action == "reevaluate":
        return {"title": _("Re-judge under another rule-set version"), "button": _("Re-judge"),
                "help": _("Each stage is normally judged by the rule-set version in force on the day it was "
                          "handled. Re-judging applies the chosen version to every stage of the case; it is "
                          "recorded in the timeline, and votes cast so far no longer count."),
                "done": _("The case has been re-judged under the chosen rule-set version.")}
    if action == "withdraw":
        return {"title": _("Withdraw the case"), "button": _("Withdraw"),
                "help": _("For example: the loan was recovered or upgraded, or the case was merged into another."),
                "done": _("The case has been withdrawn.")}
    hold = bool(case and case.legal_hold)
    return {"title": _("Lift the legal hold") if hold else _("Place a legal hold"),
            "button": _("Lift the hold") if hold else _("Place the hold"),
            "help": _("A case under legal hold cannot be withdrawn."),
            "done": _("The legal hold has been lifted.") if hold else _("The legal hold has been placed.")}


@bp.route("/<int:case_id>/<any(return, reopen, withdraw, reevaluate, 'legal-hold'):step>", methods=["GET", "POST"])
@login_required
def reason_step(case_id: int, step: str):
    action = step.replace("-", "_")
    errors: dict[str, str] = {}
    reason = text_field("reason")
    if request.method == "POST":
        version = expected_version()
        if not reason:
            errors["reason"] = _("Give a reason.")
        elif action in CONFIRMED_STEPS and (page := _unconfirmed(case_id, action)) is not None:
            return page
        else:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, action)
                    if action == "legal_hold":
                        texts = _reason_texts(action, case)
                        case_service.set_legal_hold(s, case, actor(s), not case.legal_hold, reason,
                                                    expected_version=version)
                    else:
                        texts = _reason_texts(action)
                        REASON_ACTIONS[action](s, case, actor(s), reason, version)
            except ValidationFailed as exc:
                errors = _errors_from(exc, "reason")
            else:
                flash(texts["done"], "success")
                return _back(case_id)
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, action)
        if action not in ("legal_hold", "reevaluate"):
            _ensure_ready(s, case, action)
        elif action == "reevaluate":
            _ensure_ready_for_form(s, case, action)
        versions = list(s.exec(select(RuleSetVersion).where(RuleSetVersion.status == "published")
                               .order_by(RuleSetVersion.version))) if action == "reevaluate" else []
    return render_template("cases/reason.html", case=case, step=step, texts=_reason_texts(action, case),
                           reason=reason, errors=errors, versions=versions), (400 if errors else 200)


# --- 督办 -------------------------------------------------------------------------------------------------------

@bp.route("/<int:case_id>/urge", methods=["GET", "POST"])
@login_required
def urge(case_id: int):
    """A supervisor urges (督办) the case's current step, with a message to the person whose step it is."""
    errors: dict[str, str] = {}
    message = text_field("message")
    if request.method == "POST":
        if not message:
            errors["message"] = _("Write what you urge.")
        else:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "urge")
                    case_service.urge(s, case, actor(s), message, today=today())
            except ValidationFailed as exc:
                errors = _errors_from(exc, "message")
            else:
                flash(_("The urge has been recorded and sent to the person whose step it is."), "success")
                return _back(case_id, "timeline")
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "urge")
        _ensure_ready(s, case, "urge")
        reasons = access._extra_reasons(queries.aggregate(s, case), current_user, "urge", today())
        if reasons:
            raise GuardFailed("not possible now", reasons=reasons)
        people = deadlines.concerned_users(s, case)
        deadline = deadlines.deadline_info(s, case, today())
        limit = deadlines.one_year(s, case, today())
    return render_template("cases/urge.html", case=case, people=people, deadline=deadline, one_year=limit,
                           message=message, errors=errors, max_length=case_service.URGE_MAX), \
        (400 if errors else 200)


# --- comments ---------------------------------------------------------------------------------------------

@bp.route("/<int:case_id>/comments", methods=["GET", "POST"])
@login_required
def case_comments(case_id: int):
    """The case's comments, a page at a time, and the form to add one (the case's staff only: the policy)."""
    errors: dict[str, str] = {}
    body = (request.form.get("body") or "").strip() if request.method == "POST" else ""
    if request.method == "POST":
        try:
            with work() as s:
                case, cf = load_case(s, case_id)
                require_comment(cf)
                comments.add_comment(s, case, actor(s), body)
        except ValidationFailed as exc:
            errors = _errors_from(exc, "body")
        else:
            flash(_("The comment has been added."), "success")
            return redirect(url_for("cases.case_comments", case_id=case_id, page="last") + "#comments")
    page = request.args.get("page", "1")
    with reading() as s:
        case, cf = load_case(s, case_id)
        require_comment(cf)
        found = comments.comments(s, case, current_user.actor,
                                  page=10 ** 9 if page == "last" else int(page) if page.isdigit() else 1)
    return render_template("cases/comments.html", case=case, found=found, body=body, errors=errors,
                           max_length=comments.COMMENT_MAX), (400 if errors else 200)


# --- committee ------------------------------------------------------------------------------------------------

@bp.route("/<int:case_id>/vote", methods=["GET", "POST"])
@login_required
def vote(case_id: int):
    errors: dict[str, str] = {}
    if request.method == "POST":
        version = expected_version()
        try:
            with work() as s:
                case, cf = load_case(s, case_id)
                require(cf, "vote")
                me = actor(s)
                seat = request.form.get("on_behalf_of", "")
                behalf = int(seat) if seat.isdigit() else None  # a stand-in's principal; none: their own seat
                cast = 0
                for r in case_service.respondents_of(s, case.id):
                    outcome = request.form.get(f"outcome_{r.id}", "")
                    if outcome not in OUTCOMES:
                        raise ValidationFailed("choose an outcome", field=f"outcome_{r.id}")
                    case_service.record_vote(s, case, me, r.id, outcome, text_field(f"reason_{r.id}"),
                                             expected_version=version if cast == 0 else None, on_behalf_of=behalf)
                    cast += 1
        except ValidationFailed as exc:
            errors = _errors_from(exc)
            if exc.message == "choose an outcome":
                errors = {exc.details["field"]: _("Choose an outcome.")}
        else:
            flash(_("Your votes have been recorded."), "success")
            return _back(case_id, "votes")
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "vote")
        _ensure_ready_for_form(s, case, "vote")
        data = case_page_data(s, case, cf)
        mine = {v.respondent_id: v for v in data["votes"] if v.member_id == current_user.id}
        similar = {r.id: guidance.similar_for_respondent(s, r) for r in case_service.respondents_of(s, case.id)}
        # The seats the user votes in: their own and those of the members they stand in for today.
        seats = [(p, s.get(User, p).name if p else None) for p in policy.seats(current_user.actor, cf, "vote")]
    return render_template("cases/vote.html", **data, mine=mine, errors=errors, form=request.form,
                           similar=similar, seats=seats), \
        (400 if errors else 200)


@bp.route("/<int:case_id>/determine", methods=["GET", "POST"])
@login_required
def determine(case_id: int):
    errors: dict[str, str] = {}
    if request.method == "POST":
        version = expected_version()
        reasons = {}
        with reading() as s:
            case, cf = load_case(s, case_id)
            require(cf, "determine")
            agg = queries.aggregate(s, case)
            for r in agg.respondents:
                carried = agg.carried(r)
                reasons[r.id] = text_field(f"deviation_{r.id}")
                if carried and carried != r.recommended_outcome and not reasons[r.id]:
                    errors[f"deviation_{r.id}"] = _("The outcome differs from the recommendation: give the reason.")
        if not errors and (page := _unconfirmed(case_id, "determine")) is not None:
            return page
        if not errors:
            with work() as s:
                case, cf = load_case(s, case_id)
                require(cf, "determine")
                case_service.determine(s, case, actor(s), reasons, expected_version=version)
            flash(_("The determination has been signed."), "success")
            return _back(case_id)
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "determine")
        _ensure_ready_for_form(s, case, "determine")
        data = case_page_data(s, case, cf)
        blockers = access.machine_reasons(s, case, "determine", today())
    return render_template("cases/determine.html", **data, blockers=blockers, errors=errors, form=request.form), \
        (400 if errors else 200)


# --- appeals --------------------------------------------------------------------------------------------------

@bp.route("/<int:case_id>/appeal", methods=["GET", "POST"])
@login_required
def appeal(case_id: int):
    errors: dict[str, str] = {}
    grounds = text_field("grounds")
    if request.method == "POST":
        version = expected_version()
        if not grounds:
            errors["grounds"] = _("State the grounds of your appeal.")
        else:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "appeal")
                    me = actor(s)
                    mine = _my_respondent(s, case)
                    ev = _store_upload(s, case, me, kind="appeal", respondent_id=mine.id if mine else None,
                                       description=text_field("description"))
                    case_service.file_appeal(s, case, me, grounds, expected_version=version,
                                             evidence_ids=[ev.id] if ev else None)
            except ValidationFailed as exc:
                errors = _errors_from(exc, "grounds")
            else:
                flash(_("Your appeal has been filed. The appeal record is among the case's letters."), "success")
                return _back(case_id, "appeals")
    with reading() as s:
        case, cf = load_case(s, case_id)
        require(cf, "appeal")
        _ensure_ready_for_form(s, case, "appeal")
        mine = _my_respondent(s, case)
        window = letters.appeal_windows(s, case).get(mine.id) if mine else None
    return render_template("cases/appeal.html", case=case, respondent=mine, window=window, grounds=grounds,
                           errors=errors), (400 if errors else 200)


def _appeal_page(s, case: Case, cf, appeal_id: int, action: str) -> dict:
    """What the appeal panel's pages show: the appeal, its grounds and evidence, the panel and its votes."""
    require(cf, action)
    _ensure_ready_for_form(s, case, action)
    the_appeal = s.get(Appeal, appeal_id)
    if the_appeal is None or the_appeal.case_id != case.id:
        not_found()
    agg = queries.aggregate(s, case)
    respondent = s.get(Respondent, the_appeal.respondent_id)
    votes = agg.panel_votes(the_appeal.id)
    mine = next((v for v in votes if v.member_id == current_user.id), None)
    return {"case": case, "appeal": the_appeal, "respondent": respondent, "person": s.get(User, respondent.user_id),
            "better": [o for o in OUTCOMES if SEVERITY[o] < SEVERITY[the_appeal.appealed_outcome]],
            "evidence": list(s.exec(select(Evidence).where(Evidence.appeal_id == the_appeal.id))),
            "panel": agg.appeal_panel, "recusals": {m.id: agg.appeal_conflict(m.id) for m in agg.appeal_panel},
            "votes": votes, "mine": mine, "tally": case_service.appeal_tally(s, case, the_appeal),
            # The tally is shown to a member once they have voted; the chair sees it throughout.
            "show_tally": mine is not None or policy.has_role(current_user.roles, "appeal_chair")}


@bp.route("/<int:case_id>/appeals/<int:appeal_id>/vote", methods=["GET", "POST"])
@login_required
def appeal_vote(case_id: int, appeal_id: int):
    """A member of the appeal committee votes on one appeal: uphold, or alter to a less severe outcome."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        version = expected_version()
        decision = request.form.get("decision", "")
        new_outcome = request.form.get("new_outcome") or None
        if decision not in ("upheld", "altered"):
            errors["decision"] = _("Choose whether to uphold or alter the outcome.")
        if decision == "altered" and not new_outcome:
            errors["new_outcome"] = _("Choose the new, less severe outcome.")
        if not errors:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "appeal_vote")
                    case_service.record_appeal_vote(s, case, actor(s), appeal_id, decision,
                                                    new_outcome if decision == "altered" else None,
                                                    text_field("reason"), expected_version=version)
            except ValidationFailed as exc:
                errors = _errors_from(exc, "decision")
            else:
                flash(_("Your vote on the appeal has been recorded."), "success")
                return _back(case_id, "appeals")
    with reading() as s:
        case, cf = load_case(s, case_id)
        data = _appeal_page(s, case, cf, appeal_id, "appeal_vote")
    return render_template("cases/appeal_vote.html", **data, errors=errors, form=request.form), \
        (400 if errors else 200)


@bp.route("/<int:case_id>/appeals/<int:appeal_id>/decide", methods=["GET", "POST"])
@login_required
def decide_appeal(case_id: int, appeal_id: int):
    """The chair of the appeal committee signs the decision the panel's votes carry."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        version = expected_version()
        reason = text_field("reason")
        if not reason:
            errors["reason"] = _("Give the reason for the decision.")
        if not errors:
            try:
                with work() as s:
                    case, cf = load_case(s, case_id)
                    require(cf, "decide_appeal")
                    case_service.decide_appeal(s, case, actor(s), appeal_id, reason, expected_version=version)
            except ValidationFailed as exc:
                errors = _errors_from(exc, "reason")
            else:
                flash(_("The appeal decision has been signed."), "success")
                return _back(case_id, "appeals")
    with reading() as s:
        case, cf = load_case(s, case_id)
        data = _appeal_page(s, case, cf, appeal_id, "decide_appeal")
    return render_template("cases/decide_appeal.html", **data, errors=errors, form=request.form), \
        (400 if errors else 200)
