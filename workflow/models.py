"""The data model (SQLModel tables). Money is Decimal in Python and integer fen in the database.

Times are timezone-aware UTC datetimes. Table names are singular; `user` and `case` are SQL keywords, hence
`app_user` and `case_file`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint, event, text
from sqlalchemy.orm import declared_attr
from sqlmodel import Field, SQLModel

from .db import Money
from .domain import intake

ROLES = (
    "credit_officer", "investigator", "committee_member", "committee_chair",
    "appeal_reviewer", "appeal_chair", "auditor", "admin",
)
BRANCH_LEVELS = {0: "head_office", 1: "tier1_branch", 2: "sub_branch", 3: "outlet"}
CLASSIFICATIONS = ("normal", "special_mention", "substandard", "doubtful", "loss")
NPL_CLASSES = intake.NPL_CLASSES  # the one definition is the domain's
STAGES = ("marketing", "acceptance", "pre_loan", "review", "approval", "disbursement", "post_loan")
OUTCOMES = ("exempt", "reduced", "liable")


# A replayed clock: the demo loader runs each step of a case's history at the moment it happened.
_REPLAYED_NOW: ContextVar[datetime | None] = ContextVar("mianze_replayed_now", default=None)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (or the moment being replayed inside `replaying_at`)."""
    replayed = _REPLAYED_NOW.get()
    return replayed if replayed is not None else datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored time as timezone-aware UTC (a database without time zones gives it back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextmanager
def replaying_at(moment: datetime) -> Iterator[None]:
    """Inside the block, `utcnow()` returns `moment` (timezone-aware UTC): for loading a past history."""
    token = _REPLAYED_NOW.set(moment.astimezone(UTC))
    try:
        yield
    finally:
        _REPLAYED_NOW.reset(token)


def money(**kw):
    return Field(sa_column=Column(Money(), nullable=kw.pop("nullable", False)), **kw)


def json_field(default_factory=dict, nullable=False):
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=nullable))


class Branch(SQLModel, table=True):
    """A branch in the hierarchy head office → tier-1 branch → sub-branch → outlet."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=128)
    name_en: str = Field(default="", max_length=128)
    level: int = Field(ge=0, le=3)
    parent_id: int | None = Field(default=None, foreign_key="branch.id", index=True)
    # Materialised path of ids ("/1/4/17/"), so a subtree is one indexed prefix match.
    path: str = Field(default="/", max_length=255, index=True)
    active: bool = True
    # The 企业微信 group robot of the branch's staff (its webhook address carries the robot's key, a secret):
    # the notifications of users of this branch who chose that channel are posted there.
    webhook_url: str | None = Field(default=None, max_length=500)


class User(SQLModel, table=True):
    """A member of staff; roles are space-separated codes from ROLES."""

    __tablename__ = "app_user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=64)
    employee_no: str = Field(max_length=32, unique=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    roles: str = Field(default="", max_length=255)
    password_hash: str = Field(default="", max_length=255)
    locale: str = Field(default="zh", max_length=8)
    id_number: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    # The channels the user chose for their notifications besides the app's own (always): mail (to `email`,
    # else username@SMTP_MAIL_DOMAIN) and the 企业微信 group robot of their branch.
    notify_mail: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    notify_webhook: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    active: bool = True
    # A session is valid while it carries this number; signing out and a new password advance it, which
    # ends every session of the user in every browser (the cookie itself cannot be taken back).
    session_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=lambda: utcnow())

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split())


class Enterprise(SQLModel, table=True):
    """A borrower: small or micro enterprise, its owner, or an individual business."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, index=True)
    uscc: str = Field(max_length=18, unique=True, index=True)  # 统一社会信用代码
    kind: str = Field(default="small", max_length=32)  # small|micro|owner|individual_business|farmer|other
    owner_name: str = Field(default="", max_length=64)
    industry: str = Field(default="", max_length=64)


def _create_name_index(target, connection, **_):
    """The trigram index of enterprise names (workflow/name_search.py), created with the table."""
    from . import name_search

    if connection.dialect.name == "sqlite":
        for statement in name_search.SQLITE_DDL:
            connection.exec_driver_sql(statement)
    elif connection.dialect.name == "postgresql":
        name_search.create_postgres_index(connection)


event.listen(Enterprise.__table__, "after_create", _create_name_index)


class Loan(SQLModel, table=True):
    """A loan on the book (non-performing or not: the tolerance needs the whole book)."""

    # Covers the tolerance aggregation (sums per branch), so it reads the index, not the table.
    __table_args__ = (Index("ix_loan_tolerance", "branch_id", "start_date", "written_off", "product_class",
                            "classification", "balance"),)

    id: int | None = Field(default=None, primary_key=True)
    loan_no: str = Field(max_length=40, unique=True, index=True)
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    product_class: str = Field(max_length=32, index=True)  # inclusive_sme|farmer_business|corporate|retail
    credit_total: Decimal = money()  # single-borrower credit total (单户授信总额)
    amount: Decimal = money()
    balance: Decimal = money()
    start_date: date
    maturity_date: date
    classification: str = Field(default="normal", max_length=20)
    written_off: bool = False
    # The digest of the CSV/XLSX row (with its header and the ids its codes named) that this loan, its
    # borrower and its stage handlers last equalled (services/imports.py): a re-import of that very row
    # skips validating it. Cleared by any import that names the loan otherwise or changes its borrower.
    import_digest: str | None = Field(default=None, max_length=32)


class LoanStage(SQLModel, table=True):
    """Who performed one credit stage of one loan, and when."""

    __table_args__ = (UniqueConstraint("loan_id", "stage", "user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    loan_id: int = Field(foreign_key="loan.id", index=True)
    stage: str = Field(max_length=20)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    performed_on: date


class RuleSetVersion(SQLModel, table=True):
    """One version of the rule set (lists, duties, thresholds, time limits) as a JSON document."""

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(unique=True, index=True)
    status: str = Field(default="draft", max_length=16)  # draft|published
    effective_from: date
    data: dict = json_field()
    note: str = Field(default="", max_length=500)
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=lambda: utcnow())
    published_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    published_at: datetime | None = None


class Case(SQLModel, table=True):
    """An exemption case: one enterprise's non-performing loan(s) and the people responsible."""

    __tablename__ = "case_file"
    __table_args__ = (
        # Covers the waiting lists (state, branch, recusal as investigator, deadline) without table reads.
        Index("ix_case_state_branch_inv_due", "state", "branch_id", "investigator_id", "due_date"),
        # An investigator's waiting cases; with the branch, their cases outside a branch scope from the index.
        Index("ix_case_investigator_state", "investigator_id", "state", "branch_id"),
        Index("ix_case_state_due", "state", "due_date"),  # the cases of a state by deadline, from the index
        # Newest first (the list of all cases), with the branch: a branch scope is checked in the index
        # instead of each case's row; and the same within one state (the state filter).
        Index("ix_case_opened_branch", "opened_at", "branch_id"),
        Index("ix_case_state_opened", "state", "opened_at", "branch_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=40, unique=True, index=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    enterprise_id: int = Field(foreign_key="enterprise.id", index=True)
    state: str = Field(default="registered", max_length=20)
    version: int = Field(default=1)
    opened_at: datetime = Field(default_factory=lambda: utcnow())  # indexed with the branch (above)
    opened_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    rule_set_version_id: int = Field(foreign_key="rulesetversion.id")  # procedure: in force when opened
    investigator_id: int | None = Field(default=None, foreign_key="app_user.id")
    legal_hold: bool = False
    batch_report: bool = False
    # Delegated authority (适当下放免责认定权限): `branch_id` is the branch whose committee has authority over
    # the case; `origin_branch_id` the branch its loans are booked at; `authority` why (rules.Authority with
    # the branches it named). None for cases registered before the rule set said so (the tier-1 branch).
    origin_branch_id: int | None = None  # a copy, like Respondent.case_branch_id (branches are never deleted)
    authority: dict | None = json_field(default_factory=lambda: None, nullable=True)
    tolerance: dict | None = json_field(default_factory=lambda: None, nullable=True)  # frozen snapshot
    submitted_at: datetime | None = None
    determined_at: datetime | None = None
    publicity_ends: date | None = None
    appeal_window_ends: date | None = None
    final_at: datetime | None = None
    closed_at: datetime | None = None
    due_date: date | None = Field(default=None, index=True)  # the current step's deadline
    updated_at: datetime = Field(default_factory=lambda: utcnow())

    @declared_attr.directive
    def __mapper_args__(cls):  # optimistic locking: every UPDATE checks and bumps `version`
        return {"version_id_col": cls.__table__.c.version}


class CaseLoan(SQLModel, table=True):
    """A loan of a case. The loan's number is copied here (loan numbers never change): the inbox's search by
    loan number reads the cases of a number prefix from one index, without a look-up per matching loan."""

    __table_args__ = (Index("ix_caseloan_loan_no", "loan_no", "case_id"),)

    case_id: int = Field(foreign_key="case_file.id", primary_key=True)
    loan_id: int = Field(foreign_key="loan.id", primary_key=True, index=True)
    loan_no: str = Field(max_length=40)


class IntakeDismissal(SQLModel, table=True):
    """Why no case is opened for a non-performing loan on the intake list (e.g. it was recovered): recorded
    by a committee chair or an administrator, and audited. A dismissed loan leaves the intake list."""

    id: int | None = Field(default=None, primary_key=True)
    loan_id: int = Field(foreign_key="loan.id", unique=True)
    reason: str = Field(max_length=20)  # domain/intake.DISMISSAL_REASONS
    note: str = Field(default="", max_length=500)
    dismissed_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    dismissed_at: datetime = Field(default_factory=lambda: utcnow())


class Respondent(SQLModel, table=True):
    """A person responsible for the case's loans (被评议人); one per person per case (merged consideration)."""

    __table_args__ = (
        UniqueConstraint("case_id", "user_id"),
        # The inbox's outcome filter: the final outcome, else the committee's decision; with the case id, so
        # that the cases with an outcome are counted from the index alone.
        Index("ix_respondent_outcome_case", text("coalesce(final_outcome, decided_outcome)"), "case_id"),
        # The same for a branch scope: the cases of some branches with an outcome, from the index alone.
        Index("ix_respondent_outcome_branch", text("coalesce(final_outcome, decided_outcome)"), "case_branch_id",
              "case_id"),
        # A person's cases, and those outside a branch scope (the inbox's scope), from the index alone.
        Index("ix_respondent_user_branch", "user_id", "case_branch_id", "case_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    # The case's deciding branch, copied when the case is opened (a case's branch never changes), so that the
    # outcome filter of a branch-scoped inbox reads one index instead of every case of the scope.
    case_branch_id: int
    user_id: int = Field(foreign_key="app_user.id")  # indexed with the case's branch (ix_respondent_user_branch)
    liability_kind: str = Field(default="diligence", max_length=20)  # compliance|diligence|management
    recommendation: dict | None = json_field(default_factory=lambda: None, nullable=True)
    recommended_outcome: str | None = Field(default=None, max_length=10)
    decided_outcome: str | None = Field(default=None, max_length=10)
    deviation_reason: str | None = Field(default=None, sa_column=Column(Text))
    final_outcome: str | None = Field(default=None, max_length=10)
    statement: str | None = Field(default=None, sa_column=Column(Text))
    statement_at: datetime | None = None
    # The right to be heard (domain/hearing.py): the last day to file (or decline) a statement, set when the
    # case is registered (None for cases registered before invitations), and when the respondent declined.
    statement_due: date | None = None
    statement_declined_at: datetime | None = None


class StageFact(SQLModel, table=True):
    """The investigated facts of one respondent for one stage of one loan."""

    __table_args__ = (UniqueConstraint("respondent_id", "loan_id", "stage"),)
    id: int | None = Field(default=None, primary_key=True)
    respondent_id: int = Field(foreign_key="respondent.id", index=True)
    loan_id: int = Field(foreign_key="loan.id")
    stage: str = Field(max_length=20)
    facts: dict = json_field()
    rule_set_version_id: int = Field(foreign_key="rulesetversion.id")  # the version in force on the stage date
    recorded_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=lambda: utcnow())


class Evidence(SQLModel, table=True):
    """An evidence file of a case, stored by content hash."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int | None = Field(default=None, foreign_key="respondent.id")
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id")
    kind: str = Field(default="document", max_length=32)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=100)
    size: int
    sha256: str = Field(max_length=64)
    description: str = Field(default="", max_length=500)
    uploaded_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    uploaded_at: datetime = Field(default_factory=lambda: utcnow())


class Vote(SQLModel, table=True):
    """A committee member's vote on one respondent's outcome."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int = Field(foreign_key="respondent.id", index=True)
    member_id: int = Field(foreign_key="app_user.id", index=True)
    outcome: str = Field(max_length=10)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    cast_at: datetime = Field(default_factory=lambda: utcnow())
    invalidated_at: datetime | None = None
    # Cast by `member_id` as the stand-in of this committee member (whose seat the vote fills); a plain copy
    # of a user id, like Respondent.case_branch_id (users are never deleted).
    on_behalf_of_id: int | None = None

    @property
    def seat_id(self) -> int:
        """The committee seat the vote fills: the principal's when cast by their stand-in."""
        return self.on_behalf_of_id or self.member_id


class Appeal(SQLModel, table=True):
    """A respondent's appeal against their determination."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int = Field(foreign_key="respondent.id", index=True)
    appealed_outcome: str = Field(max_length=10)
    grounds: str = Field(sa_column=Column(Text, nullable=False))
    filed_at: datetime = Field(default_factory=lambda: utcnow())
    decision: str | None = Field(default=None, max_length=10)  # upheld|altered
    new_outcome: str | None = Field(default=None, max_length=10)
    decision_reason: str | None = Field(default=None, sa_column=Column(Text))
    decided_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    decided_at: datetime | None = None


class AppealVote(SQLModel, table=True):
    """A member of the appeal panel's vote on one appeal: uphold, or alter to `new_outcome` (never worse).

    `outcome` is the outcome the vote stands for (the appealed one when upheld), so that the panel's majority
    is counted as the committee's is. A later vote of the same member replaces the earlier one.
    """

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    member_id: int = Field(foreign_key="app_user.id", index=True)
    decision: str = Field(max_length=10)  # upheld|altered
    outcome: str = Field(max_length=10)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    cast_at: datetime = Field(default_factory=lambda: utcnow())
    invalidated_at: datetime | None = None


class Letter(SQLModel, table=True):
    """An issued document: stored once, never rewritten; a correction is a new version.

    Numbered per issuing organ (`branch_id`), number series (`series`, one per kind: 免认, 免复, …) and year.
    `subject_key` names what the document is about without NULLs ("determination:12:34:0": kind, case,
    respondent, appeal), so that (subject_key, version) is unique: two issuers can never both store a
    version of the same document (a NULL respondent or appeal would defeat a constraint over the columns).
    The current document of a subject is its highest version.
    """

    __table_args__ = (
        UniqueConstraint("branch_id", "series", "year", "seq"),
        UniqueConstraint("subject_key", "version"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # investigation_report|determination|publicity_notice|minutes|appeal_record|appeal_decision|referral|
    # batch_report|service_record|case_summary
    kind: str = Field(max_length=24)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int | None = Field(default=None, foreign_key="respondent.id")
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id")
    subject_key: str = Field(max_length=80)
    branch_id: int = Field(foreign_key="branch.id")  # the issuing organ
    series: str = Field(default="免认", max_length=8)
    year: int
    seq: int
    doc_number: str = Field(max_length=64, unique=True)
    version: int = 1
    supersedes_id: int | None = Field(default=None, foreign_key="letter.id")
    template: str = Field(max_length=100)
    template_version: str = Field(max_length=40)
    locale: str = Field(default="zh", max_length=8)
    data: dict = json_field()
    sha256: str = Field(max_length=64)
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    issued_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    issued_at: datetime = Field(default_factory=lambda: utcnow())


class DocSequence(SQLModel, table=True):
    """The last document number used per issuing organ, number series and year (gap-free, never reused)."""

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    series: str = Field(default="免认", max_length=8, primary_key=True)
    year: int = Field(primary_key=True)
    last_seq: int = 0


class LetterService(SQLModel, table=True):
    """The service (送达) of a determination letter to its respondent: how, when, by whom.

    A letter is served once; its respondent's appeal window runs from `served_on` for the rule set's number
    of working days (`appeal_deadline`, restated when a calendar change moves it). `receipt_id` is the
    送达回证 issued for it.
    """

    id: int | None = Field(default=None, primary_key=True)
    letter_id: int = Field(foreign_key="letter.id", unique=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int = Field(foreign_key="respondent.id", index=True)
    method: str = Field(max_length=12)  # in_person|in_app|post
    served_on: date
    served_by: str = Field(default="", max_length=64)  # who handed it over (in person) or the post's reference
    window_days: int
    appeal_deadline: date
    recorded_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=lambda: utcnow())
    receipt_id: int | None = Field(default=None, foreign_key="letter.id")


class AppealWaiver(SQLModel, table=True):
    """A respondent's written waiver of their appeal (放弃申诉)."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int = Field(foreign_key="respondent.id", unique=True)
    statement: str = Field(sa_column=Column(Text, nullable=False))
    waived_on: date
    recorded_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=lambda: utcnow())


class DocumentForm(SQLModel, table=True):
    """The bank-wide form of its documents, set by a head-office administrator (one row, id 1)."""

    id: int = Field(default=1, primary_key=True)
    bank_name: str = Field(max_length=128)
    cc: str = Field(default="人力资源部、合规部", max_length=255)  # 抄送, separated by 、
    updated_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    updated_at: datetime = Field(default_factory=lambda: utcnow())


class DocumentOrgan(SQLModel, table=True):
    """How one branch's organs appear on the documents it issues (its committee and appeal committee)."""

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    short_name: str = Field(max_length=16)  # in document numbers: 郑分 → 郑分免认〔2026〕12号
    committee_name: str = Field(max_length=128)  # e.g. 郑州分行尽职免责评议委员会
    appeal_committee_name: str = Field(max_length=128)  # e.g. 总行尽职免责申诉复核委员会
    signatory: str = Field(default="", max_length=64)  # 签发人; empty: the person who issues
    printed_by: str = Field(default="", max_length=128)  # the 印发 line's organ; empty: the branch's office
    updated_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    updated_at: datetime = Field(default_factory=lambda: utcnow())


class AuditEvent(SQLModel, table=True):
    """One link of the audit hash chain. `at` is the canonical UTC ISO string that was hashed."""

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, index=True)
    case_id: int | None = Field(default=None, index=True)
    actor_id: int | None = None
    actor: str = Field(max_length=64)
    at: str = Field(max_length=32)
    event: str = Field(max_length=48)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str | None = Field(default=None, max_length=20)
    payload: dict = json_field()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The single row holding the chain's last link: the lock writers take, and a tail guard."""

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)


class ToleranceFigure(SQLModel, table=True):
    """NPL figures reported to the regulator, imported in place of the computed ones."""

    __table_args__ = (UniqueConstraint("branch_id", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id")
    period: date
    sme_ratio: str = Field(max_length=32)
    all_ratio: str = Field(max_length=32)
    reason: str = Field(max_length=500)
    imported_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    imported_at: datetime = Field(default_factory=lambda: utcnow())


class CalendarOverride(SQLModel, table=True):
    """An administrator's override of the working-day calendar for one date."""

    day: date = Field(primary_key=True)
    working: bool
    note: str = Field(default="", max_length=200)
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")


class CalendarYear(SQLModel, table=True):
    """A year whose working-day schedule a head-office administrator entered whole (the State Council's
    holiday notice, as ranges): its overrides are complete, so the year no longer falls back to weekends with
    a warning, even where the calendar package has no data for it."""

    year: int = Field(primary_key=True)
    note: str = Field(default="", max_length=200)
    entered_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    entered_at: datetime = Field(default_factory=lambda: utcnow())


class AccessLog(SQLModel, table=True):
    """Who looked at what: case views, letter downloads, exports (visible to auditors)."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=lambda: utcnow(), index=True)
    user_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    username: str = Field(max_length=64)
    action: str = Field(max_length=32)  # view_case|download_letter|download_evidence|export|api_read
    target: str = Field(default="", max_length=200)
    case_id: int | None = Field(default=None, index=True)
    details: dict = json_field()


class ApiToken(SQLModel, table=True):
    """A per-user API token; only its SHA-256 is stored."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=12)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=lambda: utcnow())
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class CaseComment(SQLModel, table=True):
    """A comment on a case by a member of its staff: who, when, what (never shown to its respondents:
    `policy.reads_comments`). Written once; the audit event keeps its text."""

    __tablename__ = "case_comment"
    __table_args__ = (Index("ix_case_comment_case_id", "case_id", "id"),)  # a case's comments, in order
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id")
    author_id: int = Field(foreign_key="app_user.id")
    body: str = Field(sa_column=Column(Text, nullable=False))
    mentions: list = json_field(default_factory=list)  # the user ids @mentioned (and told)
    created_at: datetime = Field(default_factory=lambda: utcnow())


class Invitation(SQLModel, table=True):
    """An invitation to set one's password (services/invitations.py): single use, expiring, revocable.

    The link's token is never stored: `token_hash` is its SHA-256 (how a link is looked up) and `salt` the
    random value the token is derived from with the server's secret key (HMAC), so that the outbox can put
    the link into the mail after the commit while a copy of the database alone makes no working link.
    `notification_id` is the notice whose mail carries it.
    """

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    salt: str = Field(max_length=64)
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=lambda: utcnow())
    expires_at: datetime
    notification_id: int | None = Field(default=None, foreign_key="notification.id", index=True)
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by_id: int | None = Field(default=None, foreign_key="app_user.id")

    def status(self, now: datetime) -> str:
        """open, used, revoked or expired (used and revoked first: they say more than the time)."""
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if as_utc(self.expires_at) <= now else "open"


class Notification(SQLModel, table=True):
    """An in-app notification; `key` makes automatic notifications idempotent."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    case_id: int | None = Field(default=None, foreign_key="case_file.id")
    kind: str = Field(max_length=32)
    message: str = Field(max_length=500)
    key: str = Field(max_length=120, unique=True)
    created_at: datetime = Field(default_factory=lambda: utcnow())
    read_at: datetime | None = None
    mailed_at: datetime | None = None


DELIVERY_CHANNELS = ("mail", "webhook")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "skipped")


class NotificationDelivery(SQLModel, table=True):
    """The outbox: one notification to be delivered on one channel beyond the app (mail, the branch's 企业微信
    group robot), written in the same transaction as the notification, delivered after the commit by the
    worker (`services/outbox.deliver`).

    `status`: pending (due at `next_attempt_at`) → sending (claimed by the worker under `claim`, committed
    before anything leaves) → sent | failed (given up, or interrupted while sending: it may have arrived, so it
    is never sent again by itself) | skipped (the channel is not configured, or the user has no address).
    """

    __table_args__ = (UniqueConstraint("notification_id", "channel"),
                      Index("ix_notificationdelivery_due", "status", "next_attempt_at"))
    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id")
    channel: str = Field(max_length=16)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=lambda: utcnow())
    claim: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = None
    sent_at: datetime | None = None
    target: str | None = Field(default=None, max_length=254)  # the address, or the robot's host, last used
    message_id: str | None = Field(default=None, max_length=128)  # the mail's Message-ID, one per delivery
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=lambda: utcnow())


class RuleSetDraft(SQLModel, table=True):
    """A rule-set version being prepared by head-office administrators: never used to judge anything.

    `data` is the rule-set document without its effective date (chosen when publishing), always valid: it is
    checked before it is saved. Publishing turns it into the next RuleSetVersion; a published or discarded
    draft stays as a record. `revision` is the optimistic lock of two administrators editing at once.
    """

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="draft", max_length=16, index=True)  # draft|submitted|published|discarded
    based_on_id: int | None = Field(default=None, foreign_key="rulesetversion.id")
    data: dict = json_field()
    note: str = Field(default="", max_length=500)
    revision: int = Field(default=1)
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=lambda: utcnow())
    updated_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    updated_at: datetime = Field(default_factory=lambda: utcnow())
    published_version_id: int | None = Field(default=None, foreign_key="rulesetversion.id")
    # Maker-checker: the author submits the draft with the date it should take effect (and, for a date before
    # the day of submission, the reason); a second head-office administrator approves (publishing it) or
    # rejects it with a reason (it is a draft again).
    effective_from: date | None = Field(default=None)
    backdate_reason: str = Field(default="", max_length=500)
    submitted_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    submitted_at: datetime | None = Field(default=None)
    reviewed_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    reviewed_at: datetime | None = Field(default=None)
    rejection_reason: str = Field(default="", max_length=500)

    @declared_attr.directive
    def __mapper_args__(cls):  # every UPDATE checks and bumps `revision`
        return {"version_id_col": cls.__table__.c.revision}


class BackgroundJob(SQLModel, table=True):
    """A long job run apart from the request (services/background.py): on an RQ worker when Redis carries
    the jobs, else in a worker thread of the app process. Its progress is kept here, so the page polls the
    database whatever runs it; `updated_at` is its heartbeat (a running job that stops beating has stalled)."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # services/background.KINDS
    params: dict = json_field()
    status: str = Field(default="queued", max_length=12, index=True)  # queued|running|done|failed
    backend: str = Field(default="thread", max_length=8)  # rq|thread
    done: int = 0
    total: int | None = None
    result: dict = json_field()
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    attempts: int = 0
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    created_at: datetime = Field(default_factory=lambda: utcnow())
    started_at: datetime | None = None
    updated_at: datetime = Field(default_factory=lambda: utcnow())
    finished_at: datetime | None = None


class TimerRun(SQLModel, table=True):
    """One run of the deadline timer (`deadlines tick`): when, started by what, and what it did.

    `trigger` is "cron" (the command line), "timer" (the app's own timer thread in the embedded default) or
    "admin" (an administrator's "run now"). The administrators' pages warn when the latest run is more than a
    day old: without the timer, publicity and appeal windows do not move on and nobody hears of delays.
    """

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(index=True)
    finished_at: datetime
    trigger: str = Field(max_length=16)
    day: date  # the day the timer ran as (`--today`)
    ok: bool  # nothing unexpected failed
    summary: dict = json_field()


class Precedent(SQLModel, table=True):
    """A decided case's respondent, anonymised, as guidance for like cases (案例引导).

    Proposed by a committee chair or a head-office administrator from a final case, approved (or rejected)
    by a second person. It holds no name, identity number, enterprise name or loan number: the amount is
    banded (`amount_band`), the branch is the tier-1 branch, and `stages` keeps per stage the list items
    and unperformed duties (codes and texts from the rule set the stage was decided under), the violation
    and dissent flags, the written findings (edited for anonymity before approval) and the stage's outcome
    with the rule that decided it. `codes` and `stage_codes` are the space-framed codes (" P02 PL03 ") that
    the search matches. `case_id` and `respondent_id` link back for the curators only, never shown.
    """

    __table_args__ = (UniqueConstraint("case_id", "respondent_id"),)
    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="proposed", max_length=12, index=True)  # proposed|approved|rejected
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int = Field(foreign_key="respondent.id")
    branch_id: int = Field(foreign_key="branch.id", index=True)  # the tier-1 branch (or head office)
    rule_set_version: int  # the version the stages were decided under (the highest, if several)
    product_class: str = Field(max_length=32)
    amount_band: str = Field(max_length=16)  # upto_1m|1m_3m|3m_5m|5m_10m|over_10m
    tolerance_within: bool | None = None
    outcome: str = Field(max_length=10)  # the final outcome
    recommended_outcome: str = Field(max_length=10)
    liability_kind: str = Field(default="diligence", max_length=20)
    title: str = Field(max_length=200)
    stages: list = json_field(default_factory=list)
    reasoning: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    codes: str = Field(default=" ", max_length=500)
    stage_codes: str = Field(default=" ", max_length=200)
    proposed_by_id: int = Field(foreign_key="app_user.id")
    proposed_at: datetime = Field(default_factory=lambda: utcnow())
    edited_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    edited_at: datetime | None = None
    decided_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    decided_at: datetime | None = None
    reject_reason: str = Field(default="", max_length=500)


class StandIn(SQLModel, table=True):
    """A committee member's or chair's stand-in (代理) for a period (both days included): while it runs and is
    not revoked, the stand-in may vote and, for a chair, return, sign the determination and reopen on the
    principal's behalf, on every case the principal could act on and the stand-in is not conflicted on.
    Named by the principal only, never passed on (policy.why_not_name_stand_in)."""

    id: int | None = Field(default=None, primary_key=True)
    principal_id: int = Field(foreign_key="app_user.id", index=True)
    stand_in_id: int = Field(foreign_key="app_user.id", index=True)
    starts_on: date
    ends_on: date
    reason: str = Field(max_length=500)
    created_by_id: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=lambda: utcnow())
    revoked_at: datetime | None = None
    revoked_by_id: int | None = Field(default=None, foreign_key="app_user.id")


class Referral(SQLModel, table=True):
    """The record of a case's referral to the accountability procedure (移交问责): to whom (the recipient
    department), under which reference (文号; the referral letter's number unless another was entered), and what
    is referred: the respondents (with the outcome and the determination referred for each) and the matters
    (the findings) in words. One per case, written with the `refer_for_accountability` event."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", unique=True)
    recipient: str = Field(max_length=100)
    reference: str = Field(max_length=100)
    matters: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    respondents: list = json_field(default_factory=list)  # [{"respondent_id", "outcome", "determination"}]
    letter_id: int | None = Field(default=None, foreign_key="letter.id")
    referred_by_id: int = Field(foreign_key="app_user.id")
    referred_at: datetime = Field(default_factory=lambda: utcnow())


class Sanction(SQLModel, table=True):
    """The accountability result recorded back for one respondent: points deducted (考核扣分), the sanction type
    (domain/hr.SANCTION_TYPES), the amount deducted (扣发, yuan) and the month HR applies it in, for the outcome
    in force when it was recorded (`basis_outcome`). Never edited: a correction is a refund or a new record."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    respondent_id: int = Field(foreign_key="respondent.id", index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)  # the person sanctioned
    basis_outcome: str = Field(max_length=10)
    points: int = 0
    sanction_type: str = Field(default="none", max_length=20)
    amount: Decimal = money(default=Decimal("0"))
    month: str | None = Field(default=None, max_length=7, index=True)  # YYYY-MM, when an amount is deducted
    note: str = Field(default="", max_length=500)
    recorded_by_id: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=lambda: utcnow())


class Refund(SQLModel, table=True):
    """A refund (返还) of part or all of a deduction, due because a later decision improved the outcome the
    deduction was applied for: the appeal decision or re-determination, its date, the new outcome; listed in
    the HR export of the decision's month (China Standard Time). Written in the decision's transaction."""

    id: int | None = Field(default=None, primary_key=True)
    sanction_id: int = Field(foreign_key="sanction.id", index=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    user_id: int = Field(foreign_key="app_user.id")
    amount: Decimal = money()
    decision: str = Field(max_length=20)  # appeal_decision|redetermination
    decision_ref: str = Field(max_length=60)  # the appeal decision's document number, or the determination's
    decided_on: date
    new_outcome: str = Field(max_length=10)
    month: str = Field(max_length=7, index=True)
    created_at: datetime = Field(default_factory=lambda: utcnow())
