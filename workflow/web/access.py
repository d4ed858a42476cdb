"""What the web UI offers a signed-in user on a case: the policy's answers, translated.

Every rule is `workflow.domain.policy`'s; the services enforce it on every verb. Here the UI asks the same
rules what to show (buttons, forms) and refuses a request with 403 and the policy's reason before a service
is called. Whether an action is possible in the case's current state is the state machine's answer
(`states.fire` with the case's guard context), shown next to the permission.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from flask_babel import gettext
from flask_login import UserMixin
from sqlalchemy import bindparam, func
from sqlmodel import Session, select

from ..domain import policy, states
from ..domain.policy import has_role
from ..models import Branch, Case, Notification, StandIn, User
from ..services import queries
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
    stands_in_for: tuple[policy.Delegation, ...] = ()  # the stand-ins they hold today

    def get_id(self) -> str:
        return str(self.id)

    def has(self, *roles: str) -> bool:
        return has_role(self.roles, *roles)

    @property
    def head_office(self) -> bool:
        return self.branch_level == 0

    @property
    def exports_hr(self) -> bool:
        """Whether the policy lets this user read and export the monthly HR list (the navigation asks)."""
        return policy.why_not_hr_export(self.actor) is None

    @property
    def actor(self) -> policy.Actor:
        """The policy's view of this user."""
        return policy.Actor(id=self.id, roles=self.roles, branch_id=self.branch_id, branch_path=self.branch_path,
                            branch_level=self.branch_level, stands_in_for=self.stands_in_for)


SESSION_EPOCH = "_epoch"  # the session key holding the user's session epoch when they signed in


# Read on every request (the signed-in user): built once, with the user's unread notifications counted in the
# same statement for the navigation badge.
_UNREAD = (select(func.count()).select_from(Notification)
           .where(Notification.user_id == User.id, Notification.read_at.is_(None)).scalar_subquery())
# Whether the user holds a stand-in today, in the same statement: only then are the stand-ins read.
_STANDS_IN = (select(func.count()).select_from(StandIn)
              .where(StandIn.stand_in_id == User.id, StandIn.revoked_at.is_(None),
                     StandIn.starts_on <= bindparam("day"), StandIn.ends_on >= bindparam("day")).scalar_subquery())
_PRINCIPAL = (select(User.id, User.username, User.name, User.roles, User.locale, User.active, User.branch_id,
                     User.session_epoch, Branch.path, Branch.level, Branch.name.label("branch_name"),
                     Branch.name_en.label("branch_name_en"), _UNREAD.label("unread"), _STANDS_IN.label("stands_in"))
              .join(Branch, Branch.id == User.branch_id).where(User.id == bindparam("user_id")))


def principal_row(conn, user_id: int):
    """The row `principal_from` turns into a Principal (None if there is no such user); `conn` is a
    Connection or a Session."""
    return conn.execute(_PRINCIPAL, {"user_id": user_id, "day": date.today()}).first()


def principal_from(row, conn=None) -> Principal | None:
    """The Principal of a `principal_row` (None for an unknown or deactivated user); `conn` reads the stand-ins
    they hold today, if any."""
    if row is None or not row.active:
        return None
    delegations = queries.delegations_of(conn, row.id) if conn is not None and row.stands_in else ()
    return Principal(id=row.id, username=row.username, name=row.name, roles=frozenset(row.roles.split()),
                     branch_id=row.branch_id, branch_path=row.path, branch_level=row.level,
                     branch_name=row.branch_name, branch_name_en=row.branch_name_en or row.branch_name,
                     locale=row.locale, stands_in_for=delegations)


def load_principal(session: Session, user_id: int) -> Principal | None:
    return principal_from(principal_row(session, user_id), session)


def sees_everything(p: Principal) -> bool:
    """The policy's scope rule: auditors and head office see the whole bank."""
    return policy.sees_everything(p.actor)


def refusal_text(refusal: policy.Refusal) -> str:
    """A refusal in the user's language."""
    values = dict(refusal.values)
    if refusal.detail:
        values["why"] = translate(refusal.detail)
    return gettext(refusal.message, **values)


def case_view(session: Session, case: Case) -> policy.CaseView:
    """The policy's view of a case, from the unit of work's aggregate."""
    return queries.aggregate(session, case).view()


def can_view(p: Principal, view: policy.CaseView) -> bool:
    return policy.can_view(p.actor, view)


def why_not(p: Principal, view: policy.CaseView, action: str) -> str | None:
    """Why `p` may not take `action` on the case, in the user's language, or None."""
    refusal = policy.why_not(p.actor, view, action)
    return refusal_text(refusal) if refusal else None


ACTIONS = policy.ACTIONS
OUT_OF_SCOPE = policy.OUT_OF_SCOPE
NOT_YOURS = policy.NOT_YOURS


def can_register(p: Principal) -> bool:
    """Who registers new cases."""
    return policy.why_not_register(p.actor) is None


@dataclass
class ActionStatus:
    permitted: bool
    ready: bool
    reasons: list[str]


def _probe_kwargs(agg: queries.CaseAggregate, action: str, candidates) -> dict:
    if action in ("return", "reopen", "withdraw"):
        return {"reason": "-"}
    if action == "determine":
        return {"chair_signed": True}
    if action == "assign":
        return {"investigator_id": candidates[0].id if candidates else None}
    return {}


_INVESTIGATORS = select(User).where(User.active.is_(True), User.roles.contains("investigator")).order_by(User.name)


def investigator_candidates(session: Session, case: Case) -> list[User]:
    """Active investigators who neither are respondents nor handled the case's loans."""
    agg = queries.aggregate(session, case)
    involved = agg.respondent_user_ids | agg.handler_ids
    return [u for u in session.exec(_INVESTIGATORS) if "investigator" in u.role_set and u.id not in involved]


def machine_reasons(session: Session, case: Case, action: str, today: date, ctx=None) -> list[str]:
    """Why the state machine would refuse the action now ([] when it would allow it)."""
    action_states, trigger = ACTIONS[action]
    if case.state not in action_states:
        return [str(_l("Not possible while the case is %(state)s.", state=_state(case.state)))]
    if trigger is None:
        return []
    agg = queries.aggregate(session, case)
    ctx = ctx or agg.guard_context(today)
    if action == "determine":  # the reasons for deviations are entered on the determination form itself
        ctx = replace(ctx, respondents=tuple(replace(r, deviation_reason=r.deviation_reason or "-")
                                             for r in ctx.respondents))

    class _Probe:
        state = case.state

    candidates = investigator_candidates(session, case) if action == "assign" else None
    try:
        states.fire(_Probe(), trigger, ctx, **_probe_kwargs(agg, action, candidates))
    except states.GuardFailed as exc:
        return [translate(str(r)) for r in exc.details.get("reasons", [exc.message])]
    except states.TransitionNotAllowed as exc:
        return [translate(exc.message)]
    return []


def _state(code: str) -> str:
    from .i18n import state_label

    return state_label(code)


class ActionTable(dict):
    """Action name → ActionStatus, whose entries templates also read as attributes (`actions.vote.ready`)."""

    def __getattr__(self, name: str) -> ActionStatus:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def case_actions(session: Session, case: Case, p: Principal, view: policy.CaseView, today: date) -> ActionTable:
    """Every action with whether the user may take it and whether the case allows it now."""
    out = ActionTable()
    ctx = None  # the guard context is built only if some permitted action needs the machine's answer
    agg = queries.aggregate(session, case)
    for action in ACTIONS:
        denied = why_not(p, view, action)
        if denied:
            out[action] = ActionStatus(False, False, [denied])
            continue
        action_states, trigger = ACTIONS[action]
        if trigger is not None and case.state in action_states and ctx is None:
            ctx = agg.guard_context(today)
        reasons = machine_reasons(session, case, action, today, ctx)
        if not reasons:
            reasons = _extra_reasons(agg, p, action, today)
        out[action] = ActionStatus(True, not reasons, reasons)
    return out


def _extra_reasons(agg: queries.CaseAggregate, p: Principal, action: str, today: date) -> list[str]:
    """Conditions of actions that are not state changes (so the machine does not know them)."""
    case = agg.case
    if action == "evidence":
        return [] if policy.evidence_open(p.actor, agg.view()) else [str(_l("Evidence cannot be added at this stage."))]
    if action in ("appeal", "waive_appeal", "acknowledge"):
        # The respondent's own window runs from the service of their letter (services.letters.appeal_windows).
        from ..services import letters

        mine = agg.respondent_of_user(p.id)
        window = letters.appeal_windows(agg.session, case).get(mine.id) if mine else None
        if window is None or window.letter_id is None:
            return [str(_l("Your determination letter has not been issued yet."))]
        if action == "acknowledge":
            return [str(_l("Your letter has been served."))] if window.served_on else []
        if window.appealed:
            return [str(_l("You have already appealed."))]
        if window.waived:
            return [str(_l("You have waived your appeal."))]
        if window.served_on is None:
            return [str(_l("Your letter has not been served yet: the appeal window runs from its service."))]
        if not window.open(today):
            return [str(_l("The appeal window has ended."))]
        return []
    if action == "record_service":
        from ..services import letters

        unserved = [w for w in letters.appeal_windows(agg.session, case).values() if w.letter_id and not w.served_on]
        return [] if unserved else [str(_l("Every letter has been served."))]
    if action in ("appeal_vote", "decide_appeal"):
        return [] if any(a.decision is None for a in agg.appeals) else [str(_l("Every appeal has been decided."))]
    if action == "urge":
        from ..services import deadlines

        limit = deadlines.one_year(agg.session, case, today)
        overdue = case.due_date is not None and case.due_date < today
        if limit is None or not states.urgeable(case.state, overdue, limit["position"]):
            return [str(_l("Only an overdue step, or a case near or past its one-year limit, can be urged."))]
        return []
    if action == "issue_letters":
        issued = {lt.respondent_id for lt in agg.letters if lt.kind == "determination"}
        missing = [r for r in agg.respondents if r.id not in issued]
        return [] if missing else [str(_l("Every determination letter has been issued."))]
    return []
