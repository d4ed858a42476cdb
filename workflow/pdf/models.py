"""The data of each kind of letter, declared as pydantic models.

A letter is stored with the plain dict it was rendered from; the models only validate that dict and give the
templates their data (``template_data``): dates as ``date``, amounts as ``Decimal``, every optional key present.
They never change the stored dict. Unknown keys are ignored, so the data of letters already issued renders
as before.

Accepted values: a date is a ``date``, a ``datetime`` (its date is used) or an ISO "YYYY-MM-DD" text; an
amount or ratio is a ``Decimal``, an int or a numeric text (never a float: money is never a float); a text
that is required must not be blank; a list may be given as a tuple.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import LetterDataError

Outcome = Literal["exempt", "reduced", "liable"]  # in order of severity
LiabilityKind = Literal["compliance", "diligence", "management"]
Stage = Literal["marketing", "acceptance", "pre_loan", "review", "approval", "disbursement", "post_loan"]
Decision = Literal["upheld", "altered"]

StatementStatus = Literal["filed", "declined", "not_filed"]
ServiceMethod = Literal["in_person", "in_app", "post"]
ListKind = Literal["positive", "mitigating", "negative"]

#: What a draft (a preview) shows in place of its number.
DRAFT_NUMBER = "（草稿，未编号）"

OUTCOMES: tuple[str, ...] = get_args(Outcome)
LIABILITY_KINDS: tuple[str, ...] = get_args(LiabilityKind)
STAGES: tuple[str, ...] = get_args(Stage)
DECISIONS: tuple[str, ...] = get_args(Decision)


# ---------------------------------------------------------------------------------------------------------
# Value types


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("expected a date (YYYY-MM-DD)")


def _date_or_text(value: Any) -> dt.date | str:
    try:
        return _date(value)
    except ValueError:
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError("expected a date (YYYY-MM-DD) or a text such as 2025年度") from None


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise ValueError("expected a Decimal, an int or a numeric text")
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValueError("not a number")
    return number


def _list(value: Any) -> list:
    if isinstance(value, tuple):
        return list(value)
    if not isinstance(value, list):  # a set or a mapping would render in no reproducible order
        raise ValueError("expected a list")
    return value


def _list_or_none(value: Any) -> list:
    return [] if value is None else _list(value)


def _paragraphs(value: Any) -> list[str]:
    if isinstance(value, str):
        paragraphs = [line.strip() for line in value.splitlines() if line.strip()]
    elif isinstance(value, list | tuple):
        paragraphs = [str(v).strip() for v in value if str(v).strip()]
    else:
        paragraphs = []
    if not paragraphs:
        raise ValueError("expected a non-empty text or list of paragraphs")
    return paragraphs


T = TypeVar("T")

Text = Annotated[str, Strict(), AfterValidator(_not_blank)]  # required: not blank
OptionalText = Annotated[str, Strict()] | None  # may be empty
Date = Annotated[dt.date, BeforeValidator(_date)]
DateOrText = Annotated[dt.date | str, BeforeValidator(_date_or_text)]  # a period: its end date or a text
Amount = Annotated[Decimal, BeforeValidator(_decimal)]  # yuan
Ratio = Annotated[Decimal, BeforeValidator(_decimal)]  # a fraction: 0.0501 is shown as 5.01 %
Points = Annotated[Decimal, BeforeValidator(_decimal)]  # percentage points
Items = Annotated[list[T], BeforeValidator(_list)]
OptionalItems = Annotated[list[T], BeforeValidator(_list_or_none)]  # None or absent: no items
Paragraphs = Annotated[list[str], BeforeValidator(_paragraphs)]  # a text split on line breaks, or a list


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------------------------------------
# Parts


class Respondent(_Data):
    name: Text
    employee_no: Text
    branch: Text  # the respondent's branch


class Loan(_Data):
    loan_no: Text
    enterprise: Text
    amount: Amount
    balance: Amount


class Reason(_Data):
    code: OptionalText = None  # e.g. "P02", "N05", "PL03" (the fired rule); none for a free-text reason
    text: Text
    source: OptionalText = None  # e.g. "金规〔2024〕11号"


class Tolerance(_Data):
    """The frozen tolerance figure of the determination."""

    branch: Text
    period: DateOrText
    sme_ratio: Ratio | None = None  # None: the branch has no inclusive SME loans
    all_ratio: Ratio | None = None  # None: the branch has no loans
    gap_pp: Points | None = None  # the SME ratio minus the all ratio
    within: Annotated[bool, Strict()]


class Deviation(_Data):
    """The committee departed from the recommendation."""

    recommended: Outcome
    decided: Outcome
    reason: Text


class AppealRight(_Data):
    """How and until when the respondent may appeal.

    The window runs from the letter's service: `days` working days from `served_on`; `deadline` is known
    once the letter is served (a letter issued before its service states the rule, and its 送达回证 the
    date). Letters of older data give only `deadline`.
    """

    deadline: Date | None = None
    days: Annotated[int, Strict(), Field(ge=1)] | None = None
    served_on: Date | None = None
    body: Text  # the appeal committee of the level above, e.g. "××银行总行尽职免责申诉复核委员会"
    channel: OptionalText = None  # how to file, e.g. "书面提交至总行授信管理部"

    @model_validator(mode="after")
    def _stated(self) -> AppealRight:
        if self.deadline is None and self.days is None:
            raise ValueError("appeal: give the deadline or the number of working days from service")
        return self


class Committee(_Data):
    """The deciding committee."""

    name: Text
    decided_at: Date


class ReceivingCommittee(Committee):
    """The appeal committee that received an appeal (it has not decided yet)."""

    decided_at: Date | None = None


class SummaryRespondent(Respondent):
    stages: Items[Stage] = Field(min_length=1)
    outcome: Outcome
    liability_kind: LiabilityKind | None = None
    doc_number: OptionalText = None


class Event(_Data):
    at: Date
    text: Text


# ---------------------------------------------------------------------------------------------------------
# Letters


class ChainCheckpoint(_Data):
    """The latest signed checkpoint of the audit chain when the document was issued (printed at its end)."""

    seq: Annotated[int, Strict(), Field(ge=0)]
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Letter(_Data):
    """What every letter has."""

    bank: Text  # the bank's name: PDF author, running header
    branch: Text  # the issuing branch: running header
    doc_number: Text  # 文号, e.g. "济农商免认〔2026〕12号"
    issued_at: Date  # date of issue: signature date and PDF creation date
    committee: Committee  # the deciding (or, for an appeal record, receiving) committee
    version: Annotated[int, Strict(), Field(ge=1)] = 1  # 1 unless a correction
    supersedes: OptionalText = None  # doc_number of the letter this one corrects
    correction: OptionalText = None  # the reason for the correction, shown with ``supersedes``
    case_no: OptionalText = None
    # The form banks use (configured by an administrator): the masthead over the red rule, 主送, 抄送,
    # the 印发 line and the signatory (签发人). A draft (preview) is watermarked and carries no number.
    masthead: OptionalText = None
    main_to: OptionalItems[Text] = []
    cc: OptionalItems[Text] = []
    printed_by: OptionalText = None
    signatory: OptionalText = None
    draft: Annotated[bool, Strict()] = False
    checkpoint: ChainCheckpoint | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _first_version(cls, value: Any) -> Any:
        return 1 if value is None else value

    def problems(self) -> list[str]:
        """What is wrong across fields (each field's own type and values are declared)."""
        problems = []
        if self.supersedes and self.version < 2:
            problems.append("version: a letter that supersedes another must have version >= 2")
        if self.correction and not self.supersedes:
            problems.append("correction: a correction reason needs the doc number of the letter it supersedes")
        # Dates follow the procedure: filed <= decided <= issued <= appeal deadline.
        issued, decided = self.issued_at, self.committee.decided_at
        filed = getattr(self, "filed_at", None)
        appeal = getattr(self, "appeal", None)
        deadline = appeal.deadline if appeal else None
        if decided and issued < decided:
            problems.append(f"issued_at: {issued} is before the committee's decision ({decided})")
        if filed and decided and decided < filed:
            problems.append(f"committee.decided_at: {decided} is before the appeal was filed ({filed})")
        if filed and not decided and issued < filed:
            problems.append(f"issued_at: {issued} is before the appeal was filed ({filed})")
        if deadline and deadline < issued:
            problems.append(f"appeal.deadline: {deadline} is before the letter is issued ({issued})")
        if self.draft != self.doc_number.startswith(DRAFT_NUMBER):
            problems.append(f"doc_number: a draft carries {DRAFT_NUMBER!r} instead of a number, an issued "
                            "document its number")
        return problems

    @model_validator(mode="after")
    def _consistent(self) -> Letter:
        if problems := self.problems():
            raise ValueError("; ".join(problems))
        return self

    def template_data(self) -> dict[str, Any]:
        """The data as the templates read it: every key present, dates and Decimals."""
        return self.model_dump()


class CitedItem(_Data):
    """A list item or duty as a letter cites it: its text and the bank's own rule (and regulatory anchor)."""

    text: Text
    citation: OptionalText = None
    kind: ListKind | None = None


class DutyFinding(CitedItem):
    """A duty shown unperformed by evidence."""

    causal: Annotated[bool, Strict()] = False
    evidence: OptionalItems[Text] = []


class StageReason(_Data):
    """One stage of one loan in a determination: its outcome, the rule that decided it, what was found."""

    loan_no: Text
    stage: Stage
    outcome: Outcome
    rule: Text  # the deciding rule, as the rule set words it for letters
    citation: OptionalText = None  # the bank's own rule (and the regulatory anchor)
    established: OptionalItems[CitedItem] = []  # list items established
    unperformed: OptionalItems[DutyFinding] = []
    violation: Annotated[bool, Strict()] = False
    findings: OptionalItems[Text] = []  # 经查: the investigator's written findings, paragraph by paragraph
    evidence: OptionalItems[Text] = []  # the evidence the findings refer to


class StageRef(_Data):
    loan_no: Text
    stage: Stage


class Tally(_Data):
    """表决情况: votes cast per outcome."""

    exempt: Annotated[int, Strict(), Field(ge=0)] = 0
    reduced: Annotated[int, Strict(), Field(ge=0)] = 0
    liable: Annotated[int, Strict(), Field(ge=0)] = 0
    cast: Annotated[int, Strict(), Field(ge=0)] = 0
    eligible: Annotated[int, Strict(), Field(ge=0)] | None = None  # members not recused


class AppealOutcome(_Data):
    """The appeal decision a corrected (final) determination rests on."""

    doc_number: Text
    body: Text
    decided_at: Date
    decision: Decision
    reasons: Paragraphs
    previous_doc_number: OptionalText = None
    previous_outcome: Outcome | None = None


class Determination(Letter):
    """认定书: one per respondent; after an altered appeal, the final determination (no appeal rights)."""

    respondent: Respondent
    stages: Items[Stage] = Field(min_length=1)  # the respondent's stages
    loans: Items[Loan] = Field(min_length=1)
    outcome: Outcome
    liability_kind: LiabilityKind
    sanctions: OptionalItems[Text] = []  # removed (exempt), reduced (reduced) or referred (liable)
    consequences: OptionalItems[Text] = []  # the concrete consequences from the rule set's sanctions
    reasons: OptionalItems[Reason] = []  # older letters: the fired rules, in precedence order
    stage_reasons: OptionalItems[StageReason] = []  # per loan and stage
    deciding: OptionalItems[StageRef] = []  # the stage(s) whose outcome is the respondent's (most severe)
    recommended: Outcome | None = None  # the outcome the rules give (the committee may deviate, with reason)
    tolerance: Tolerance | None  # required: None when no tolerance figure applies
    deviation: Deviation | None = None
    votes: Tally | None = None
    appeal: AppealRight | None = None  # None only in a final determination
    final: Annotated[bool, Strict()] = False
    appeal_outcome: AppealOutcome | None = None

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.deviation and self.deviation.decided != self.outcome:
            problems.insert(0, f"deviation.decided: {self.deviation.decided!r} differs from outcome {self.outcome!r}")
        if not (self.reasons or self.stage_reasons or self.appeal_outcome):
            problems.append("stage_reasons: missing (a determination gives its reasons)")
        if self.final and self.appeal is not None:
            problems.append("appeal: a final determination carries no appeal rights")
        if not self.final and self.appeal is None:
            problems.append("appeal: missing (a determination that is not final states the appeal rights)")
        known = {(s.loan_no, s.stage) for s in self.stage_reasons}
        for ref in self.deciding:
            if (ref.loan_no, ref.stage) not in known:
                problems.append(f"deciding: {ref.loan_no} {ref.stage} is not among the stage reasons")
        return problems

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"]["stages"] = d.pop("stages")
        return d


class AppealRecord(Letter):
    """申诉记录: an appeal as received (committee = the appeal committee that received it)."""

    committee: ReceivingCommittee
    respondent: Respondent
    appealed_doc_number: Text
    appealed_outcome: Outcome
    filed_at: Date
    grounds: Paragraphs
    evidence: OptionalItems[Text] = []

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"]["stages"] = []
        return d


class PanelVote(_Data):
    member: Text
    outcome: Outcome  # the outcome the member voted for
    reason: OptionalText = None


class AppealDecision(Letter):
    """申诉复核决定书: the appeal committee's decision; it can only confirm or improve the outcome."""

    respondent: Respondent
    appealed_doc_number: Text
    appealed_outcome: Outcome
    decision: Decision
    new_outcome: Outcome | None = None  # required when altered; the appealed outcome when upheld
    liability_kind: LiabilityKind | None = None
    filed_at: Date | None = None
    reasons: Items[Reason] = Field(min_length=1)
    reviewers: Items[Text] = Field(min_length=1)
    panel: OptionalItems[PanelVote] = []  # the appeal committee's named votes, when it voted
    tally: Tally | None = None

    def problems(self) -> list[str]:
        problems = []
        appealed, new = self.appealed_outcome, self.new_outcome
        if self.decision == "upheld":
            if new is not None and new != appealed:
                problems.append(f"new_outcome: an upheld determination keeps {appealed!r}, got {new!r}")
        elif new is None:
            problems.append("new_outcome: missing (an altered determination names the new outcome)")
        elif new == appealed:
            problems.append("new_outcome: an altered determination must change the outcome")
        elif OUTCOMES.index(new) > OUTCOMES.index(appealed):
            problems.append(f"new_outcome: an appeal may never worsen the outcome ({appealed!r} -> {new!r}; "
                            "金规〔2024〕11号)")
        return problems + super().problems()

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"]["stages"] = []
        if self.decision == "upheld":
            d["new_outcome"] = self.appealed_outcome
        return d


class CaseSummary(Letter):
    """案件认定情况汇总."""

    case_no: Text
    enterprise: Text
    loans: Items[Loan] = Field(min_length=1)
    respondents: Items[SummaryRespondent] = Field(min_length=1)
    tolerance: Tolerance | None = None
    events: OptionalItems[Event] = []

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["counts"] = {o: sum(1 for r in self.respondents if r.outcome == o) for o in OUTCOMES}
        return d


class StatementRecord(_Data):
    status: StatementStatus
    text: OptionalItems[Text] = []
    at: Date | None = None


class ReportStage(_Data):
    loan_no: Text
    stage: Stage
    performed_on: Date | None = None
    findings: Paragraphs
    evidence: OptionalItems[Text] = []
    established: OptionalItems[CitedItem] = []
    unperformed: OptionalItems[DutyFinding] = []
    violation: Annotated[bool, Strict()] = False
    dissented: Annotated[bool, Strict()] = False


class ReportRespondent(_Data):
    respondent: Respondent
    statement: StatementRecord
    stages: Items[ReportStage] = Field(min_length=1)


class EvidenceItem(_Data):
    no: Annotated[int, Strict(), Field(ge=1)]
    name: Text
    description: OptionalText = None


class InvestigationReport(Letter):
    """尽职调查报告: the investigator's report to the committee, per respondent, loan and stage."""

    case_no: Text
    enterprise: Text
    loans: Items[Loan] = Field(min_length=1)
    investigator: Text
    respondents: Items[ReportRespondent] = Field(min_length=1)
    evidence: OptionalItems[EvidenceItem] = []
    tolerance: Tolerance | None = None

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"] = {"name": self.investigator}
        return d


class NoticeRespondent(_Data):
    name: Text
    branch: Text
    outcome: Outcome
    liability_kind: LiabilityKind | None = None


class PublicityPeriod(_Data):
    start: Date
    end: Date
    days: Annotated[int, Strict(), Field(ge=1)]


class PublicityNotice(Letter):
    """公示通知: the outcomes on public notice, the period, how and by when to object."""

    case_no: Text
    enterprise: Text
    loans: Items[Loan] = Field(min_length=1)
    respondents: Items[NoticeRespondent] = Field(min_length=1)
    period: PublicityPeriod
    objection_to: Text  # who receives objections

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.period.end < self.period.start:
            problems.append(f"period.end: {self.period.end} is before its start ({self.period.start})")
        return problems


class Attendee(_Data):
    name: Text
    role: Literal["chair", "member"]


class Recusal(_Data):
    name: Text
    reason: Text


class MemberVote(_Data):
    member: Text
    outcome: Outcome
    reason: OptionalText = None


class RespondentVotes(_Data):
    respondent: Text
    recommended: Outcome | None = None
    decided: Outcome
    votes: OptionalItems[MemberVote] = []
    tally: Tally
    deviation_reason: OptionalText = None


class Minutes(Letter):
    """评议会议纪要: attendance, recusals and why, named votes and tally per respondent, deviations, the
    chair's signature."""

    case_no: Text
    enterprise: Text
    chair: Text
    present: Items[Attendee] = Field(min_length=1)
    absent: OptionalItems[Text] = []
    recusals: OptionalItems[Recusal] = []
    respondents: Items[RespondentVotes] = Field(min_length=1)
    eligible: Annotated[int, Strict(), Field(ge=0)]

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"] = {"name": self.chair}
        return d


class ReferredRespondent(Respondent):
    outcome: Outcome
    liability_kind: LiabilityKind | None = None
    doc_number: OptionalText = None
    consequences: OptionalItems[Text] = []


class Referral(Letter):
    """移交问责函: to the department that runs the accountability procedure."""

    case_no: Text
    enterprise: Text
    recipient: Text
    respondents: Items[ReferredRespondent] = Field(min_length=1)
    documents: OptionalItems[Text] = []  # the numbers of the documents referred with it

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"] = {"name": self.recipient}
        return d


class BatchReport(Letter):
    """尽职评议报告（批量）: one duty-review report over a batch case's loans, each respondent's outcome."""

    case_no: Text
    enterprise: Text
    loans: Items[Loan] = Field(min_length=1)
    respondents: Items[SummaryRespondent] = Field(min_length=1)
    tolerance: Tolerance | None = None

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["counts"] = {o: sum(1 for r in self.respondents if r.outcome == o) for o in OUTCOMES}
        d["respondent"] = {"name": self.respondents[0].name}
        return d


class ServiceRecord(Letter):
    """送达回证: how, when and by whom a document was served, and the appeal deadline it starts."""

    respondent: Respondent
    served_doc_number: Text
    served_title: Text
    method: ServiceMethod
    served_on: Date
    served_by: OptionalText = None
    appeal: AppealRight | None = None  # None: the served document is final

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.appeal is not None and self.appeal.deadline is None:
            problems.append("appeal.deadline: a service record states the deadline")
        return problems

    def template_data(self) -> dict[str, Any]:
        d = super().template_data()
        d["respondent"]["stages"] = []
        return d


#: The model of each kind of letter.
MODELS: dict[str, type[Letter]] = {
    "investigation_report": InvestigationReport,
    "determination": Determination,
    "publicity_notice": PublicityNotice,
    "minutes": Minutes,
    "appeal_record": AppealRecord,
    "appeal_decision": AppealDecision,
    "referral": Referral,
    "batch_report": BatchReport,
    "service_record": ServiceRecord,
    "case_summary": CaseSummary,
}
KINDS = tuple(MODELS)


def template_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the plain ``data`` of a letter of ``kind`` and return what its template reads; raises
    LetterDataError naming every problem."""
    if kind not in MODELS:
        raise LetterDataError(f"unknown letter kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(data, Mapping):
        raise LetterDataError(f"letter data must be a dict, got {type(data).__name__}")
    try:
        letter = MODELS[kind].model_validate(data)
    except ValidationError as exc:
        raise LetterDataError(f"{kind} letter data: " + "; ".join(map(_problem, exc.errors()))) from None
    return letter.template_data()


def _problem(error: Mapping[str, Any]) -> str:
    """One pydantic error as "path: what is wrong", e.g. "loans[0].amount: not a number, got 'x'"."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    value = error.get("input")
    if error["type"] == "missing" or value is None:
        message = "missing"
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])
        if not path:  # the problems across fields name their own paths
            return message
    elif error["type"] == "model_type":
        message = "expected a dict"  # not pydantic's "a valid dictionary or instance of Loan"
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    if message != "missing":
        shown = repr(value)
        message += f", got {shown if len(shown) <= 80 else shown[:77] + '...'}"
    return f"{path}: {message}" if path else message
