"""Who may see a case and who may take which action on it, for the web UI.

The services enforce segregation of duties themselves; these checks decide what the UI offers (buttons,
forms) and refuse a request with 403 before a service is called. Whether an action is possible in the
case's current state is the state machine's answer (`states.may`), shown next to the permission.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from flask_login import UserMixin
from sqlalchemy import bindparam, func
from sqlmodel import Session, select

from ..domain import states
from ..domain.policy import appeal_reviewer_conflict, has_role, recusal_reason
from ..models import Appeal, AuditEvent, Branch, Case, Letter, Notification, Respondent, User, Vote
from ..services import cases as case_service
from ..services.investigation import FACT_STATES
from .i18n import _l
from .messages import translate


@dataclass(frozen=True)
class Principal(UserMixin):
    """The signed-in user as the web layer sees them (a plain snapshot, no session attached)."""

    id: int
    username: str
    name: str
    roles: frozenset[str]
    branch_id: int
    branch_path: str
    branch_level: int
    branch_name: str
    branch_name_en: str
    locale: str

    def get_id(self) -> str:
        return str(self.id)

    def has(self, *roles: str) -> bool:
        return has_role(self.roles, *roles)

    @property
    def head_office(self) -> bool:
        return self.branch_level == 0


# Read on every request (the signed-in user): built once, with the user's unread notifications counted in the
# same statement for the navigation badge.
_UNREAD = (select(func.count()).select_from(Notification)
           .where(Notification.user_id == User.id, Notification.read_at.is_(None)).scalar_subquery())
_PRINCIPAL = (select(User.id, User.username, User.name, User.roles, User.locale, User.active, User.branch_id,
                     Branch.path, Branch.level, Branch.name.label("branch_name"),
                     Branch.name_en.label("branch_name_en"), _UNREAD.label("unread"))
              .join(Branch, Branch.id == User.branch_id).where(User.id == bindparam("user_id")))


def principal_row(conn, user_id: int):
    """The row `principal_from` turns into a Principal (None if there is no such user); `conn` is a
    Connection or a Session."""
    return conn.execute(_PRINCIPAL, {"user_id": user_id}).first()


def principal_from(row) -> Principal | None:
    """The Principal of a `principal_row` (None for an unknown or deactivated user)."""
    if row is None or not row.active:
        return None
    return Principal(id=row.id, username=row.username, name=row.name, roles=frozenset(row.roles.split()),
                     branch_id=row.branch_id, branch_path=row.path, branch_level=row.level,
                     branch_name=row.branch_name, branch_name_en=row.branch_name_en or row.branch_name,
                     locale=row.locale)


def load_principal(session: Session, user_id: int) -> Principal | None:
    return principal_from(principal_row(session, user_id))


def sees_everything(p: Principal) -> bool:
    """Internal auditors read every case; everyone else sees their home branch's subtree."""
    return p.has("auditor") or p.branch_path == "/" or p.head_office


@dataclass(frozen=True)
class CaseFacts:
    """Who is involved in a case: what permissions depend on."""

    case_id: int
    state: str
    branch_id: int
    branch_path: str
    investigator_id: int | None
    respondent_user_ids: frozenset[int]
    handler_ids: frozenset[int]
    decider_ids: frozenset[int] = field(default_factory=frozenset)


_BRANCH_PATH = select(Branch.path).where(Branch.id == bindparam("branch_id"))
_RESPONDENT_USERS = select(Respondent.user_id).where(Respondent.case_id == bindparam("case_id"))
_VOTERS = select(Vote.member_id).where(Vote.case_id == bindparam("case_id"))
_DETERMINERS = select(AuditEvent.actor_id).where(AuditEvent.case_id == bindparam("case_id"),
                                                 AuditEvent.event == "determine")


def case_facts(session: Session, case: Case) -> CaseFacts:
    params = {"case_id": case.id}
    return facts_of(case, branch_path=session.exec(_BRANCH_PATH, params={"branch_id": case.branch_id}).one(),
                    respondent_user_ids=session.exec(_RESPONDENT_USERS, params=params).all(),
                    handler_ids=(a.user_id for a in case_service.stage_assignments(session, case.id)),
                    decider_ids=[*session.exec(_VOTERS, params=params), *session.exec(_DETERMINERS, params=params)])


def facts_of(case: Case, *, branch_path: str, respondent_user_ids, handler_ids, decider_ids) -> CaseFacts:
    """The CaseFacts of a case from what the caller already read: the path of its branch, the user ids of its
    respondents, of the handlers of its loans' stages, and of everyone who voted on it (valid or not) or
    signed its determination."""
    return CaseFacts(case_id=case.id, state=case.state, branch_id=case.branch_id, branch_path=branch_path,
                     investigator_id=case.investigator_id, respondent_user_ids=frozenset(respondent_user_ids),
                     handler_ids=frozenset(handler_ids),
                     decider_ids=frozenset(d for d in decider_ids if d is not None))


def can_view(p: Principal, cf: CaseFacts) -> bool:
    return (sees_everything(p) or cf.branch_path.startswith(p.branch_path)
            or p.id in cf.respondent_user_ids or p.id == cf.investigator_id)


# --- actions ----------------------------------------------------------------------------------------------

# action -> (states in which it can be taken, the machine's trigger if it changes the state)
ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "assign": (("registered",), "assign_investigator"),
    "statement": (("registered", "investigating"), None),
    "facts": (FACT_STATES, None),
    "evidence": (("registered", "investigating", "under_review", "appeal_window"), None),
    "submit": (("investigating",), "submit_investigation"),
    "return": (("under_review",), "return_for_investigation"),
    "vote": (("under_review",), None),
    "determine": (("under_review",), "determine"),
    "issue_letters": (("determined",), None),
    "start_publicity": (("determined",), "start_publicity"),
    "reopen": (("in_publicity",), "reopen"),
    "end_publicity": (("in_publicity",), "end_publicity"),
    "close_appeal_window": (("appeal_window",), "close_appeal_window"),
    "appeal": (("appeal_window",), None),
    "decide_appeal": (("appeal_review",), None),
    "conclude": (("appeal_review",), "conclude_appeals"),
    "refer": (("final",), "refer_for_accountability"),
    "close": (("final", "referred"), "close"),
    "withdraw": (("registered", "investigating", "under_review"), "withdraw"),
    "reevaluate": (("investigating", "under_review"), None),
    "legal_hold": (tuple(states.STATE_CODES), None),
}

NOT_YOURS = _l("This step belongs to someone else.")
OUT_OF_SCOPE = _l("This case is outside your branch's scope.")


def _committee_of_case(p: Principal, cf: CaseFacts) -> bool:
    return p.branch_id == cf.branch_id


def why_not(p: Principal, cf: CaseFacts, action: str) -> str | None:
    """Why `p` may not take `action` on the case (a message for the user, translated when shown), or None.

    Only permissions and segregation of duties; the case's state is the state machine's business.
    """
    if not can_view(p, cf):
        return OUT_OF_SCOPE
    respondent = p.id in cf.respondent_user_ids
    investigator = p.id == cf.investigator_id
    if action in ("statement", "appeal"):
        return None if respondent else _l("Only a respondent of the case may do this, for themselves.")
    if action == "evidence":
        return None if (respondent or investigator) else _l("Only the investigator and the respondents may add evidence.")
    if action in ("facts", "submit"):
        return None if investigator else _l("Only the case's investigator may do this.")
    if respondent:
        return _l("A respondent may not act on their own case.")
    if action == "assign":
        if not p.has("admin", "committee_chair", "investigator"):
            return NOT_YOURS
        return _l("A person who handled the case's loans may not assign its investigator.") \
            if p.id in cf.handler_ids else None
    if action in ("return", "vote", "determine", "reopen"):
        wanted = ("committee_chair",) if action in ("determine", "reopen") else ("committee_member", "committee_chair")
        if not p.has(*wanted) or not _committee_of_case(p, cf):
            return _l("Only the deciding branch's committee may do this.")
        why = recusal_reason(p.id, respondent_ids=cf.respondent_user_ids, investigator_id=cf.investigator_id,
                             loan_handler_ids=cf.handler_ids)
        return _l("You are recused from this case: %(why)s", why=translate(why)) if why else None
    if action in ("issue_letters", "start_publicity", "refer", "close", "withdraw", "reevaluate"):
        if p.has("admin") or (p.has("committee_chair") and _committee_of_case(p, cf)):
            return None
        return NOT_YOURS
    if action in ("end_publicity", "close_appeal_window"):
        return None if p.has("admin") else NOT_YOURS
    if action in ("decide_appeal", "conclude"):
        if not p.has("appeal_reviewer"):
            return NOT_YOURS
        why = appeal_reviewer_conflict(p.id, respondent_ids=cf.respondent_user_ids, decider_ids=cf.decider_ids,
                                       investigator_id=cf.investigator_id)
        return _l("You may not review these appeals: %(why)s", why=translate(why)) if why else None
    if action == "legal_hold":
        return None if p.has("admin", "auditor") else NOT_YOURS
    raise KeyError(action)


def can_register(p: Principal) -> bool:
    """Who registers new cases."""
    return p.has("admin", "committee_chair")


@dataclass
class ActionStatus:
    permitted: bool
    ready: bool
    reasons: list[str]


def _probe_kwargs(session: Session, case: Case, action: str) -> dict:
    if action in ("return", "reopen", "withdraw"):
        return {"reason": "-"}
    if action == "determine":
        return {"chair_signed": True}
    if action == "assign":
        candidates = investigator_candidates(session, case)
        return {"investigator_id": candidates[0].id if candidates else None}
    return {}


def investigator_candidates(session: Session, case: Case) -> list[User]:
    """Active investigators who neither are respondents nor handled the case's loans."""
    involved = set(session.exec(select(Respondent.user_id).where(Respondent.case_id == case.id)).all())
    involved |= {a.user_id for a in case_service.stage_assignments(session, case.id)}
    users = session.exec(select(User).where(User.active.is_(True)).order_by(User.name)).all()
    return [u for u in users if "investigator" in u.role_set and u.id not in involved]


def machine_reasons(session: Session, case: Case, action: str, today: date, ctx=None) -> list[str]:
    """Why the state machine would refuse the action now ([] when it would allow it)."""
    action_states, trigger = ACTIONS[action]
    if case.state not in action_states:
        return [str(_l("Not possible while the case is %(state)s.", state=_state(case.state)))]
    if trigger is None:
        return []
    ctx = ctx or case_service.guard_context(session, case, today)
    if action == "determine":  # the reasons for deviations are entered on the determination form itself
        ctx = replace(ctx, respondents=tuple(replace(r, deviation_reason=r.deviation_reason or "-")
                                             for r in ctx.respondents))

    class _Probe:
        state = case.state

    try:
        states.fire(_Probe(), trigger, ctx, **_probe_kwargs(session, case, action))
    except states.GuardFailed as exc:
        return [translate(str(r)) for r in exc.details.get("reasons", [exc.message])]
    except states.TransitionNotAllowed as exc:
        return [translate(exc.message)]
    return []


def _state(code: str) -> str:
    from .i18n import state_label

    return state_label(code)


class ActionTable(dict):
    """Action name → ActionStatus, whose entries templates also read as attributes (`actions.vote.ready`):
    Jinja looks a dict's keys up only after a failed attribute look-up, an exception each."""

    def __getattr__(self, name: str) -> ActionStatus:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def case_actions(session: Session, case: Case, p: Principal, cf: CaseFacts, today: date) -> ActionTable:
    """Every action with whether the user may take it and whether the case allows it now."""
    out = ActionTable()
    ctx = None  # the guard context is built only if some permitted action needs the machine's answer
    for action in ACTIONS:
        denied = why_not(p, cf, action)
        if denied:
            out[action] = ActionStatus(False, False, [denied])
            continue
        action_states, trigger = ACTIONS[action]
        if trigger is not None and case.state in action_states and ctx is None:
            ctx = case_service.guard_context(session, case, today)
        reasons = machine_reasons(session, case, action, today, ctx)
        if not reasons:
            reasons = _extra_reasons(session, case, p, action, today)
        out[action] = ActionStatus(True, not reasons, reasons)
    return out


def _extra_reasons(session: Session, case: Case, p: Principal, action: str, today: date) -> list[str]:
    """Conditions of actions that are not state changes (so the machine does not know them)."""
    if action == "evidence":
        # Investigators add evidence while facts can be recorded; respondents with their statement or appeal.
        open_for = FACT_STATES if p.id == case.investigator_id else ("registered", "investigating", "appeal_window")
        return [] if case.state in open_for else [str(_l("Evidence cannot be added at this stage."))]
    if action == "appeal":
        if case.appeal_window_ends and today > case.appeal_window_ends:
            return [str(_l("The appeal window has ended."))]
        mine = session.exec(select(Appeal).join(Respondent, Respondent.id == Appeal.respondent_id)
                            .where(Appeal.case_id == case.id, Respondent.user_id == p.id)).first()
        return [str(_l("You have already appealed."))] if mine else []
    if action == "decide_appeal":
        open_ = session.exec(select(Appeal).where(Appeal.case_id == case.id, Appeal.decision.is_(None))).first()
        return [] if open_ else [str(_l("Every appeal has been decided."))]
    if action == "issue_letters":
        issued = {lt.respondent_id for lt in session.exec(
            select(Letter).where(Letter.case_id == case.id, Letter.kind == "determination"))}
        missing = [r for r in case_service.respondents_of(session, case.id) if r.id not in issued]
        return [] if missing else [str(_l("Every determination letter has been issued."))]
    return []
