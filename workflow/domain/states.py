"""The case lifecycle, declared once as data (states, transitions, guards).

The `transitions` machine, the diagram in docs/architecture.md and the UI's action buttons are all built
from STATES and TRANSITIONS below. Guards are pure functions of a `GuardContext` (a plain snapshot of the
case built by the service layer) and the event's keyword arguments.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from transitions import Machine, MachineError

from . import hearing
from .errors import GuardFailed, TransitionNotAllowed

# (code, 中文, English)
STATES: list[tuple[str, str, str]] = [
    ("registered", "已立案", "Registered"),
    ("investigating", "调查中", "Investigating"),
    ("under_review", "评议中", "Under review"),
    ("determined", "已认定", "Determined"),
    ("in_publicity", "公示中", "In publicity"),
    ("appeal_window", "申诉期", "Appeal window"),
    ("appeal_review", "申诉复核中", "Appeal review"),
    ("final", "认定生效", "Final"),
    ("referred", "已移交问责", "Referred for accountability"),
    ("closed", "已结案", "Closed"),
    ("withdrawn", "已撤销", "Withdrawn"),
]
STATE_CODES = [s[0] for s in STATES]
STATE_LABELS = {code: {"zh": zh, "en": en} for code, zh, en in STATES}
INITIAL_STATE = "registered"
TERMINAL_STATES = {"closed", "withdrawn"}
# The states in which a case is still being determined: the one-year limit (金规〔2024〕11号) runs in them,
# and each has a step someone must take. From `final` on the determination is done.
OPEN_STATES: tuple[str, ...] = ("registered", "investigating", "under_review", "determined", "in_publicity",
                                "appeal_window", "appeal_review")
# A case this many calendar days or fewer before its one-year limit is listed as near it (issue 19, domain.md §13).
LIMIT_WARNING_DAYS = 30

# Each transition: trigger, source(s), dest, conditions (guards that must hold), unless (guards that must not).
TRANSITIONS: list[dict] = [
    {"trigger": "assign_investigator", "source": "registered", "dest": "investigating",
     "conditions": ["investigator_not_respondent"]},
    {"trigger": "submit_investigation", "source": "investigating", "dest": "under_review",
     "conditions": ["facts_complete", "statements_heard"]},
    {"trigger": "return_for_investigation", "source": "under_review", "dest": "investigating",
     "conditions": ["reason_given"]},
    {"trigger": "determine", "source": "under_review", "dest": "determined",
     "conditions": ["quorum_reached", "every_respondent_decided", "deviations_have_reasons", "chair_signs"]},
    {"trigger": "start_publicity", "source": "determined", "dest": "in_publicity",
     "conditions": ["letters_issued"]},
    {"trigger": "reopen", "source": "in_publicity", "dest": "under_review",
     "conditions": ["reason_given"]},
    {"trigger": "end_publicity", "source": "in_publicity", "dest": "appeal_window",
     "conditions": ["publicity_elapsed"]},
    {"trigger": "close_appeal_window", "source": "appeal_window", "dest": "appeal_review",
     "conditions": ["appeal_window_elapsed", "has_appeals"]},
    {"trigger": "close_appeal_window", "source": "appeal_window", "dest": "final",
     "conditions": ["appeal_window_elapsed"], "unless": ["has_appeals"]},
    {"trigger": "conclude_appeals", "source": "appeal_review", "dest": "final",
     "conditions": ["every_appeal_decided", "no_appeal_worsened"]},
    {"trigger": "refer_for_accountability", "source": "final", "dest": "referred",
     "conditions": ["some_outcome_not_exempt"]},
    {"trigger": "close", "source": ["final", "referred"], "dest": "closed", "conditions": []},
    {"trigger": "withdraw", "source": ["registered", "investigating", "under_review"], "dest": "withdrawn",
     "conditions": ["reason_given", "not_under_legal_hold"]},
]

TRIGGERS: list[str] = list(dict.fromkeys(t["trigger"] for t in TRANSITIONS))

# The actions on a case that do not move it, and the states in which each is open (the actions that move it
# are open where TRANSITIONS declares their trigger). Who may take them is `policy.why_not`.
FACT_STATES = ("investigating",)  # from under_review on, facts lock: only a return reopens them (domain.md §13)
# Determination letters are served (送达) from their issue until the case ends (final determinations too).
SERVICE_STATES = ("determined", "in_publicity", "appeal_window", "appeal_review", "final", "referred")
ACTION_STATES: dict[str, tuple[str, ...]] = {
    "statement": ("registered", "investigating"),
    "facts": FACT_STATES,
    "evidence": ("registered", "investigating", "appeal_window"),
    "vote": ("under_review",),
    "issue_letters": ("determined",),
    # Letters are served from their issue on; a respondent's window runs from their own service, so they may
    # appeal (or waive) during publicity too.
    "record_service": SERVICE_STATES,
    "acknowledge": SERVICE_STATES,
    "preview_documents": ("determined", "final"),
    "appeal": ("in_publicity", "appeal_window"),
    "waive_appeal": ("in_publicity", "appeal_window"),
    "appeal_vote": ("appeal_review",),
    "decide_appeal": ("appeal_review",),
    "reevaluate": ("investigating",),
    "legal_hold": tuple(STATE_CODES),
    # 督办: a supervisor urges the person whose step it is, while the case is still being determined.
    "urge": OPEN_STATES,
    # 案例引导: a decided case becomes guidance only once its determination is final.
    "propose_precedent": ("final", "referred", "closed"),
    # The sanctions applied to a person (扣分, 处分, 扣发) are recorded back from the determination on: the
    # determination letter states them, HR may apply them at once, and an appeal decision or a
    # re-determination that improves the outcome afterwards makes a refund due (domain/hr.py).
    "record_sanctions": SERVICE_STATES + ("closed",),
}


def limit_position(limit: date, today: date) -> str:
    """Where a case stands against its one-year limit: "past" (the limit has passed), "near" (within
    LIMIT_WARNING_DAYS calendar days of it, the limit day included) or "ok"."""
    if today > limit:
        return "past"
    return "near" if (limit - today).days <= LIMIT_WARNING_DAYS else "ok"


def urgeable(state: str, step_overdue: bool, position: str) -> bool:
    """Whether a step may be urged (督办): the case is still being determined and its current step is
    overdue, or the case is near or past its one-year limit."""
    return state in OPEN_STATES and (step_overdue or position in ("near", "past"))


def sources_of(transition: dict) -> list[str]:
    """The source states of one declared transition, always as a list."""
    src = transition["source"]
    return [src] if isinstance(src, str) else list(src)


def allowed_triggers(state: str) -> list[str]:
    """Triggers declared for `state`, in declaration order (guards not evaluated)."""
    return [t for t in TRIGGERS if any(state in sources_of(x) for x in TRANSITIONS if x["trigger"] == t)]


SEVERITY = {"exempt": 0, "reduced": 1, "liable": 2}


@dataclass(frozen=True)
class RespondentSnapshot:
    """What the guards need to know about one respondent."""

    id: int
    user_id: int
    stages: tuple[str, ...]
    stages_with_facts: frozenset[str] = frozenset()
    recommended: str | None = None
    decided: str | None = None
    deviation_reason: str | None = None
    final: str | None = None
    name: str = ""
    statement: str = hearing.NOT_INVITED  # hearing.position on the guard's day
    statement_due: date | None = None


@dataclass(frozen=True)
class AppealSnapshot:
    id: int
    respondent_id: int
    appealed_outcome: str
    decided: bool = False
    new_outcome: str | None = None


@dataclass(frozen=True)
class GuardContext:
    """A plain snapshot of a case, built by the service layer before an event is fired."""

    today: date
    respondents: tuple[RespondentSnapshot, ...] = ()
    appeals: tuple[AppealSnapshot, ...] = ()
    eligible_voters: int = 0
    votes_cast_by: frozenset[int] = frozenset()
    quorum_fraction: str = "2/3"
    letters_missing: int = 0
    publicity_ends: date | None = None
    appeal_window_ends: date | None = None
    # Every respondent has appealed, waived their appeal or let their window (from their letter's service) pass.
    respondents_settled: bool = False
    legal_hold: bool = False
    extra: dict = field(default_factory=dict)


# --- guards: name -> (predicate(ctx, kwargs) -> bool, message when it fails) ---------------------------
# A message is a text, or `Detailed`: a text followed by what is missing (names, dates), read off the context.


@dataclass(frozen=True)
class Detailed:
    head: str  # the translatable part (workflow/web/messages.py)
    detail: Callable[[GuardContext], str]

    def __call__(self, ctx: GuardContext) -> str:
        return f"{self.head}: {self.detail(ctx)}"


def _fraction(text: str) -> tuple[int, int]:
    num, den = text.split("/")
    return int(num), int(den)


def _quorum(ctx: GuardContext, kw: dict) -> bool:
    num, den = _fraction(ctx.quorum_fraction)
    return ctx.eligible_voters > 0 and len(ctx.votes_cast_by) * den >= num * ctx.eligible_voters


GUARDS: dict[str, tuple[Callable[[GuardContext, dict], bool], str | Detailed]] = {
    "investigator_not_respondent": (
        lambda ctx, kw: kw.get("investigator_id") is not None
        and kw["investigator_id"] not in {r.user_id for r in ctx.respondents},
        "the investigator must be named and may not be a respondent of the case",
    ),
    "facts_complete": (
        lambda ctx, kw: bool(ctx.respondents)
        and all(set(r.stages) <= set(r.stages_with_facts) for r in ctx.respondents),
        "every respondent needs recorded facts and written findings for each of their stages",
    ),
    "statements_heard": (
        lambda ctx, kw: hearing.heard(r.statement for r in ctx.respondents),
        Detailed("the respondents' statements are awaited until their deadlines",
                 lambda ctx: ", ".join(f"{r.name or r.user_id} ({r.statement_due.isoformat()})"
                                       for r in ctx.respondents if r.statement == hearing.AWAITED)),
    ),
    "reason_given": (
        lambda ctx, kw: bool((kw.get("reason") or "").strip()),
        "a reason must be given",
    ),
    "quorum_reached": (_quorum, "the committee quorum has not been reached"),
    "every_respondent_decided": (
        lambda ctx, kw: bool(ctx.respondents) and all(r.decided for r in ctx.respondents),
        "every respondent needs an outcome carried by the voting rule",
    ),
    "deviations_have_reasons": (
        lambda ctx, kw: all(
            r.decided == r.recommended or (r.deviation_reason or "").strip() for r in ctx.respondents
        ),
        "an outcome that differs from the recommendation needs a recorded reason",
    ),
    "chair_signs": (
        lambda ctx, kw: bool(kw.get("chair_signed")),
        "the committee chair must sign the determination",
    ),
    "letters_issued": (
        lambda ctx, kw: ctx.letters_missing == 0,
        "every respondent's determination letter must be issued first",
    ),
    "publicity_elapsed": (
        lambda ctx, kw: ctx.publicity_ends is not None and ctx.today > ctx.publicity_ends,
        "the publicity period has not elapsed yet",
    ),
    "appeal_window_elapsed": (
        lambda ctx, kw: ctx.respondents_settled,
        "the appeal window has not elapsed yet: a respondent may still appeal, or their letter has not been served",
    ),
    "has_appeals": (
        lambda ctx, kw: bool(ctx.appeals),
        "no appeal was filed",
    ),
    "every_appeal_decided": (
        lambda ctx, kw: bool(ctx.appeals) and all(a.decided for a in ctx.appeals),
        "every appeal must be decided first",
    ),
    "no_appeal_worsened": (
        lambda ctx, kw: all(
            a.new_outcome is None or SEVERITY[a.new_outcome] <= SEVERITY[a.appealed_outcome]
            for a in ctx.appeals
        ),
        "an appeal may never worsen the appealed outcome",
    ),
    "some_outcome_not_exempt": (
        lambda ctx, kw: any((r.final or r.decided) in ("liable", "reduced") for r in ctx.respondents),
        "only a final case with a liable or reduced outcome can be referred for accountability",
    ),
    "not_under_legal_hold": (
        lambda ctx, kw: not ctx.legal_hold,
        "the case is under legal hold and cannot be withdrawn",
    ),
}


class _CaseModel:
    """The object the `transitions` machine drives: its state reads and writes the holder's column."""

    def __init__(self, holder, ctx: GuardContext | None):
        self.bind(holder, ctx)

    def bind(self, holder, ctx: GuardContext | None) -> None:
        self._holder = holder
        self._ctx = ctx
        self.failed: list[str] = []

    def release(self) -> list[str]:
        """Let go of the case; the messages of the guards that failed."""
        failed = self.failed
        self.bind(_Idle(), None)
        return failed

    @property
    def state(self) -> str:
        return self._holder.state

    @state.setter
    def state(self, value: str) -> None:
        # The only place in the code base that assigns a case's state.
        self._holder.state = value

    def _guard(self, name: str, event) -> bool:
        predicate, message = GUARDS[name]
        ok = bool(predicate(self._ctx, event.kwargs))
        if not ok:
            self.failed.append(message(self._ctx) if isinstance(message, Detailed) else message)
        return ok


def _guard_method(name: str):
    def method(self, event):
        return self._guard(name, event)

    method.__name__ = f"is_{name}"
    return method


for _name in GUARDS:
    setattr(_CaseModel, f"is_{_name}", _guard_method(_name))


def _machine_transitions() -> list[dict]:
    out = []
    for t in TRANSITIONS:
        out.append({
            "trigger": t["trigger"], "source": t["source"], "dest": t["dest"],
            "conditions": [f"is_{g}" for g in t.get("conditions", [])],
            "unless": [f"is_{g}" for g in t.get("unless", [])],
        })
    return out


_SHARED_LOCK = threading.Lock()
_SHARED: list[_CaseModel] = []


class _Idle:
    state = INITIAL_STATE


def _shared_driver() -> _CaseModel:
    """The process's machine, built once from the declaration, with the one model it drives.

    Registering a model with `transitions` binds a method per trigger and per state; doing that for every
    event costs more than the event itself, so one model is registered once and pointed at the case being
    moved (under `_SHARED_LOCK`, so one event at a time per process).
    """
    if not _SHARED:
        driver = _CaseModel(_Idle(), None)
        build_machine(driver, initial=INITIAL_STATE)
        _SHARED.append(driver)
    return _SHARED[0]


def build_machine(model, initial: str) -> Machine:
    """A machine bound to `model`, starting from its stored state."""
    return Machine(
        model=model, states=STATE_CODES, transitions=_machine_transitions(), initial=initial,
        auto_transitions=False, send_event=True, ignore_invalid_triggers=False,
        model_attribute="state",
    )


def ensure_allowed(state: str, trigger: str) -> None:
    """Raise TransitionNotAllowed unless `trigger` is declared from `state` (guards not evaluated)."""
    if trigger not in TRIGGERS:
        raise TransitionNotAllowed(f"unknown event '{trigger}'", state=state, event=trigger)
    if trigger not in allowed_triggers(state):
        raise TransitionNotAllowed(
            f"'{trigger}' is not allowed while the case is {STATE_LABELS[state]['en'].lower()} ({state})",
            state=state, event=trigger,
        )


def fire(holder, trigger: str, ctx: GuardContext, **kwargs) -> tuple[str, str]:
    """Fire `trigger` on `holder` (anything with a `state` attribute).

    Returns (from_state, to_state). Raises TransitionNotAllowed when the event is not allowed in the
    current state and GuardFailed when a guard does not hold; in both cases `holder.state` is unchanged.
    """
    before = holder.state
    ensure_allowed(before, trigger)
    with _SHARED_LOCK:  # one machine per process; transitions' Machine is not thread-safe
        model = _shared_driver()
        model.bind(holder, ctx)
        try:
            moved = getattr(model, trigger)(**kwargs)
        except MachineError as exc:  # pragma: no cover - allowed_triggers already filters
            raise TransitionNotAllowed(str(exc), state=before, event=trigger) from exc
        finally:
            failed = model.release()
    if not moved:
        reasons = list(dict.fromkeys(failed)) or ["a guard does not hold"]
        raise GuardFailed(f"cannot {trigger.replace('_', ' ')}: " + "; ".join(reasons),
                          state=before, event=trigger, reasons=reasons)
    return before, holder.state


def may(holder_state: str, trigger: str, ctx: GuardContext, **kwargs) -> bool:
    """Whether `trigger` would succeed from `holder_state` with this context (no side effects)."""

    class _Probe:
        state = holder_state

    try:
        fire(_Probe(), trigger, ctx, **kwargs)
    except (TransitionNotAllowed, GuardFailed):
        return False
    return True


def mermaid_diagram() -> str:
    """The state diagram as mermaid text, generated from TRANSITIONS."""
    lines = ["stateDiagram-v2", f"    [*] --> {INITIAL_STATE}"]
    for t in TRANSITIONS:
        guards = t.get("conditions", []) + [f"not {u}" for u in t.get("unless", [])]
        label = t["trigger"] + (f" [{', '.join(guards)}]" if guards else "")
        for src in sources_of(t):
            lines.append(f"    {src} --> {t['dest']}: {label}")
    for s in sorted(TERMINAL_STATES):
        lines.append(f"    {s} --> [*]")
    return "\n".join(lines) + "\n"
