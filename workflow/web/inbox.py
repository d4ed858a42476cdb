"""Inboxes: what waits for me (by role), and every case in my scope with filters, search, sort and pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import login_required
from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    or_,
    true,
    union,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlmodel import select

from .. import name_search
from ..db import rows as read_rows
from ..domain import waiting
from ..domain.states import STATE_CODES
from ..models import (
    OUTCOMES,
    Appeal,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Letter,
    LetterService,
    LoanStage,
    Respondent,
    User,
    Vote,
)
from ..services import deadlines
from .access import Principal, sees_everything
from .common import reading, today
from .i18n import fmt_date
from .messages import translate

bp = Blueprint("inbox", __name__)

SORTS = {
    "due": (Case.due_date.is_(None), Case.due_date, Case.id),
    "opened": (Case.opened_at.desc(), Case.id.desc()),
    "opened_asc": (Case.opened_at, Case.id),
    "number": (Case.number,),
}
INDEXED_SORTS = ("opened", "opened_asc", "number")  # the orders an index on case_file gives (`Matches`)


_SUBTREE = select(Branch.id).where(Branch.path.like(bindparam("path_prefix")))
# The cases outside the subtree a user investigates or answers in (usually none), filtered by the database:
# an officer answers in hundreds of cases of their own branch, and reading them all (a UNION of ~500 rows
# fetched into Python) cost more than the rest of the inbox's statements together.
_INVOLVED_OUTSIDE = union(
    select(Case.id).where(Case.investigator_id == bindparam("user_id"),
                          Case.branch_id.not_in(bindparam("branches", expanding=True))),
    select(Respondent.case_id).where(Respondent.user_id == bindparam("user_id"),
                                     Respondent.case_branch_id.not_in(bindparam("branches", expanding=True))))
_INVOLVED_AT_ALL = select(or_(exists().where(Case.investigator_id == bindparam("user_id")),
                              exists().where(Respondent.user_id == bindparam("user_id"))))


def _scope(s, p: Principal) -> tuple[list[int], list[int], bool]:
    """(the branch ids of the user's subtree, the cases outside it they investigate or answer in, whether they
    investigate or answer in any case at all).

    Looked up once per request and passed to the database as lists: with literal lists, an OR of the two
    is answered from the indexes (SQLite's multi-index OR, PostgreSQL's bitmap OR) instead of a scan of
    every case; cases inside the subtree are in scope anyway, so only the others are listed.
    """
    def read():
        branches = read_rows(s, _SUBTREE, {"path_prefix": p.branch_path + "%"}).scalars().all()
        outside = read_rows(s, _INVOLVED_OUTSIDE, {"user_id": p.id, "branches": branches}).scalars().all()
        involved = bool(outside) or bool(read_rows(s, _INVOLVED_AT_ALL, {"user_id": p.id}).scalar())
        return branches, outside, involved

    scopes = g.setdefault("inbox_scopes", {})  # read once per request: a page asks for it several times
    if p.id not in scopes:
        scopes[p.id] = read()
    return scopes[p.id]


def scope_clause(s, p: Principal):
    """Cases of the user's branch subtree, plus cases they are a respondent or the investigator of."""
    if sees_everything(p):
        return true()
    branches, cases, _ = _scope(s, p)
    return or_(Case.branch_id.in_(branches), Case.id.in_(cases)) if cases else Case.branch_id.in_(branches)


_RECUSED = union(select(Respondent.case_id).where(Respondent.user_id == bindparam("user_id")),
                  select(CaseLoan.case_id).join(LoanStage, LoanStage.loan_id == CaseLoan.loan_id)
                  .where(LoanStage.user_id == bindparam("user_id")))


def waiting_clause(s, p: Principal, day: date):
    """Cases in which the next step is this user's (see `_waiting`)."""
    return _waiting(s, p, day)[0]


def _waiting(s, p: Principal, day: date):
    """(the condition "the next step of the case is this user's", whether it is costly to evaluate).

    One condition per reason a case can wait for someone (`workflow/domain/waiting.py`); respondent and
    investigator reasons only for people who answer in or investigate some case. When every remaining
    reason is a condition on the case row, they are OR-ed: each is answered from an index that covers it
    (state, branch, investigator, deadline), so counting and paging separately is cheaper than one pass
    with a window count. When some need the respondent table, the reasons are a union of small,
    index-friendly id sets, so the database never scans every case to find the few that wait for one
    person (costly: counted in the same pass as the page).
    """
    if p.roles == frozenset({"auditor"}):  # internal audit reads; nothing waits for it
        return false(), False
    parts = []  # id sets that need other tables
    on_case = []  # conditions on the case row alone
    for reason in waiting.reasons_for(p.roles, involved=_scope(s, p)[2]):
        kind, clause = _reason_clause(s, p, reason, day)
        (parts if kind == "ids" else on_case).append(clause)
    if not parts and on_case:  # conditions on the case row only: no union; counted and paged from the indexes
        return and_(or_(*on_case), scope_clause(s, p)), False
    parts += [select(Case.id).where(cond) for cond in on_case]
    if not parts:
        return false(), False
    return and_(Case.id.in_(union(*parts)), scope_clause(s, p)), True


def _in_states(states: tuple[str, ...]):
    return Case.state == states[0] if len(states) == 1 else Case.state.in_(states)


def _reason_clause(s, p: Principal, reason: waiting.WaitingReason, day: date):
    """("ids", a SELECT of case ids) or ("case", a condition on the case row) for one waiting reason."""
    unless = {
        "statement_filed": lambda: [Respondent.statement_at.is_(None), Respondent.statement_declined_at.is_(None),
                                    or_(Respondent.statement_due.is_(None), Respondent.statement_due >= day)],
        "appealed_or_window_over": lambda: [~exists().where(Appeal.respondent_id == Respondent.id),
                                            or_(Case.appeal_window_ends.is_(None), Case.appeal_window_ends >= day)],
        "voted": lambda: [Case.id.not_in(select(Vote.case_id).where(Vote.member_id == p.id,
                                                                    Vote.invalidated_at.is_(None)))],
        "not_overdue": lambda: [Case.due_date < day],
        "nothing_to_acknowledge": _unacknowledged,
        None: lambda: [],
    }[reason.unless]()
    if reason.who == waiting.RESPONDENT:
        return "ids", select(Respondent.case_id).join(Case, Case.id == Respondent.case_id).where(
            Respondent.user_id == p.id, _in_states(reason.states), *unless)
    if reason.who == waiting.INVESTIGATOR:
        return "case", and_(Case.investigator_id == p.id, _in_states(reason.states), *unless)
    if reason.where == waiting.DECIDING_BRANCH:
        place = Case.branch_id == p.branch_id
    else:
        place = true() if sees_everything(p) else Case.branch_id.in_(_scope(s, p)[0])
    recusal = []
    if reason.recused_excluded:  # the cases they investigate, answer in or whose loans they handled
        recusal.append(or_(Case.investigator_id.is_(None), Case.investigator_id != p.id))
        recusals = g.setdefault("inbox_recusals", {})  # a short list, read once per request
        if p.id not in recusals:
            recusals[p.id] = read_rows(s, _RECUSED, {"user_id": p.id}).scalars().all()
        recused = recusals[p.id]
        if recused:
            recusal.append(Case.id.not_in(recused))
    return "case", and_(place, _in_states(reason.states), *recusal, *unless)


_LETTER, _NEWER = aliased(Letter), aliased(Letter)


def _unacknowledged():
    """The respondent's current determination letter has no service recorded (issued, not yet 签收)."""
    return [exists().where(_LETTER.case_id == Respondent.case_id, _LETTER.respondent_id == Respondent.id,
                           _LETTER.kind == "determination",
                           ~exists().where(_NEWER.subject_key == _LETTER.subject_key, _NEWER.version > _LETTER.version),
                           ~exists().where(LetterService.letter_id == _LETTER.id))]


_OTHER = aliased(Respondent)


def _holds(p: Principal, when: str):
    """A step's condition (`waiting.WHEN`) as a condition on the case row."""
    if when == "voted":
        return Case.id.in_(select(Vote.case_id).where(Vote.member_id == p.id, Vote.invalidated_at.is_(None)))
    if when == "letters_issued":
        return exists().where(Letter.case_id == Case.id, Letter.kind == "determination")
    if when == "some_outcome_not_exempt":
        # Final: the final outcome is set, so coalesce() reads it, from the (outcome, case_id) index alone.
        return exists().where(func.coalesce(_OTHER.final_outcome, _OTHER.decided_outcome).in_(("reduced", "liable")),
                              _OTHER.case_id == Case.id)
    raise KeyError(when)


@dataclass(frozen=True)
class Awaited:
    """One action a case awaits from the user: the action's code, its label and why (translated by the
    template), and its deadline."""

    action: str
    label: str
    why: str | None
    deadline: date | None


def _own_appeal_deadline(p: Principal):
    return (select(func.max(LetterService.appeal_deadline))
            .join(Respondent, Respondent.id == LetterService.respondent_id)
            .where(LetterService.case_id == Case.id, Respondent.user_id == p.id).scalar_subquery())


def _disjoint(reasons: list[waiting.WaitingReason]) -> bool:
    """Whether no two of the reasons share a state: a waiting case's state then tells its reason."""
    return sum(len(r.states) for r in reasons) == len({st for r in reasons for st in r.states})


def rows_awaiting(s, p: Principal, day: date, ids: list[int], *, waiting_only: bool) -> tuple[list, dict]:
    """The inbox rows of these cases in order, and what each awaits from the user (`Awaited`, in the order
    of the reasons), in one statement: the rows with a flag per condition the steps need.

    A reason applies to a row by its own condition; on the waiting list (`waiting_only`: every row waits
    for the user), when no two of the user's reasons share a state, the state alone tells it.
    """
    reasons = [] if p.roles == frozenset({"auditor"}) else waiting.reasons_for(p.roles, involved=_scope(s, p)[2])
    by_state = waiting_only and _disjoint(reasons)
    columns = {}
    for reason in reasons:
        if not by_state:
            kind, clause = _reason_clause(s, p, reason, day)
            columns[f"r_{reason.code}"] = Case.id.in_(clause) if kind == "ids" else clause
        for st in reason.steps:
            if st.when and f"w_{st.when}" not in columns:
                columns[f"w_{st.when}"] = _holds(p, st.when)
            if st.deadline == waiting.OWN_APPEAL and "own_appeal" not in columns:
                columns["own_appeal"] = _own_appeal_deadline(p)
            if st.deadline == waiting.OWN_STATEMENT and "own_statement" not in columns:
                columns["own_statement"] = (select(Respondent.statement_due)
                                            .where(Respondent.case_id == Case.id, Respondent.user_id == p.id)
                                            .scalar_subquery())
    query = _ROWS.add_columns(*[(expr if name.startswith("own_") else case((expr, 1), else_=0)).label(name)
                                for name, expr in columns.items()])
    found = {row.id: row for row in read_rows(s, query, {"ids": ids})}
    rows = [found[i] for i in ids if i in found]
    awaits: dict[int, list[Awaited]] = {}
    for row in rows:
        m = row._mapping
        holds = {name[2:] for name in columns if name.startswith("w_") and m[name]}
        own = {kind: m.get(kind) for kind in (waiting.OWN_APPEAL, waiting.OWN_STATEMENT)}
        for kind, value in own.items():
            if isinstance(value, str):  # SQLite returns a scalar subquery's date as text
                own[kind] = date.fromisoformat(value)
        for reason in reasons:
            if row.state not in reason.states or (not by_state and not m[f"r_{reason.code}"]):
                continue
            st = reason.awaited(row.state, holds)
            deadline = row.due_date if st.deadline == waiting.DUE else \
                (own[st.deadline] or row.due_date) if st.deadline else None
            item = Awaited(st.action, waiting.AWAITED[st.action], st.why, deadline)
            if item not in awaits.setdefault(row.id, []):
                awaits[row.id].append(item)
    return rows, awaits


def _branch_subtree(branch_id: int):
    path = select(Branch.path).where(Branch.id == branch_id).scalar_subquery()
    return select(Branch.id).where(Branch.path.like(path + "%"))


class OutcomeIs:
    """The outcome filter, written for each use.

    Choosing a page walks the sort order and checks each case's respondents (EXISTS), stopping after one
    page. Counting reads the outcome indexes: for a user who sees every case, the respondents with the
    outcome (one case each, `count_alone` when nothing else filters); for a user with a branch scope, the
    respondents with the outcome in the scope's branches (`case_branch_id`, the case's branch copied onto
    its respondents) or in the cases they are involved in outside it, so only the scope's matches are read.
    """

    def __init__(self, outcome: str, scope: tuple[list[int], list[int]] | None):
        self.outcome, self.scope = outcome, scope

    def _matches(self):
        return func.coalesce(Respondent.final_outcome, Respondent.decided_outcome) == self.outcome

    def _in_scope(self):
        branches, cases = self.scope
        in_branches = Respondent.case_branch_id.in_(branches)
        return or_(in_branches, Respondent.case_id.in_(cases)) if cases else in_branches

    def for_count(self):
        matching = select(Respondent.case_id).where(self._matches())
        return Case.id.in_(matching.where(self._in_scope()) if self.scope is not None else matching)

    def for_page(self):
        return exists().where(Respondent.case_id == Case.id, self._matches())

    def count_alone(self):
        """The number of cases with the outcome when no other condition applies (beyond the scope)."""
        if self.scope is not None:  # the (outcome, case_branch_id, case_id) index reads only the scope's
            return select(func.count(func.distinct(Respondent.case_id))).where(self._matches(), self._in_scope())
        # Everything: count(*) over SELECT DISTINCT, not count(DISTINCT …). SQLite then reads the case ids
        # in the order of the (outcome, case_id) index and skips repeats instead of sorting 12,000 ids into
        # a temporary B-tree (0.9 ms instead of 3.8 on the benchmark's database).
        return select(func.count()).select_from(
            select(Respondent.case_id).distinct().where(self._matches()).subquery())


class Matches:
    """A search's matching cases (a UNION ALL of case ids from indexes), written for each use.

    SQLite answers `id IN (matches)` by collecting the matches and then reading each matching case, so a
    page sorted newest first reads and sorts every match (2.3 ms for 10,000). When the matches are many,
    walking an index in the page's order and keeping the matches is cheaper: about (offset + page size) x
    cases / matches index entries (250 for 10,000 of 100,000: 1.3 ms). `id + 0` keeps SQLite from driving
    the query from the matches, so it walks the ordering index (`_page_of_ids` decides when). For a user
    who sees every case, the matches alone are counted without reading the cases (their ids all exist).
    """

    def __init__(self, ids, everything: bool):
        self.ids, self.everything = ids, everything

    def for_count(self):
        return Case.id.in_(self.ids)

    for_page = for_count

    def for_walk(self):
        return (Case.id + 0).in_(self.ids)

    def count_alone(self):
        """The number of matching cases when no other condition applies (None: the scope applies too)."""
        if not self.everything:
            return None
        matched = self.ids.subquery()
        return select(func.count(func.distinct(matched.c[0])))

    def worth_walking(self, s, total: int, offset: int, size: int) -> bool:
        """Whether walking the ordering index reads fewer entries than the matches (SQLite only)."""
        if s.get_bind().dialect.name != "sqlite" or total < 2 * size:
            return False
        cases = read_rows(s, select(func.max(Case.id))).scalar_one() or 0  # about the number of cases, at once
        return total * total > (offset + size) * cases


_SPECIAL = (OutcomeIs, Matches)


def _clauses(where, use: str) -> list:
    return [getattr(w, use)() if isinstance(w, _SPECIAL) else w for w in where]


def filtered(s, p: Principal, args, day: date):
    """The WHERE clauses of an inbox request (the scope first), and the cleaned filter values to show."""
    f = {"tab": args.get("tab", "waiting"), "state": args.get("state", ""), "branch": args.get("branch", ""),
         "period_from": args.get("from", ""), "period_to": args.get("to", ""), "outcome": args.get("outcome", ""),
         "q": (args.get("q") or "").strip()[:100], "sort": args.get("sort", ""), "action": args.get("action", "")}
    if f["tab"] not in ("waiting", "all", "limit"):
        f["tab"] = "waiting"
    if f["sort"] not in SORTS:  # what waits for me: most urgent first; the one-year limit: the oldest first
        f["sort"] = {"waiting": "due", "limit": "opened_asc"}.get(f["tab"], "opened")
    where = [scope_clause(s, p)]
    # A search's matches come from indexes (numbers, the trigram index of names, the copied loan numbers).
    # Within a branch scope they are counted and paged in one pass (a window count over the scope's
    # matches: 2.3 ms for 10,000 matches, against 3.7 in two statements); for a user who sees every case,
    # a window count over all of them costs more than evaluating them twice (5.1 ms against 1.4 + 1.9).
    f["costly"] = bool(f["q"]) and not sees_everything(p)
    if f["tab"] != "waiting" or f["action"] not in waiting.AWAITED:
        f["action"] = ""
    if f["action"]:  # the cases awaiting one action of mine (a link of the navigation's counts)
        clause, costly = _action_conditions(s, p, day).get(f["action"], (false(), False))
        where.append(clause)
        f["costly"] = f["costly"] or costly
    elif f["tab"] == "waiting":
        clause, costly = _waiting(s, p, day)
        where.append(clause)
        f["costly"] = f["costly"] or costly
    if f["tab"] == "limit":  # near (within 30 days of) or past the one-year limit
        where.append(deadlines.near_limit_clause(s, day))
    if f["state"] in STATE_CODES:
        where.append(Case.state == f["state"])
    else:
        f["state"] = ""
    if f["branch"].isdigit():
        where.append(Case.branch_id.in_(_branch_subtree(int(f["branch"]))))
    else:
        f["branch"] = ""
    for key, op in (("period_from", "ge"), ("period_to", "lt")):
        try:
            d = date.fromisoformat(f[key]) if f[key] else None
        except ValueError:
            d, f[key] = None, ""
        if d:
            bound = datetime.combine(d if op == "ge" else d + timedelta(days=1), time.min)
            where.append(Case.opened_at >= bound if op == "ge" else Case.opened_at < bound)
    if f["outcome"] in OUTCOMES:
        where.append(OutcomeIs(f["outcome"], None if sees_everything(p) else _scope(s, p)[:2]))
    else:
        f["outcome"] = ""
    if f["q"]:
        text = f["q"].replace("%", "").replace("_", "")
        like = f"%{text}%"
        prefix = (text, text + "\uffff")  # a range on the unique indexes of numbers (LIKE could not use them)
        by_loan = select(CaseLoan.case_id).where(CaseLoan.loan_no >= prefix[0], CaseLoan.loan_no < prefix[1])
        by_person = select(Respondent.case_id).join(User, User.id == Respondent.user_id).where(
            or_(User.name.ilike(like), User.employee_no == text))
        # Two selects, not one OR: the name scan then reads only the name index, the code is one look-up.
        by_enterprise = union(name_search.enterprise_ids_named(s.get_bind().dialect.name, text,
                                                               Enterprise.__table__),
                              select(Enterprise.id).where(Enterprise.uscc == text))
        # UNION ALL: IN is a set membership already, so the matches need no second de-duplication.
        where.append(Matches(union_all(
            select(Case.id).where(Case.number >= prefix[0], Case.number < prefix[1]), by_loan, by_person,
            select(Case.id).where(Case.enterprise_id.in_(by_enterprise))), sees_everything(p)))
    return where, f


def _action_conditions(s, p: Principal, day: date, *, within_waiting: bool = False) -> dict[str, tuple]:
    """For each action the user is awaited for: (the condition "the case awaits this action from the user",
    whether it needs other tables than the case's). A step's condition is its reason's, its state, its own
    `when` and not the `when` of an earlier step of the same state (the first step that holds applies).

    `within_waiting`: the condition is only asked of cases that wait for the user; when no two of their
    reasons share a state, the state (and the step's `when`) then tells the reason, and its condition is
    left out.
    """
    if p.roles == frozenset({"auditor"}):
        return {}
    reasons = waiting.reasons_for(p.roles, involved=_scope(s, p)[2])
    shared = not _disjoint(reasons)
    found: dict[str, list] = {}
    costly: dict[str, bool] = {}
    for reason in reasons:
        if within_waiting and not shared:
            kind, base = "case", true()
        else:
            kind, clause = _reason_clause(s, p, reason, day)
            base = Case.id.in_(clause) if kind == "ids" else clause
        earlier: dict[str, list] = {}
        for st in reason.steps:
            before = earlier.setdefault(st.state, [])
            cond = and_(base, Case.state == st.state, *[~c for c in before],
                        *([_holds(p, st.when)] if st.when else []))
            if st.when:
                before.append(_holds(p, st.when))
            found.setdefault(st.action, []).append(cond)
            costly[st.action] = costly.get(st.action, False) or kind == "ids"
    return {a: (or_(*conds) if len(conds) > 1 else conds[0], costly[a]) for a, conds in found.items()}


def awaited_counts(s, p: Principal, day: date) -> dict:
    """{"waiting": the number of cases waiting for the user, "actions": [(action, count), …] in the order of
    `waiting.AWAITED`}, in one statement and one pass over the waiting cases (read from the indexes as the
    waiting list is): their count, and for each action the number of them that await it (of distinct cases
    even when two reasons of one person await the same action: an administrator who chairs)."""
    conds = _action_conditions(s, p, day, within_waiting=True)
    actions = [a for a in waiting.AWAITED if a in conds]
    if not actions:
        return {"waiting": 0, "actions": []}
    sums = [func.coalesce(func.sum(case((conds[a][0], 1), else_=0)), 0) for a in actions]
    values = read_rows(s, select(func.count(), *sums).select_from(Case).where(waiting_clause(s, p, day))).one()
    return {"waiting": values[0], "actions": [(a, n) for a, n in zip(actions, values[1:], strict=True) if n]}


def _nav_cache() -> dict:
    return current_app.extensions.setdefault("mianze.nav_cache", {})


def remember_waiting(user_id: int, counts: dict) -> None:
    """Keep a user's waiting counts for NAV_COUNT_TTL seconds (the badges on every page)."""
    ttl = float(current_app.config.get("NAV_COUNT_TTL", 15))
    _nav_cache()[user_id] = (monotonic() + ttl, counts)
    g.mianze_waiting = counts


def forget_waiting(user_id: int) -> None:
    """Drop a user's cached counts (after they changed something, so their next page counts afresh)."""
    _nav_cache().pop(user_id, None)
    g.pop("mianze_waiting", None)


def fresh_counts(user_id: int) -> dict | None:
    """The user's cached waiting counts while they are fresh (NAV_COUNT_TTL), else None."""
    hit = _nav_cache().get(user_id)
    return hit[1] if hit and hit[0] > monotonic() else None


def nav_counts(p: Principal) -> dict:
    """The number of cases waiting for the user and the number per awaited action, for the navigation's
    badges on every page (`awaited_counts`).

    Counting can take tens of milliseconds with many cases, so the badges may be up to NAV_COUNT_TTL
    seconds behind other people's actions; the user's own actions count afresh, and the inbox page's own
    total (its tab and the "waiting" badge) is always fresh.
    """
    if "mianze_waiting" not in g:
        hit = fresh_counts(p.id)
        if hit is not None:
            g.mianze_waiting = hit
        else:
            with reading() as s:
                remember_waiting(p.id, awaited_counts(s, p, today()))
    return {"waiting": g.mianze_waiting["waiting"], "awaits": g.mianze_waiting["actions"]}


def _page_of_ids(s, where, sort: str, page: int, size: int, *, one_pass: bool,
                 total: int | None = None) -> tuple[int, int, list[int]]:
    """(total, page, the ids of that page's cases in order); a page past the end shows the last one.

    The page is chosen on the narrow (id, sort key) rows and only its cases are loaded in full. With
    `one_pass` (waiting lists made of id sets, and searches within a branch scope: see `filtered`), the
    total comes from the same statement as a window count, so the conditions are evaluated once; otherwise
    it is a separate COUNT, answered from indexes (or `total`, when the caller counted already), and a search
    with many matches is paged by walking the ordering index (`Matches`).
    """
    order = SORTS[sort]
    counting, paging = _clauses(where, "for_count"), _clauses(where, "for_page")

    def ids_at(n: int, clauses):
        query = select(Case.id, func.count().over()) if one_pass else select(Case.id)
        result = read_rows(s, query.where(*clauses).order_by(*order).offset((n - 1) * size).limit(size))
        return result.all() if one_pass else result.scalars().all()

    if one_pass:
        rows = ids_at(page, counting)
        if rows:
            return rows[0][1], page, [r[0] for r in rows]
        total = read_rows(s, select(func.count()).select_from(Case).where(*counting)).scalar_one() if page > 1 else 0
        page = min(page, max(1, (total + size - 1) // size))
        return total, page, [r[0] for r in ids_at(page, counting)] if total else []
    special = [w for w in where[1:] if isinstance(w, _SPECIAL)]  # where[0] is the scope (`filtered`)
    others = [w for w in where[1:] if not isinstance(w, _SPECIAL)]
    alone = special[0].count_alone() if len(special) == 1 and not others else None
    if total is None:
        total = read_rows(s, alone if alone is not None else
                          select(func.count()).select_from(Case).where(*counting)).scalar_one()
    page = min(page, max(1, (total + size - 1) // size))
    if not total:
        return 0, page, []
    search = next((w for w in special if isinstance(w, Matches)), None)
    if search is not None and sort in INDEXED_SORTS and \
            search.worth_walking(s, total, (page - 1) * size, size):
        paging = [search.for_walk() if w is search else c for w, c in zip(where, paging, strict=True)]
    return total, page, ids_at(page, paging)


# Built once: what a page of the inbox shows of its cases, and the branches to filter by.
_ROWS = (select(Case.id, Case.number, Case.state, Case.legal_hold, Case.opened_at, Case.due_date,
                Case.rule_set_version_id,
                Enterprise.name.label("enterprise"), Branch.name.label("branch_name"),
                Branch.name_en.label("branch_name_en"))
         .join(Enterprise, Enterprise.id == Case.enterprise_id).join(Branch, Branch.id == Case.branch_id)
         .where(Case.id.in_(bindparam("ids", expanding=True))))
_BRANCH_CHOICE = select(Branch.id, Branch.name, Branch.name_en).order_by(Branch.path)
_TOP_BRANCHES = _BRANCH_CHOICE.where(Branch.level <= 1)
_SUBTREE_BRANCHES = _BRANCH_CHOICE.where(Branch.path.like(bindparam("path_prefix")), Branch.level <= 2)


def _awaited_texts(awaits: dict[int, list[Awaited]]) -> dict[int, list[dict]]:
    """Each row's awaited steps with their texts in the user's language: every label, reason and date
    translated once per page, not once per row (25 rows x 4 look-ups cost more than the page's SQL)."""
    texts: dict = {}

    def once(key, make):
        if key not in texts:
            texts[key] = make()
        return texts[key]

    by = gettext("by %(day)s", day="\0")  # the pattern once; the day is put in its place
    return {case_id: [{"action": a.action, "deadline": a.deadline,
                       "label": once(a.label, lambda a=a: translate(a.label)),
                       "why": once(a.why, lambda a=a: translate(a.why)) if a.why else None,
                       "by": once(a.deadline, lambda a=a: by.replace("\0", fmt_date(a.deadline)))
                       if a.deadline else None}
                      for a in items] for case_id, items in awaits.items()}


@bp.get("/")
@login_required
def home():
    return redirect(url_for("inbox.index"))


@bp.get("/inbox")
@login_required
def index():
    from flask_login import current_user

    p: Principal = current_user
    day = today()
    size = int(current_app.config.get("INBOX_PAGE_SIZE", 25))
    page = request.args.get("page", "1")
    page = max(1, int(page)) if page.isdigit() else 1
    with reading() as s:
        where, f = filtered(s, p, request.args, day)
        unfiltered_waiting = f["tab"] == "waiting" and not any(f[k] for k in ("state", "branch", "period_from",
                                                                              "period_to", "outcome", "q", "action"))
        known = None
        if unfiltered_waiting and fresh_counts(p.id) is None:  # the badges' counts are due: their total is
            counts = awaited_counts(s, p, day)  # the page's too
            remember_waiting(p.id, counts)
            known = counts["waiting"]
        # With the total known, the page needs no window count, however costly its conditions.
        total, page, ids = _page_of_ids(s, where, f["sort"], page, size, one_pass=f["costly"] and known is None,
                                        total=known)
        if unfiltered_waiting and known is None:  # the inbox itself always counts afresh (its tab and badge)
            g.mianze_waiting = {**fresh_counts(p.id), "waiting": total}
        pages = max(1, (total + size - 1) // size)
        rows, awaits = rows_awaiting(s, p, day, ids, waiting_only=f["tab"] == "waiting") if ids else ([], {})
        awaits = _awaited_texts(awaits)
        cal = deadlines.calendar(s)
        left = {row.id: cal.remaining(row.due_date, day) for row in rows if row.due_date}
        limits = {}
        if f["tab"] == "limit":
            days = deadlines.limit_days(s)
            limits = {row.id: row.opened_at.date() + timedelta(days=days[row.rule_set_version_id]) for row in rows
                      if row.rule_set_version_id in days}
        if sees_everything(p):
            branches = read_rows(s, _TOP_BRANCHES).all()
        else:
            branches = read_rows(s, _SUBTREE_BRANCHES, {"path_prefix": p.branch_path + "%"}).all()
    args = {k: v for k, v in request.args.items() if k != "page"}
    case_link = url_for("cases.show", case_id=0).removesuffix("0")  # built once, not for each of 25 rows
    return render_template("inbox/index.html", rows=rows, case_link=case_link, left=left, limits=limits,
                           awaits=awaits, total=total, page=page, pages=pages, f=f, args=args, branches=branches,
                           states=STATE_CODES, outcomes=OUTCOMES, today=day)
