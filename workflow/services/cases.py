"""Case verbs: one function per user action. Each flushes its change and its audit event together.

Every verb takes the session of the caller's unit of work, the acting user, and optionally the case
version the actor saw (`expected_version`): a mismatch is a ConflictError, so two people acting at once
can never both win.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from decimal import Decimal

from sqlmodel import Session, select

from ..domain import hearing, policy, rules, states
from ..domain.errors import ConflictError, NotFound, ValidationFailed
from ..domain.policy import has_role
from ..models import (
    NPL_CLASSES,
    OUTCOMES,
    Appeal,
    AppealVote,
    AppealWaiver,
    Branch,
    Case,
    CaseLoan,
    Evidence,
    Loan,
    LoanStage,
    Respondent,
    RuleSetVersion,
    StageFact,
    User,
    Vote,
    utcnow,
)
from . import audit, deadlines, hr, letters, notices, notifications, queries, rulesets
from .queries import (  # noqa: F401  (readers other modules and tests take from here)
    audit_events,
    authorize,
    case_loans,
    determining_branch,
    get_case,
    respondents_of,
    stage_assignments,
    valid_votes,
)
from .recommendation import recommend_case


def _check_version(case: Case, expected_version: int | None) -> None:
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(
            f"case {case.number} was changed by someone else (version {case.version}, you saw "
            f"{expected_version}); reload the case and try again", state=case.state, version=case.version)


def guard_context(session: Session, case: Case, today: date | None = None,
                  needs: Collection[str] | None = None) -> states.GuardContext:
    """A plain snapshot of the case for the state machine's guards (from the unit's aggregate)."""
    return queries.aggregate(session, case).guard_context(today, needs)


def decided_by_votes(session: Session, case: Case, respondent: Respondent, rs=None) -> str | None:
    """The outcome the valid votes carry for one respondent under the voting rule, or None."""
    return queries.aggregate(session, case).carried(respondent)


def _fire(session: Session, case: Case, trigger: str, actor, *, expected_version: int | None,
          today: date | None = None, payload: dict | None = None, **kwargs) -> tuple[str, str]:
    """Fire the trigger through the machine (after `_begin`), touch the case and audit it."""
    ctx = queries.aggregate(session, case).guard_context(today or date.today(), needs=queries.guards_of(trigger))
    before, after = states.fire(case, trigger, ctx, **kwargs)
    case.updated_at = utcnow()
    session.add(case)
    session.flush()  # the versioned UPDATE: a concurrent change makes this raise StaleDataError
    audit.record(session, event=trigger, actor=actor, case_id=case.id, from_state=before, to_state=after,
                 payload=payload or {})
    return before, after


def _begin(session: Session, case: Case, actor, action: str, expected_version: int | None) -> queries.CaseAggregate:
    """Before a state change: the policy must allow the actor (PermissionDenied), the version they saw must be
    current (ConflictError: someone acted first), and the event must be allowed in this state
    (TransitionNotAllowed). In that order, so that nobody learns more about a case than they may."""
    agg = authorize(session, case, actor, action)
    _check_version(case, expected_version)
    states.ensure_allowed(case.state, policy.ACTIONS[action][1])
    return agg


def _touch(session: Session, case: Case, expected_version: int | None) -> None:
    """Bump the case version for an action that does not change its state."""
    _check_version(case, expected_version)
    case.updated_at = utcnow()
    session.add(case)
    session.flush()


# --- verbs ---------------------------------------------------------------------------------------------

def open_case(session: Session, actor: User, loan_ids: list[int], *, batch_report: bool = False,
              today: date | None = None) -> Case:
    """Register a case for one enterprise's non-performing loan(s); respondents come from the loan file.

    Raises ValidationFailed (no loans, several enterprises, performing loan, loan already in an open case)
    and OutOfScope (a loan outside the inclusive-credit scope); PermissionDenied unless the actor is a
    committee chair or an administrator.
    """
    policy.require_register(queries.actor_of(session, actor))
    today = today or date.today()
    ids = sorted(set(loan_ids))
    if not ids:
        raise ValidationFailed("a case needs at least one loan")
    loans = list(session.exec(select(Loan).where(Loan.id.in_(ids))))
    missing = set(ids) - {lo.id for lo in loans}
    if missing:
        raise NotFound(f"unknown loan id(s): {sorted(missing)}")
    enterprises = {lo.enterprise_id for lo in loans}
    if len(enterprises) != 1:
        raise ValidationFailed("a case covers the loans of one enterprise only")
    procedure = rulesets.version_in_force(session, today)
    rs = rulesets.parsed(procedure)
    if batch_report:
        from ..domain.rules import is_batch_eligible

        too_big = [lo.loan_no for lo in loans if not is_batch_eligible(lo.amount, rs)]
        if too_big:
            raise ValidationFailed(f"a batch duty-review report is only for loans under "
                                   f"{rs.batch.threshold_amount:,} yuan; too large: {', '.join(too_big)}",
                                   field="batch_report")
    for lo in loans:
        if lo.classification not in NPL_CLASSES:
            raise ValidationFailed(f"loan {lo.loan_no} is not non-performing ({lo.classification})")
        rulesets.check_scope(session, lo, rs)
    busy = session.exec(select(CaseLoan.loan_id, Case.number).join(Case, Case.id == CaseLoan.case_id)
                        .where(CaseLoan.loan_id.in_(ids), Case.state.not_in(states.TERMINAL_STATES))).first()
    if busy:
        raise ValidationFailed(f"loan id {busy[0]} is already in open case {busy[1]}")
    sibling = session.exec(select(Case.number).where(Case.enterprise_id == loans[0].enterprise_id,
                                                     Case.state.not_in(states.TERMINAL_STATES))).first()
    if sibling:
        # 统一合并考量: the same staff's several NPLs of one enterprise are considered together, once.
        raise ValidationFailed(f"the enterprise already has open case {sibling}; its non-performing loans are "
                               "considered together (统一合并考量): withdraw that case and open one covering all "
                               "of them", field="loans")
    origin, branch, authority = committee_with_authority(session, loans, rs)
    case = Case(number="pending", branch_id=branch.id, enterprise_id=enterprises.pop(), state=states.INITIAL_STATE,
                opened_by_id=actor.id, rule_set_version_id=procedure.id, batch_report=batch_report,
                origin_branch_id=origin.id, authority=authority)
    session.add(case)
    session.flush()
    case.number = f"MZ{today.year}-{branch.code}-{case.id:06d}"
    for lo in loans:
        session.add(CaseLoan(case_id=case.id, loan_id=lo.id, loan_no=lo.loan_no))
    handlers = session.exec(select(LoanStage.user_id).where(LoanStage.loan_id.in_(ids)).distinct()).all()
    if not handlers:
        raise ValidationFailed("the loan file names nobody who handled a credit stage")
    due = deadlines.statement_due(session, case, today)
    for uid in sorted(handlers):
        session.add(Respondent(case_id=case.id, user_id=uid, case_branch_id=case.branch_id, statement_due=due))
    case.due_date = deadlines.due_for(session, case, today)
    session.add(case)
    session.flush()
    audit.record(session, event="open_case", actor=actor, case_id=case.id, to_state=case.state,
                 payload={"number": case.number, "loans": [lo.loan_no for lo in loans],
                          "respondents": sorted(handlers), "rule_set_version": procedure.version,
                          "batch_report": batch_report, "statement_due": due, "authority": authority})
    # The right to be heard: every respondent is invited to file an exemption statement by the deadline.
    notifications.tell(
        session, handlers, case_id=case.id, kind="statement_invited", key=f"statement_invited:{case.id}",
        zh=f"您被列为案件 {case.number} 的被评议人。请于 {due.isoformat()} 前提交免责陈述"
           f"（说明您在各信贷环节如何履职），也可书面表示不提交。",
        en=f"You are a respondent of case {case.number}. File your exemption statement (how you performed "
           f"your duties at your credit stages) by {due.isoformat()}, or decline in writing.")
    return case


def committee_with_authority(session: Session, loans: list[Loan], rs) -> tuple[Branch, Branch, dict]:
    """Which committee has authority over a case of these loans under the rule set (rules.committee_with_authority):
    the loans' branch (their common branch when they are booked at several), the branch whose committee decides,
    and the reason to record on the case (the rule, the facts it read, the branches it named)."""
    booked = {b.id: b for b in session.exec(select(Branch).where(Branch.id.in_({lo.branch_id for lo in loans})))}
    paths = [[int(p) for p in b.path.strip("/").split("/") if p] for b in booked.values()]
    common = [ids[0] for ids in zip(*paths, strict=False) if len(set(ids)) == 1]
    above = {b.id: b for b in session.exec(select(Branch).where(Branch.id.in_(common)))}
    origin = above[common[-1]]
    decision = rules.committee_with_authority(rs, branch_level=origin.level,
                                              total_amount=sum((lo.amount for lo in loans), Decimal(0)))
    # The committee at the level the rule names on the way up from the loans' branch (the nearest above it if
    # the tree skips that level).
    branch = max((b for b in above.values() if b.level <= decision.committee_level), key=lambda b: b.level,
                 default=origin)
    return origin, branch, {**decision.to_dict(), "origin_branch_id": origin.id, "origin_branch": origin.code,
                            "origin_branch_name": {"zh": origin.name, "en": origin.name_en or origin.name},
                            "committee_branch_id": branch.id, "committee_branch": branch.code}


def assign_investigator(session: Session, case: Case, actor: User, investigator_id: int, *,
                        expected_version: int | None = None, today: date | None = None) -> Case:
    """Assign the investigator and start the investigation."""
    agg = _begin(session, case, actor, "assign", expected_version)
    investigator = session.get(User, investigator_id)
    if investigator is None or not has_role(investigator.role_set, "investigator"):
        raise ValidationFailed("the investigator must be an existing user with the investigator role")
    if investigator_id in agg.handler_ids and investigator_id not in agg.respondent_user_ids:
        raise policy.refuse(policy.Refusal("handler_investigates",
                                           "a person who handled a stage of the case's loans may not investigate it"))
    _fire(session, case, "assign_investigator", actor, expected_version=expected_version, today=today,
          investigator_id=investigator_id, payload={"investigator": investigator.username})
    case.investigator_id = investigator_id
    case.due_date = deadlines.due_for(session, case, today)
    session.add(case)
    session.flush()
    notices.investigator_assigned(session, case)
    return case


def submit_investigation(session: Session, case: Case, actor: User, *, expected_version: int | None = None,
                         today: date | None = None) -> Case:
    """Close the investigation: compute every respondent's recommendation and freeze the tolerance."""
    agg = _begin(session, case, actor, "submit", expected_version)
    # The record says who filed, who declined and who let the deadline pass (the guard refuses while any
    # statement is still awaited).
    positions = statement_positions(session, case, today)
    users = {r.id: r.user_id for r in agg.respondents}
    names = dict(session.exec(select(User.id, User.username).where(User.id.in_(list(users.values())))).all())
    _fire(session, case, "submit_investigation", actor, expected_version=expected_version, today=today,
          payload={"statements": {names.get(users[rid], str(rid)): p for rid, p in sorted(positions.items())}})
    summary = recommend_case(session, case, actor, today=today)
    case.submitted_at = utcnow()
    case.due_date = deadlines.due_for(session, case, today)
    session.add(case)
    session.flush()
    audit.record(session, event="recommendation", actor=actor, case_id=case.id, payload=summary)
    letters.issue_investigation_report(session, case, actor, today=today)
    notices.vote_needed(session, case)
    return case


def return_for_investigation(session: Session, case: Case, actor: User, reason: str, *,
                             expected_version: int | None = None, today: date | None = None) -> Case:
    """Send the case back for more investigation; votes cast so far no longer count."""
    agg = _begin(session, case, actor, "return", expected_version)
    _, behalf = _acting_for(session, agg, actor, "return")
    _fire(session, case, "return_for_investigation", actor, expected_version=expected_version, today=today,
          reason=reason, payload={"reason": reason, **behalf})
    invalidate_votes(session, case, actor, reason="returned for investigation")
    case.due_date = deadlines.due_for(session, case, today)
    session.add(case)
    return case


def invalidate_votes(session: Session, case: Case, actor, reason: str) -> int:
    """Mark every valid vote of the case invalid (audited); returns how many."""
    agg = queries.aggregate(session, case)
    votes = agg.valid_votes
    now = utcnow()
    for v in votes:
        v.invalidated_at = now
        session.add(v)
    for r in agg.respondents:
        if r.decided_outcome or r.deviation_reason:
            r.decided_outcome, r.deviation_reason = None, None
            session.add(r)
    if votes:
        session.flush()
        event = audit.record(session, event="votes_invalidated", actor=actor, case_id=case.id,
                             payload={"count": len(votes), "reason": reason})
        # Those whose votes no longer count, the respondents concerned and the deciding branch's chairs are told.
        chairs = [m.id for m in agg.committee if "committee_chair" in m.roles]
        notifications.tell(session, [v.member_id for v in votes] + [r.user_id for r in agg.respondents] + chairs,
                           case_id=case.id, kind="votes_voided", key=f"votes-voided:{case.id}:{event['seq']}",
                           zh=f"案件 {case.number} 的评议表决已作废（{_VOID_REASONS.get(reason, {}).get('zh', reason)}），"
                              "需重新评议表决。",
                           en=f"The votes on case {case.number} no longer count "
                              f"({_VOID_REASONS.get(reason, {}).get('en', reason)}); the committee votes again.")
    return len(votes)


_VOID_REASONS = {
    "returned for investigation": {"zh": "已退回补充调查", "en": "returned for investigation"},
    "reopened after an objection": {"zh": "公示期异议后重新评议", "en": "reopened after an objection"},
    "re-evaluated under another rule-set version": {"zh": "适用另一版本规则重新评判",
                                                    "en": "re-evaluated under another rule-set version"},
}


def _acting_for(session: Session, agg: queries.CaseAggregate, actor, action: str,
                principal_id: int | None = None) -> tuple[int | None, dict]:
    """On whose behalf the actor takes a committee action (policy.acting_for: PermissionDenied when refused),
    and what the audit event records of it."""
    principal = policy.acting_for(queries.actor_of(session, actor), agg.view(), action, principal_id)
    if principal is None:
        return None, {}
    who = session.get(User, principal)
    return principal, {"on_behalf_of_id": principal, "on_behalf_of": who.username, "on_behalf_of_name": who.name}


def record_vote(session: Session, case: Case, actor: User, respondent_id: int, outcome: str, reason: str = "", *,
                expected_version: int | None = None, on_behalf_of: int | None = None) -> Vote:
    """A committee member votes on one respondent's outcome (a later vote of the same seat replaces the
    earlier one). A stand-in votes in their principal's seat (`on_behalf_of`, or the only seat they hold),
    within the period and never when conflicted on the case (PermissionDenied)."""
    agg = authorize(session, case, actor, "vote")
    principal, behalf = _acting_for(session, agg, actor, "vote", on_behalf_of)
    if case.state != "under_review":
        raise states.TransitionNotAllowed("votes can only be cast while the case is under review",
                                          state=case.state, event="record_vote")
    if outcome not in OUTCOMES:
        raise ValidationFailed(f"unknown outcome '{outcome}'; expected one of {', '.join(OUTCOMES)}")
    agg.respondent(respondent_id)
    _touch(session, case, expected_version)
    seat = principal or actor.id
    for old in agg.valid_votes:
        if old.respondent_id == respondent_id and old.seat_id == seat:
            old.invalidated_at = utcnow()
            session.add(old)
    vote = Vote(case_id=case.id, respondent_id=respondent_id, member_id=actor.id, outcome=outcome, reason=reason,
                on_behalf_of_id=principal)
    session.add(vote)
    session.flush()
    agg.votes.append(vote)
    audit.record(session, event="record_vote", actor=actor, case_id=case.id,
                 payload={"respondent_id": respondent_id, "outcome": outcome, "reason": reason, **behalf})
    return vote


def determine(session: Session, case: Case, actor: User, deviation_reasons: dict[int, str] | None = None, *,
              expected_version: int | None = None, today: date | None = None) -> Case:
    """The chair signs the determination: each respondent's outcome as the votes carry it."""
    agg = _begin(session, case, actor, "determine", expected_version)
    principal, behalf = _acting_for(session, agg, actor, "determine")
    deviation_reasons = {int(k): v for k, v in (deviation_reasons or {}).items()}
    redetermined = case.determined_at is not None  # determined before, then reopened after an objection
    outcomes = {}
    for r in agg.respondents:
        decided = agg.carried(r)
        outcomes[r.id] = decided
        r.decided_outcome = decided
        r.deviation_reason = (deviation_reasons.get(r.id) or "").strip() or None \
            if decided and decided != r.recommended_outcome else None
        session.add(r)
    # The chair signs, or the chair's stand-in on the chair's behalf (the policy let only a chair's seat through).
    signed = principal is not None or (has_role(actor.role_set, "committee_chair") and actor.branch_id == case.branch_id)
    due = deadlines.due_after(session, case, "determined", today)
    # Set before the event, so that the case is updated once (and rolled back with the event if it is refused).
    case.determined_at, case.due_date = utcnow(), due
    _fire(session, case, "determine", actor, expected_version=expected_version, today=today, chair_signed=signed,
          payload={"outcomes": {str(k): v for k, v in outcomes.items()},
                   "deviations": {str(r.id): r.deviation_reason for r in agg.respondents if r.deviation_reason},
                   **behalf})
    agg.changed("determiners")
    if redetermined:  # a re-determination may improve an outcome a deduction was applied for
        hr.refunds_after(session, case, actor, {k: v for k, v in outcomes.items() if v}, decision="redetermination",
                         decision_ref=case.number, today=today)
    notices.determined(session, case)
    return case


def start_publicity(session: Session, case: Case, actor: User, *, expected_version: int | None = None,
                    today: date | None = None) -> Case:
    """Put the results on public notice for the rule set's publicity period (working days)."""
    _begin(session, case, actor, "start_publicity", expected_version)
    today = today or date.today()
    ends = deadlines.add_working_days(session, today, rulesets.time_limit(rulesets.procedure_rules(session, case), "publicity"))
    case.publicity_ends = case.due_date = ends  # rolled back with the event if it is refused
    _fire(session, case, "start_publicity", actor, expected_version=expected_version, today=today,
          payload={"publicity_ends": ends.isoformat()})
    letters.issue_publicity_notice(session, case, actor, today=today)
    letters.refresh_window(session, case)
    return case


def reopen(session: Session, case: Case, actor: User, reason: str, *, expected_version: int | None = None,
           today: date | None = None) -> Case:
    """A substantiated objection during publicity sends the case back to the committee."""
    agg = _begin(session, case, actor, "reopen", expected_version)
    _, behalf = _acting_for(session, agg, actor, "reopen")
    _fire(session, case, "reopen", actor, expected_version=expected_version, today=today, reason=reason,
          payload={"reason": reason, **behalf})
    invalidate_votes(session, case, actor, reason="reopened after an objection")
    case.publicity_ends = None
    case.due_date = deadlines.due_for(session, case, today)
    session.add(case)
    session.flush()
    notices.vote_needed(session, case)
    return case


def end_publicity(session: Session, case: Case, actor=None, *, expected_version: int | None = None,
                  today: date | None = None) -> Case:
    """The publicity period has elapsed: the case is in its appeal window.

    Each respondent's window runs from the service of their letter (domain.md §12), so it may have begun
    during publicity; the case's window ends when the last of them does (unknown while a letter is not
    served). When every respondent has already appealed, waived or run out of time, the window closes now.
    """
    _begin(session, case, actor, "end_publicity", expected_version)
    today = today or date.today()
    windows = letters.appeal_windows(session, case)
    ends = letters.window_ends(windows)
    case.appeal_window_ends = case.due_date = ends  # rolled back with the event if it is refused
    _fire(session, case, "end_publicity", actor, expected_version=expected_version, today=today,
          payload={"appeal_window_ends": ends.isoformat() if ends else None})
    notices.appeal_window_open(session, case, windows)
    _close_when_settled(session, case, today)
    return case


def _close_when_settled(session: Session, case: Case, today: date) -> None:
    """Leave the appeal window as soon as every respondent has appealed, waived or run out of time."""
    agg = queries.aggregate(session, case)
    agg.changed("appeals", "waivers", "services", "letters")
    if case.state == "appeal_window" and agg.respondents_settled(today):
        close_appeal_window(session, case, None, today=today)


def waive_appeal(session: Session, case: Case, actor: User, statement: str, *, expected_version: int | None = None,
                 today: date | None = None) -> AppealWaiver:
    """A respondent waives their appeal in writing (放弃申诉), once their letter has been served.

    Raises PermissionDenied (not a respondent), TransitionNotAllowed (outside publicity and the appeal
    window), ValidationFailed (no statement, letter not served, window over), ConflictError (already
    appealed or waived). When every respondent has now appealed or waived, the appeal window closes.
    """
    agg = authorize(session, case, actor, "waive_appeal")
    today = today or date.today()
    if case.state not in states.ACTION_STATES["waive_appeal"]:
        raise states.TransitionNotAllowed("an appeal can be waived during publicity and the appeal window",
                                          state=case.state, event="waive_appeal")
    respondent = agg.respondent_of_user(actor.id)
    window = letters.appeal_windows(session, case)[respondent.id]
    if window.appealed or window.waived:
        raise ConflictError("you have already appealed or waived your appeal in this case")
    if window.served_on is None:
        raise ValidationFailed("your determination letter has not been served yet", field="statement")
    if not window.open(today):
        raise ValidationFailed(f"your appeal window ended on {window.deadline.isoformat()}", field="statement")
    if not (statement or "").strip():
        raise ValidationFailed("write that you waive your appeal", field="statement")
    _touch(session, case, expected_version)
    waiver = AppealWaiver(case_id=case.id, respondent_id=respondent.id, statement=statement.strip(), waived_on=today,
                          recorded_by_id=actor.id)
    session.add(waiver)
    session.flush()
    audit.record(session, event="waive_appeal", actor=actor, case_id=case.id,
                 payload={"respondent_id": respondent.id, "statement": waiver.statement, "letter": window.doc_number})
    agg.changed("waivers")
    letters.refresh_window(session, case)
    _close_when_settled(session, case, today)
    return waiver


def file_appeal(session: Session, case: Case, actor: User, grounds: str, *, expected_version: int | None = None,
                today: date | None = None, evidence_ids: list[int] | None = None) -> Appeal:
    """A respondent appeals their own outcome within the appeal window.

    `evidence_ids`: evidence the respondent uploaded to this case for the appeal; it is linked to the appeal
    before the appeal record is issued, so the record lists it.
    """
    agg = authorize(session, case, actor, "appeal")
    today = today or date.today()
    if case.state not in states.ACTION_STATES["appeal"]:
        raise states.TransitionNotAllowed("appeals can only be filed during the appeal window",
                                          state=case.state, event="file_appeal")
    respondent = agg.respondent_of_user(actor.id)
    # The respondent's own window: from the service of their letter, for the rule set's working days.
    window = letters.appeal_windows(session, case)[respondent.id]
    if window.waived:
        raise ConflictError("you have waived your appeal in this case")
    if window.served_on is None:
        raise states.GuardFailed("your determination letter has not been served yet: the appeal window runs "
                                 "from its service", state=case.state, event="file_appeal")
    if window.deadline is not None and today > window.deadline:
        raise states.GuardFailed(f"the appeal window ended on {window.deadline.isoformat()}",
                                 state=case.state, event="file_appeal")
    if not (grounds or "").strip():
        raise ValidationFailed("the grounds of the appeal are required", field="grounds")
    if session.exec(select(Appeal).where(Appeal.respondent_id == respondent.id)).first():
        raise ConflictError("you have already filed an appeal in this case")
    _touch(session, case, expected_version)
    appeal = Appeal(case_id=case.id, respondent_id=respondent.id, appealed_outcome=respondent.decided_outcome,
                    grounds=grounds.strip())
    session.add(appeal)
    session.flush()
    agg.changed("appeals")
    for ev_id in evidence_ids or []:
        ev = session.get(Evidence, ev_id)
        if ev is None or ev.case_id != case.id or ev.uploaded_by_id != actor.id or ev.appeal_id is not None:
            raise ValidationFailed(f"evidence {ev_id} is not yours to attach to this appeal", field="evidence")
        ev.appeal_id = appeal.id
        session.add(ev)
    session.flush()
    audit.record(session, event="file_appeal", actor=actor, case_id=case.id,
                 payload={"appeal_id": appeal.id, "respondent_id": respondent.id,
                          "appealed_outcome": appeal.appealed_outcome, "grounds": appeal.grounds})
    letters.issue_appeal_record(session, case, appeal, actor, today=today)
    notices.appeal_filed(session, case, appeal)
    letters.refresh_window(session, case)
    _close_when_settled(session, case, today)
    return appeal


def close_appeal_window(session: Session, case: Case, actor=None, *, expected_version: int | None = None,
                        today: date | None = None) -> Case:
    """The window has elapsed: to appeal review if anyone appealed, otherwise final."""
    _begin(session, case, actor, "close_appeal_window", expected_version)
    _, after = _fire(session, case, "close_appeal_window", actor, expected_version=expected_version, today=today)
    if after == "final":
        _finalise(session, case)
    else:
        case.due_date = deadlines.due_for(session, case, today)
        session.add(case)
        session.flush()
        notices.appeal_vote_needed(session, case)
    return case


def _finalise(session: Session, case: Case) -> None:
    agg = queries.aggregate(session, case)
    appeals = {a.respondent_id: a for a in agg.appeals}
    for r in agg.respondents:
        a = appeals.get(r.id)
        r.final_outcome = a.new_outcome if a and a.decision == "altered" else r.decided_outcome
        session.add(r)
    case.final_at = utcnow()
    case.due_date = None
    session.add(case)
    session.flush()


def _undecided_appeal(agg: queries.CaseAggregate, case: Case, appeal_id: int, event: str) -> Appeal:
    if case.state != "appeal_review":
        raise states.TransitionNotAllowed("appeals are decided while the case is in appeal review",
                                          state=case.state, event=event)
    appeal = next((a for a in agg.appeals if a.id == appeal_id), None)
    if appeal is None:
        raise NotFound(f"appeal {appeal_id} is not part of case {case.number}")
    if appeal.decision is not None:
        raise ConflictError("this appeal has already been decided")
    return appeal


def record_appeal_vote(session: Session, case: Case, actor: User, appeal_id: int, decision: str,
                       new_outcome: str | None, reason: str = "", *, expected_version: int | None = None) -> AppealVote:
    """A member of the appeal committee of the level above votes on one appeal: uphold the appealed outcome,
    or alter it to `new_outcome`, which may never be more severe. A later vote replaces the member's earlier one.

    Raises PermissionDenied (not on the panel, or recused: an original decider, a stage handler, a respondent,
    the investigator), TransitionNotAllowed outside appeal review, NotFound, ConflictError (already decided,
    or the case changed), ValidationFailed (unknown decision, no or a worse new outcome).
    """
    from ..domain.rules import appeal_outcome_allowed

    agg = authorize(session, case, actor, "appeal_vote")
    appeal = _undecided_appeal(agg, case, appeal_id, "appeal_vote")
    if decision not in ("upheld", "altered"):
        raise ValidationFailed("decision must be 'upheld' or 'altered'", field="decision")
    if decision == "upheld":
        new_outcome = appeal.appealed_outcome
    elif new_outcome not in OUTCOMES or new_outcome == appeal.appealed_outcome:
        raise ValidationFailed("an altered appeal needs a different outcome", field="new_outcome")
    if not appeal_outcome_allowed(appeal.appealed_outcome, new_outcome):
        raise ValidationFailed(f"an appeal may never worsen the outcome ({appeal.appealed_outcome} → {new_outcome})",
                               field="new_outcome")
    _touch(session, case, expected_version)
    for old in agg.panel_votes(appeal.id):
        if old.member_id == actor.id:
            old.invalidated_at = utcnow()
            session.add(old)
    vote = AppealVote(case_id=case.id, appeal_id=appeal.id, member_id=actor.id, decision=decision,
                      outcome=new_outcome, reason=(reason or "").strip())
    session.add(vote)
    session.flush()
    agg.appeal_votes.append(vote)
    audit.record(session, event="appeal_vote", actor=actor, case_id=case.id,
                 payload={"appeal_id": appeal.id, "decision": decision, "outcome": new_outcome,
                          "reason": vote.reason})
    return vote


def appeal_tally(session: Session, case: Case, appeal: Appeal):
    """Where the panel's votes on an appeal stand (rules.PanelTally): only non-recused members count."""
    from ..domain.rules import appeal_panel_tally

    agg = queries.aggregate(session, case)
    eligible = {m.id for m in agg.eligible_panel()}
    votes = [v.outcome for v in agg.panel_votes(appeal.id) if v.member_id in eligible]
    return appeal_panel_tally(votes, len(eligible), agg.procedure)


def decide_appeal(session: Session, case: Case, actor: User, appeal_id: int, reason: str, *,
                  expected_version: int | None = None, today: date | None = None) -> Appeal:
    """The chair of the appeal committee signs the decision its panel's votes carry: upheld, or altered to
    the less severe outcome the majority voted for (never worse). No single reviewer decides alone.

    Raises PermissionDenied (not the panel's chair, or recused), TransitionNotAllowed outside appeal review,
    NotFound, ConflictError (already decided), GuardFailed (quorum not reached, or no outcome has the
    majority), ValidationFailed (no reason).
    """
    agg = authorize(session, case, actor, "decide_appeal")
    appeal = _undecided_appeal(agg, case, appeal_id, "decide_appeal")
    tally = appeal_tally(session, case, appeal)
    if not tally.quorum:
        raise states.GuardFailed("the appeal panel has not reached its quorum: no single reviewer decides alone",
                                 state=case.state, event="decide_appeal", voted=tally.voted,
                                 eligible=tally.eligible, needed=tally.needed)
    if tally.carried is None:
        raise states.GuardFailed("no outcome has the appeal panel's majority yet", state=case.state,
                                 event="decide_appeal")
    if not (reason or "").strip():
        raise ValidationFailed("the reason for the appeal decision is required", field="reason")
    new_outcome = tally.carried
    decision = "upheld" if new_outcome == appeal.appealed_outcome else "altered"
    _touch(session, case, expected_version)
    appeal.decision, appeal.new_outcome, appeal.decision_reason = decision, new_outcome, reason.strip()
    appeal.decided_by_id, appeal.decided_at = actor.id, utcnow()
    session.add(appeal)
    session.flush()
    eligible = {m.id for m in agg.eligible_panel()}
    votes = [{"member_id": v.member_id, "decision": v.decision, "outcome": v.outcome}
             for v in agg.panel_votes(appeal.id) if v.member_id in eligible]
    audit.record(session, event="decide_appeal", actor=actor, case_id=case.id,
                 payload={"appeal_id": appeal.id, "decision": decision, "appealed_outcome": appeal.appealed_outcome,
                          "new_outcome": new_outcome, "reason": appeal.decision_reason, "votes": votes,
                          "eligible": tally.eligible})
    decision_letter = letters.issue_appeal_decision(session, case, appeal, actor, today=today)
    if decision == "altered":  # a deduction applied for the appealed outcome is refunded in part or whole
        hr.refunds_after(session, case, actor, {appeal.respondent_id: new_outcome}, decision="appeal_decision",
                         decision_ref=decision_letter.doc_number, today=today)
    notices.appeal_decided(session, case, appeal)
    return appeal


def conclude_appeals(session: Session, case: Case, actor: User, *, expected_version: int | None = None,
                     today: date | None = None) -> Case:
    """Every appeal is decided: the determination becomes final."""
    _begin(session, case, actor, "conclude", expected_version)
    _fire(session, case, "conclude_appeals", actor, expected_version=expected_version, today=today)
    _finalise(session, case)
    for appeal in session.exec(select(Appeal).where(Appeal.case_id == case.id, Appeal.decision == "altered")):
        # The final determination cites the appeal decision, states the final outcome, has no appeal rights.
        letters.issue_final_determination(session, case, appeal, actor, today=today)
    return case


def refer_for_accountability(session: Session, case: Case, actor: User, *, recipient: str | None = None,
                             reference: str | None = None, respondent_ids: Collection[int] | None = None,
                             matters: str | None = None, expected_version: int | None = None,
                             today: date | None = None) -> Case:
    """Hand liable and reduced outcomes to the accountability procedure (only after a final determination),
    recording to whom (the recipient department; default the rule set's), under which reference (文号; default
    the referral letter's number) and what: the respondents (default every one with a reduced or liable final
    outcome) and the matters referred. One audited event; the referral letter is issued with it.

    Raises PermissionDenied, ConflictError, TransitionNotAllowed, GuardFailed (nothing to refer),
    ValidationFailed (a respondent not referable; a field too long).
    """
    agg = _begin(session, case, actor, "refer", expected_version)
    referable = {r.id: r.final_outcome for r in agg.respondents if r.final_outcome in ("liable", "reduced")}
    chosen = hr.referral_choice(referable, respondent_ids) if referable else []
    recipient, reference, matters = hr.clean_referral(recipient, reference, matters,
                                                      letters.default_recipient(agg.procedure))
    _fire(session, case, "refer_for_accountability", actor, expected_version=expected_version, today=today,
          payload={"respondents": chosen, "recipient": recipient, "reference": reference or None,
                   "matters": matters})
    letter = letters.issue_referral(session, case, actor, today=today, recipient=recipient, respondent_ids=chosen)
    determinations = {r.id: letters.current(session, "determination", case.id, r.id) for r in agg.respondents
                      if r.id in chosen}
    hr.record_referral(session, case, actor, recipient=recipient, reference=reference, matters=matters,
                       letter=letter,
                       respondents=[{"respondent_id": rid, "outcome": referable[rid],
                                     "determination": determinations[rid].doc_number if determinations[rid] else None}
                                    for rid in chosen])
    return case


def close(session: Session, case: Case, actor: User, *, expected_version: int | None = None,
          today: date | None = None) -> Case:
    """Close a final or referred case."""
    _begin(session, case, actor, "close", expected_version)
    case.closed_at, case.due_date = utcnow(), None  # rolled back with the event if it is refused
    _fire(session, case, "close", actor, expected_version=expected_version, today=today)
    return case


def withdraw(session: Session, case: Case, actor: User, reason: str, *, expected_version: int | None = None,
             today: date | None = None) -> Case:
    """Withdraw a case before determination (loan recovered or upgraded, merged…); never under legal hold."""
    _begin(session, case, actor, "withdraw", expected_version)
    case.due_date = None  # set before the event, so the case is updated once (rolled back if refused)
    _fire(session, case, "withdraw", actor, expected_version=expected_version, today=today, reason=reason,
          payload={"reason": reason})
    return case


def set_legal_hold(session: Session, case: Case, actor: User, hold: bool, reason: str, *,
                   expected_version: int | None = None) -> Case:
    """Place or lift a legal hold (a held case cannot be withdrawn)."""
    authorize(session, case, actor, "legal_hold")
    if not (reason or "").strip():
        raise ValidationFailed("a reason is required", field="reason")
    _touch(session, case, expected_version)
    case.legal_hold = hold
    session.add(case)
    session.flush()
    audit.record(session, event="legal_hold" if hold else "legal_hold_lifted", actor=actor, case_id=case.id,
                 payload={"reason": reason})
    return case


URGE_MAX = 400  # characters of a 督办 message (a notification holds 500)


def urge(session: Session, case: Case, actor: User, message: str, *, today: date | None = None) -> dict:
    """A supervisor urges (督办) the case's current step: recorded in the timeline and delivered to the person
    (or people) whose step it is. Only an overdue step, or a case near or past its one-year limit, is urged.

    Does not change the case (its version stays). Returns the audit event's fields; raises PermissionDenied
    (the policy), TransitionNotAllowed (a case already determined with effect), ValidationFailed (no message,
    too long, nothing to urge).
    """
    authorize(session, case, actor, "urge")
    today = today or date.today()
    if case.state not in states.ACTION_STATES["urge"]:
        raise states.TransitionNotAllowed("only a case still being determined can be urged",
                                          state=case.state, event="urge")
    text = (message or "").strip()
    if not text:
        raise ValidationFailed("write what you urge", field="message")
    if len(text) > URGE_MAX:
        raise ValidationFailed("the message may be at most 400 characters long", field="message")
    limit = deadlines.one_year(session, case, today)
    step_overdue = case.due_date is not None and case.due_date < today
    if not states.urgeable(case.state, step_overdue, limit["position"]):
        raise ValidationFailed("only an overdue step, or a case near or past its one-year limit, can be urged",
                               field="message")
    people = deadlines.concerned_users(session, case)
    if not people:
        raise ValidationFailed("nobody holds the case's current step: assign it first", field="message")
    event = audit.record(session, event="urge", actor=actor, case_id=case.id, from_state=case.state,
                         payload={"message": text, "to": sorted(u.username for u in people),
                                  "due": case.due_date, "limit": limit["limit"], "position": limit["position"]})
    label = states.STATE_LABELS[case.state]
    notifications.tell(
        session, [u.id for u in people], case_id=case.id, kind="urge", key=f"urge:{case.id}:{event['seq']}",
        zh=f"督办：{actor.name} 督促办理案件 {case.number}（{label['zh']}）：{text}",
        en=f"Urged by {actor.name}: case {case.number} ({label['en'].lower()}): {text}")
    return event


def file_statement(session: Session, case: Case, actor: User, text: str, *,
                   expected_version: int | None = None) -> Respondent:
    """A respondent files (or replaces) their exemption statement while the case is being investigated.

    After the deadline too, as long as the investigation is not submitted: the deadline only lets the
    investigator go on without it. A statement filed after declining replaces the refusal.
    """
    agg = authorize(session, case, actor, "statement")
    if case.state not in states.ACTION_STATES["statement"]:
        raise states.TransitionNotAllowed("statements can be filed until the investigation is submitted",
                                          state=case.state, event="file_statement")
    respondent = agg.respondent_of_user(actor.id)
    if not (text or "").strip():
        raise ValidationFailed("the statement is empty", field="statement")
    _touch(session, case, expected_version)
    respondent.statement, respondent.statement_at = text.strip(), utcnow()
    respondent.statement_declined_at = None
    session.add(respondent)
    session.flush()
    audit.record(session, event="file_statement", actor=actor, case_id=case.id,
                 payload={"respondent_id": respondent.id, "statement": respondent.statement,
                          "due": respondent.statement_due})
    return respondent


def decline_statement(session: Session, case: Case, actor: User, note: str = "", *,
                      expected_version: int | None = None) -> Respondent:
    """A respondent declines in writing to file an exemption statement (the investigation need not wait
    for their deadline). They may still file one until the investigation is submitted.

    Raises PermissionDenied (not a respondent), TransitionNotAllowed (the investigation was submitted),
    ValidationFailed (a statement is on file, or the note is too long).
    """
    agg = authorize(session, case, actor, "statement")
    if case.state not in states.ACTION_STATES["statement"]:
        raise states.TransitionNotAllowed("statements can be filed or declined until the investigation is "
                                          "submitted", state=case.state, event="decline_statement")
    respondent = agg.respondent_of_user(actor.id)
    if respondent.statement_at is not None:
        raise ValidationFailed("a statement has been filed: it stands, so there is nothing to decline",
                               field="statement")
    note = (note or "").strip()
    if len(note) > 500:
        raise ValidationFailed("the note may be at most 500 characters long", field="note")
    _touch(session, case, expected_version)
    respondent.statement_declined_at = utcnow()
    session.add(respondent)
    session.flush()
    audit.record(session, event="decline_statement", actor=actor, case_id=case.id,
                 payload={"respondent_id": respondent.id, "note": note, "due": respondent.statement_due})
    return respondent


def statement_positions(session: Session, case: Case, today: date | None = None) -> dict[int, str]:
    """Each respondent's position on their statement (domain/hearing.py), by respondent id."""
    day = today or date.today()
    return {r.id: hearing.position(r.statement_at, r.statement_declined_at, r.statement_due, day)
            for r in queries.aggregate(session, case).respondents}


def reevaluate(session: Session, case, actor, version_number: int, reason: str, *,
               expected_version: int | None = None) -> dict:
    """Explicitly re-judge every stage of an open case under another rule-set version (audited).

    By default each stage is judged by the version in force on its date; this action overrides that for
    the whole case, e.g. when a corrected list must apply. Votes cast so far are invalidated.
    Raises ValidationFailed without a reason or for an unknown version, TransitionNotAllowed outside
    investigation and review.
    """
    authorize(session, case, actor, "reevaluate")
    if case.state not in states.ACTION_STATES["reevaluate"]:
        raise states.TransitionNotAllowed("a case can be re-evaluated only while it is investigated (facts lock "
                                          "once it is submitted)",
                                   state=case.state, event="reevaluate")
    if not (reason or "").strip():
        raise ValidationFailed("say why the case is re-evaluated under another rule-set version", field="reason")
    row = session.exec(select(RuleSetVersion).where(RuleSetVersion.version == version_number,
                                                    RuleSetVersion.status == "published")).first()
    if row is None:
        raise ValidationFailed(f"no published rule-set version {version_number}", field="version")
    _touch(session, case, expected_version)
    rs = rulesets.parsed(row)
    before = {}
    for f in session.exec(select(StageFact).join(Respondent, Respondent.id == StageFact.respondent_id)
                          .where(Respondent.case_id == case.id)):
        rulesets.validate_stage_facts(rs, f.stage, f.facts)  # the facts must be expressible in that version
        before[f"{f.respondent_id}:{f.loan_id}:{f.stage}"] = f.rule_set_version_id
        f.rule_set_version_id = row.id
        session.add(f)
    session.flush()
    summary = recommend_case(session, case, actor, refreeze=False) if case.state == "under_review" else {}
    if case.state == "under_review":
        invalidate_votes(session, case, actor, reason="re-evaluated under another rule-set version")
    audit.record(session, event="reevaluate", actor=actor, case_id=case.id,
                 payload={"version": version_number, "reason": reason.strip(), "previous_versions": before,
                          **summary})
    return summary
