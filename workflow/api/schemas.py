"""Request and response shapes of the API (pydantic); the OpenAPI document is generated from them.

Requests are strict (JSON `"1"` is not an integer, though `1.0` is, as JSON Schema says) and reject unknown
fields; query parameters arrive as text and are converted. Whatever the document accepts, these accept: a
rule the document cannot state (a loan already in an open case, a code the rule set does not have) is
refused by the services with 422, never 400.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel

from ..domain import hearing
from ..domain import intake as intake_rules
from ..domain.states import STATE_CODES, TRIGGERS
from ..models import CLASSIFICATIONS, OUTCOMES, ROLES, STAGES
from ..services.imports import PRODUCT_CLASSES


def _integral(value: Any) -> Any:
    """JSON Schema's integers include 3.0: accept a float without a fraction as the integer it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _iso_date(value: Any) -> Any:
    """A query's date is YYYY-MM-DD only (pydantic would also read '0' as 1970-01-01)."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


Id = Annotated[int, Field(ge=1, le=2_147_483_647), BeforeValidator(_integral)]
Version = Annotated[int, Field(ge=1, le=2_147_483_647, description="the case version you saw (optimistic locking)"),
                    BeforeValidator(_integral)]
Reason = Annotated[str, Field(max_length=4000)]
Outcome = Literal[OUTCOMES]
Cursor = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,9}$", description="the `next_cursor` of the previous page")]
QueryDate = Annotated[date, BeforeValidator(_iso_date)]
DateText = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"}),
                     AfterValidator(lambda text: date.fromisoformat(text) and text)]  # a real day, kept as text
# A number as JSON or as a decimal string ("0.0501"); finite only.
Number = Annotated[str, Field(max_length=40, pattern=r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$")] | float
Limit = Annotated[int, Field(ge=1, le=200, description="page size")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    pass


# --- errors ---------------------------------------------------------------------------------------------

class Error(Out):
    """Every error: a stable code, a message for people, and details (e.g. the case's state on a 409)."""

    code: str
    message: str
    details: dict[str, Any]


# --- reference data -------------------------------------------------------------------------------------

class PageQuery(Query):
    limit: Limit = 50
    cursor: Cursor | None = None


class BranchOut(Out):
    id: int
    code: str
    name: str
    name_en: str
    level: int
    parent_id: int | None
    path: str
    active: bool


class BranchPage(Out):
    items: list[BranchOut]
    next_cursor: str | None


class StaffQuery(PageQuery):
    branch_id: Id | None = None
    role: Literal[ROLES] | None = None


class StaffOut(Out):
    """A member of staff (identity-card number and phone are never exposed here)."""

    id: int
    username: str
    name: str
    employee_no: str
    branch_id: int
    roles: list[str]
    active: bool


class StaffPage(Out):
    items: list[StaffOut]
    next_cursor: str | None


class EnterpriseQuery(PageQuery):
    uscc: Annotated[str, Field(max_length=18)] | None = None


class EnterpriseOut(Out):
    id: int
    name: str
    uscc: str
    kind: str
    owner_name: str
    industry: str


class EnterprisePage(Out):
    items: list[EnterpriseOut]
    next_cursor: str | None


class LoanQuery(PageQuery):
    branch_id: Id | None = None
    enterprise_id: Id | None = None
    classification: Literal[CLASSIFICATIONS] | None = None
    product_class: Literal[PRODUCT_CLASSES] | None = None
    loan_no: Annotated[str, Field(max_length=40)] | None = None


class StageHandlerOut(Out):
    stage: str
    user_id: int
    employee_no: str
    performed_on: date


class LoanOut(Out):
    id: int
    loan_no: str
    enterprise_id: int
    branch_id: int
    product_class: str
    credit_total: str = Field(description="yuan, 2 decimals")
    amount: str
    balance: str
    start_date: date
    maturity_date: date
    classification: str
    written_off: bool
    stages: list[StageHandlerOut]


class LoanPage(Out):
    items: list[LoanOut]
    next_cursor: str | None


class ImportQuery(Query):
    dry_run: bool = False


class ImportRowError(Out):
    line: int
    loan_no: str | None
    reason: str


class ImportResultOut(Out):
    rows: int
    created: int
    updated: int
    unchanged: int
    enterprises_created: int
    enterprises_updated: int
    handlers_added: int
    handlers_removed: int
    new_npls: int = Field(0, description="loans that entered a non-performing class: they are on the intake list "
                                         "(GET /intake) until a case is opened or a reason not to is recorded")
    dry_run: bool
    sha256: str | None
    encoding: str | None = Field(None, description='how a CSV file was read: "UTF-8", "UTF-8 with BOM" or '
                                                   '"GB18030" (which includes GBK); null for JSON and XLSX')


class IntakeQuery(Query):
    q: Annotated[str, Field(max_length=100)] = ""
    page: Annotated[int, Field(ge=1, le=100_000)] = 1


class IntakeLoanOut(Out):
    id: int
    loan_no: str
    classification: str
    product_class: str
    amount: str
    balance: str
    branch: str
    out_of_scope: str | None = Field(description="why the loan is outside the exemption rules' scope; null when in it")


class IntakeHandlerOut(Out):
    user_id: int
    name: str
    employee_no: str
    stages: list[str]
    other_groups: int = Field(description="other enterprises on the list whose NPLs this person also handled")


class IntakeGroupOut(Out):
    enterprise_id: int
    enterprise: str
    uscc: str
    loans: list[IntakeLoanOut]
    handlers: list[IntakeHandlerOut]
    open_case: str | None = Field(description="the enterprise's open case, in which its NPLs are to be considered")
    in_scope: bool


class IntakePage(Out):
    items: list[IntakeGroupOut]
    total: int
    page: int


class IntakeCaseIn(In):
    batch_report: bool = False


class IntakeDismissalIn(In):
    reason: Literal[tuple(intake_rules.DISMISSAL_REASONS)]
    note: Annotated[str, Field(max_length=500)] = ""


class IntakeDismissalOut(Out):
    enterprise_id: int
    loans: int


class LetterBatchIn(In):
    branch_id: int = Field(description="the committee's branch: its determined cases get their missing documents")


class JobOut(Out):
    id: int
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    stalled: bool = Field(description="running, but its worker stopped reporting: run it again (POST …/retry)")
    backend: Literal["rq", "thread"]
    done: int
    total: int | None
    result: dict[str, Any]
    error: str | None
    attempts: int
    created_at: str


class PeriodQuery(Query):
    period: QueryDate = Field(description="period end date, e.g. 2025-12-31")


class LoanBookOut(Out):
    """The loan book of a branch and its whole subtree on a period end (balances in yuan)."""

    branch_id: int
    branch: str
    period: date
    all_balance: str | None
    all_npl_balance: str | None
    sme_balance: str | None
    sme_npl_balance: str | None
    all_ratio: str | None
    sme_ratio: str | None


class ToleranceOut(Out):
    """The NPL tolerance of a branch for a period: imported figures if recorded, else from the loan book."""

    model_config = ConfigDict(extra="allow")
    branch: str
    branch_name: str
    period: str
    within: bool
    basis: str
    source: str
    margin: str | None
    gap_pp: str | None
    sme_ratio: str | None
    all_ratio: str | None


# --- cases ----------------------------------------------------------------------------------------------

class CaseCreate(In):
    loan_ids: list[Id] = Field(min_length=1, max_length=50)
    batch_report: bool = False


class CaseQuery(PageQuery):
    state: Literal[tuple(STATE_CODES)] | None = None
    branch_id: Id | None = None
    enterprise_id: Id | None = None
    investigator_id: Id | None = None


class AuthorityOut(Out):
    """Why the case is registered to its committee (delegated authority, a rule of the rule set)."""

    rule: str = Field(description="the rule set's authority tier that applied, or 'default'")
    committee_branch_id: int = Field(description="the branch whose committee decides (the case's branch_id)")
    committee_level: int = Field(description="0 head office, 1 tier-1 branch, 2 sub-branch")
    origin_branch_id: int = Field(description="the branch the case's loans are booked at")
    branch_level: int = Field(description="that branch's level (the fact the rule read, with the amount)")
    total_amount: str = Field(description="the case's total loan amount in yuan (the other fact)")
    reason: dict[str, str] = Field(description="the rule's words, zh and en")
    basis: str = Field(description="bank_policy: the regulation sets no tiers")


class CaseOut(Out):
    id: int
    number: str
    branch_id: int
    enterprise_id: int
    state: str
    version: int
    opened_at: str
    opened_by_id: int | None
    investigator_id: int | None
    legal_hold: bool
    batch_report: bool
    due_date: date | None
    publicity_ends: date | None
    appeal_window_ends: date | None
    submitted_at: str | None
    determined_at: str | None
    final_at: str | None
    closed_at: str | None
    updated_at: str
    loan_ids: list[int]
    allowed_events: list[str] = Field(description="events declared from the current state (guards not evaluated)")
    one_year_limit: date | None = Field(
        default=None, description="the day the whole case must be determined with effect by (金规〔2024〕11号); "
                                  "null once it is final, referred, closed or withdrawn")
    authority: AuthorityOut | None = Field(
        default=None, description="which committee decides the case and why; null for cases registered before "
                                  "the rule set said so (the tier-1 branch's committee decides them)")


class CasePage(Out):
    items: list[CaseOut]
    next_cursor: str | None


class NoPayload(In):
    """The event takes nothing."""


class InvestigatorPayload(In):
    investigator_id: Id


class ReasonPayload(In):
    reason: Reason | None = None


class DeterminePayload(In):
    deviation_reasons: dict[Annotated[str, Field(pattern=r"^[1-9][0-9]{0,9}$")], Reason] | None = Field(
        default=None, description="respondent id → why the decision departs from the recommendation")


_REASONED = ("return_for_investigation", "reopen", "withdraw")


class AssignInvestigatorEvent(In):
    event: Literal["assign_investigator"]
    payload: InvestigatorPayload
    expected_version: Version | None = None


class ReasonedEvent(In):
    event: Literal[_REASONED]
    payload: ReasonPayload = Field(default_factory=ReasonPayload)
    expected_version: Version | None = None


class DetermineEvent(In):
    event: Literal["determine"]
    payload: DeterminePayload = Field(default_factory=DeterminePayload)
    expected_version: Version | None = None


class ReferPayload(In):
    """What the referral records: the recipient department (default the rule set's), the reference (文号;
    default the referral letter's number), the respondents referred (default every one with a reduced or liable
    final outcome) and the matters referred, in words."""

    recipient: Annotated[str, Field(max_length=100)] | None = None
    reference: Annotated[str, Field(max_length=100)] | None = None
    respondent_ids: list[Id] | None = Field(default=None, max_length=1000)
    matters: Annotated[str, Field(max_length=2000)] | None = None


class ReferEvent(In):
    event: Literal["refer_for_accountability"]
    payload: ReferPayload = Field(default_factory=ReferPayload)
    expected_version: Version | None = None


class PlainEvent(In):
    event: Literal[tuple(t for t in TRIGGERS if t not in {"assign_investigator", "determine",
                                                           "refer_for_accountability", *_REASONED})]
    payload: NoPayload = Field(default_factory=NoPayload)
    expected_version: Version | None = None


class EventIn(RootModel):
    """An event and what it takes: assign_investigator → investigator_id; return_for_investigation, reopen
    and withdraw → an optional reason; determine → optional deviation_reasons; refer_for_accountability →
    the optional referral record (ReferPayload); the others nothing."""

    root: Annotated[AssignInvestigatorEvent | ReasonedEvent | DetermineEvent | ReferEvent | PlainEvent,
                    Field(discriminator="event")]


class RespondentStage(Out):
    loan_id: int
    stage: str


class RespondentOut(Out):
    id: int
    user_id: int
    liability_kind: str
    recommended_outcome: str | None
    decided_outcome: str | None
    final_outcome: str | None
    deviation_reason: str | None
    statement: str | None
    statement_at: str | None
    statement_due: str | None = Field(description="The last day to file or decline the statement (None: a case "
                                                  "registered before invitations)")
    statement_declined_at: str | None
    statement_position: Literal[hearing.POSITIONS]
    stages: list[RespondentStage]


class RespondentList(Out):
    items: list[RespondentOut]


class StatementIn(In):
    statement: Annotated[str, Field(min_length=1, max_length=20000)]
    expected_version: Version | None = None


class DeclineStatementIn(In):
    """A respondent declines in writing to file an exemption statement (they may still file one until the
    investigation is submitted)."""

    note: Annotated[str, Field(max_length=500)] = ""
    expected_version: Version | None = None


class UrgeIn(In):
    """A 督办: what the supervisor urges (sent to the person whose step it is)."""

    message: Annotated[str, Field(min_length=1, max_length=400)]


class UrgeOut(Out):
    seq: int = Field(description="the urge's audit event")
    case_id: int
    at: str
    message: str
    to: list[str] = Field(description="the usernames of the people whose step it is, who were told")


class CommentIn(In):
    """A comment on a case (the case's staff only); @username tells that member of staff."""

    body: Annotated[str, Field(min_length=1, max_length=2000)]


class CommentQuery(Query):
    page: Annotated[int, Field(ge=1)] = 1
    size: Annotated[int, Field(ge=1, le=100)] = 20


class CommentOut(Out):
    id: int
    case_id: int
    author_id: int
    author: str = Field(description="the author's name")
    author_username: str
    body: str
    mentions: list[int] = Field(description="the ids of the staff @mentioned (and told)")
    created_at: str


class CommentPage(Out):
    items: list[CommentOut]
    total: int
    page: int
    pages: int


class UnperformedIn(In):
    duty: Annotated[str, Field(min_length=1, max_length=16)]
    causal: bool
    evidence: list[Id] | None = Field(default=None, max_length=100)


Code = Annotated[str, Field(min_length=1, max_length=16)]


class StageFactsIn(In):
    """The facts of one stage (domain.md §9): items established, duties shown unperformed, violation, dissent."""

    positive: list[Code] = Field(default_factory=list, max_length=50)
    mitigating: list[Code] = Field(default_factory=list, max_length=50)
    negative: list[Code] = Field(default_factory=list, max_length=50)
    violation: bool = False
    unperformed: list[UnperformedIn] = Field(default_factory=list, max_length=50)
    dissented: bool = False
    findings: str = Field(default="", max_length=20_000,
                          description="the written findings (查明事实), plain paragraphs; a stage counts as recorded "
                                      "only with them")
    findings_evidence: list[Id] = Field(default_factory=list, max_length=50,
                                        description="evidence (ids of this case) the findings refer to")


class FactsIn(In):
    loan_id: Id
    stage: Literal[STAGES]
    facts: StageFactsIn
    expected_version: Version | None = None


class FactOut(Out):
    respondent_id: int
    loan_id: int
    stage: str
    facts: dict[str, Any]
    rule_set_version_id: int
    recorded_by_id: int | None
    recorded_at: str


class FactList(Out):
    items: list[FactOut]


class RespondentRecommendation(Out):
    respondent_id: int
    user_id: int
    outcome: str | None
    recommendation: dict[str, Any] | None = Field(
        description="outcome, sanctions and per stage its outcome and explanation (each step, fired, fact, source)")


class RecommendationOut(Out):
    case_id: int
    tolerance: dict[str, Any] | None
    respondents: list[RespondentRecommendation]


class VoteIn(In):
    respondent_id: Id
    outcome: Outcome
    reason: Reason = ""
    expected_version: Version | None = None
    on_behalf_of: Id | None = Field(
        default=None, description="as a stand-in: the member whose seat you vote in (default: your own seat, "
                                  "else the one member you stand in for today)")


class VoteOut(Out):
    id: int
    respondent_id: int
    member_id: int = Field(description="who cast the vote")
    on_behalf_of_id: int | None = Field(default=None, description="the member whose seat a stand-in voted in")
    outcome: str
    reason: str
    cast_at: str
    valid: bool


class StandInIn(In):
    stand_in_id: Id = Field(description="a member of staff of your branch, active, not an internal auditor")
    starts_on: DateText = Field(description="the first day (YYYY-MM-DD)")
    ends_on: DateText = Field(description="the last day (included); not before starts_on nor today")
    reason: str = Field(min_length=1, max_length=500)


class StandInOut(Out):
    id: int
    principal_id: int
    stand_in_id: int
    starts_on: date
    ends_on: date
    reason: str
    created_at: str
    revoked_at: str | None


class StandInList(Out):
    items: list[StandInOut]


class VoteList(Out):
    items: list[VoteOut]


class AppealIn(In):
    grounds: Annotated[str, Field(min_length=1, max_length=20000)]
    expected_version: Version | None = None


class AppealVoteIn(In):
    decision: Literal["upheld", "altered"]
    new_outcome: Outcome | None = None
    reason: Annotated[str, Field(max_length=4000)] = ""
    expected_version: Version | None = None


class AppealVoteOut(Out):
    id: int
    appeal_id: int
    member_id: int
    decision: str
    outcome: str
    reason: str
    cast_at: str


class AppealDecisionIn(In):
    reason: Annotated[str, Field(min_length=1, max_length=4000)]
    expected_version: Version | None = None


class AppealOut(Out):
    id: int
    respondent_id: int
    appealed_outcome: str
    grounds: str
    filed_at: str
    decision: str | None
    new_outcome: str | None
    decision_reason: str | None
    decided_by_id: int | None
    decided_at: str | None
    votes: list[AppealVoteOut] = []


class AppealList(Out):
    items: list[AppealOut]


class LetterOut(Out):
    id: int
    case_id: int
    kind: str
    respondent_id: int | None
    appeal_id: int | None
    doc_number: str
    version: int
    supersedes_id: int | None
    template: str
    template_version: str
    locale: str
    sha256: str = Field(description="SHA-256 of the PDF")
    issued_by_id: int | None
    issued_at: str
    data: dict[str, Any]
    pdf_url: str


class LetterList(Out):
    items: list[LetterOut]


class ServiceIn(In):
    """How and when a determination letter was served (送达)."""

    method: Literal["in_person", "post"] = Field(description="in person, or by post (day of receipt); in the app "
                                                               "the respondent acknowledges it themselves")
    served_on: DateText
    served_by: Annotated[str, Field(max_length=64)] = ""
    expected_version: Version | None = None


class AcknowledgementIn(In):
    expected_version: Version | None = None


class WaiverIn(In):
    statement: Annotated[str, Field(min_length=1, max_length=4000)]
    expected_version: Version | None = None


class WindowOut(Out):
    """A respondent's appeal window: it runs from the service of their current determination letter."""

    respondent_id: int
    letter_id: int | None
    doc_number: str | None
    served_on: str | None
    method: str | None
    appeal_deadline: str | None = Field(description="the last day to appeal (served_on + the rule set's working days)")
    final: bool
    appealed: bool
    waived: bool
    open: bool
    receipt_id: int | None = Field(description="the 送达回证 issued when the service was recorded")


class WindowList(Out):
    items: list[WindowOut]


class AuditEventOut(Out):
    seq: int
    actor_id: int | None
    actor: str
    at: str
    event: str
    from_state: str | None
    to_state: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditTrail(Out):
    case_id: int
    items: list[AuditEventOut]


# --- what-if evaluation (domain.md §9) --------------------------------------------------------------------

class EvaluationStage(StageFactsIn):
    stage: Literal[STAGES]
    loan: Annotated[str, Field(max_length=40)] | None = None


class EvaluationRespondent(In):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    stages: list[EvaluationStage] = Field(min_length=1, max_length=50)


class ToleranceWithin(In):
    """Within tolerance or not, as you know it."""

    within: bool


class ToleranceOfBranch(In):
    """The tolerance of a branch's subtree on a period end, from its loan book (or imported figures)."""

    branch: Annotated[str, Field(min_length=1, max_length=32)]
    period: DateText


class ToleranceOfRatios(In):
    """NPL ratios (fractions: 0.0501 is 5.01 %), optionally against a target."""

    sme_npl_ratio: Number
    all_npl_ratio: Number
    target: Number | None = None


class ToleranceOfBalances(In):
    """Loan-book balances in yuan, optionally against a target."""

    all_balance: Number
    all_npl_balance: Number
    sme_balance: Number
    sme_npl_balance: Number
    target: Number | None = None


class EvaluationIn(In):
    """A what-if: facts per respondent and stage, a tolerance (ratios, balances, {"within": bool} or
    {"branch": code, "period": date}), and the rule set ("current" or a version)."""

    rule_set: Annotated[str, Field(min_length=1, max_length=40)] = "current"
    tolerance: ToleranceWithin | ToleranceOfBranch | ToleranceOfRatios | ToleranceOfBalances | None = None
    respondents: list[EvaluationRespondent] = Field(min_length=1, max_length=100)


class EvaluationStageOut(Out):
    model_config = ConfigDict(extra="allow")
    stage: str
    outcome: Outcome
    explanation: list[dict[str, Any]]


class EvaluationRespondentOut(Out):
    id: str | None
    outcome: Outcome
    sanctions: dict[str, Any]
    stages: list[EvaluationStageOut]


class EvaluationOut(Out):
    rule_set: str
    tolerance: dict[str, Any]
    respondents: list[EvaluationRespondentOut]


# --- the precedent library (案例引导) --------------------------------------------------------------------

class PrecedentQuery(Query):
    code: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{1,15}$")] | None = None
    stage: Literal[STAGES] | None = None
    outcome: Outcome | None = None
    product_class: Literal[PRODUCT_CLASSES] | None = None
    text: Annotated[str, Field(max_length=100)] | None = None


class PrecedentItemOut(Out):
    code: str
    zh: str
    en: str
    causal: bool | None = None


class PrecedentStageOut(Out):
    stage: str
    loan: int
    rule_set_version: int
    positive: list[PrecedentItemOut]
    mitigating: list[PrecedentItemOut]
    negative: list[PrecedentItemOut]
    unperformed: list[PrecedentItemOut]
    violation: bool
    dissented: bool
    findings: str
    outcome: str | None
    decided_by: dict[str, str] | None


class PrecedentOut(Out):
    """An approved precedent: anonymised (no person, enterprise, loan or case number; the amount banded,
    the branch at tier-1 level)."""

    id: int
    title: str
    branch: str
    rule_set_version: int
    product_class: str
    amount_band: str
    tolerance_within: bool | None
    outcome: str
    recommended_outcome: str
    liability_kind: str
    stages: list[PrecedentStageOut]
    reasoning: str
    codes: list[str]
    approved_at: str | None


class PrecedentList(Out):
    items: list[PrecedentOut]


# --- the referral record, the sanctions recorded back, refunds, the HR list ----------------------------------

class SanctionIn(In):
    """The accountability result for one respondent: points deducted, the sanction type (none, criticism,
    warning, demerit, major_demerit, demotion, removal, probation, dismissal), the amount deducted in yuan (a
    string with at most two decimals) and the month it is applied in (YYYY-MM, required with an amount)."""

    respondent_id: Id
    points: Annotated[int, Field(ge=0, le=100), BeforeValidator(_integral)] = 0
    sanction_type: Annotated[str, Field(max_length=20)] = "none"
    amount: Annotated[str, Field(max_length=20, pattern=r"^[0-9]{1,9}(\.[0-9]{1,2})?$")] | None = None
    month: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}$")] | None = None
    note: Annotated[str, Field(max_length=500)] = ""


class SanctionOut(Out):
    id: int
    respondent_id: int
    user_id: int
    name: str
    employee_no: str
    basis_outcome: str = Field(description="the outcome in force when the sanction was recorded")
    points: int
    sanction_type: str
    amount: str = Field(description="yuan, two decimals")
    month: str | None
    note: str
    recorded_at: str


class RefundOut(Out):
    id: int
    sanction_id: int
    user_id: int
    amount: str = Field(description="yuan, two decimals")
    decision: Literal["appeal_decision", "redetermination"]
    decision_ref: str
    decided_on: date
    new_outcome: str
    month: str


class ReferredOut(Out):
    respondent_id: int
    outcome: str
    determination: str | None = Field(description="the number of the determination letter referred")


class ReferralOut(Out):
    recipient: str
    reference: str
    matters: str
    respondents: list[ReferredOut]
    letter_id: int | None
    referred_at: str


class AccountabilityOut(Out):
    case_id: int
    referral: ReferralOut | None
    sanctions: list[SanctionOut]
    refunds: list[RefundOut]


class HrExportIn(In):
    """A month's HR list of deductions and refunds, with the reason for exporting it (logged)."""

    month: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}$")]
    format: Literal["csv", "xlsx"] = "xlsx"
    reason: Annotated[str, Field(min_length=1, max_length=500)]
