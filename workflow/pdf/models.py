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
    deadline: Date
    body: Text  # the appeal committee of the level above, e.g. "××银行总行尽职免责申诉复核委员会"
    channel: OptionalText = None  # how to file, e.g. "Mianze 申诉平台或书面提交至总行授信管理部"


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
        return problems

    @model_validator(mode="after")
    def _consistent(self) -> Letter:
        if problems := self.problems():
            raise ValueError("; ".join(problems))
        return self

    def template_data(self) -> dict[str, Any]:
        """The data as the templates read it: every key present, dates and Decimals."""
        return self.model_dump()


class Determination(Letter):
    """认定书: one per respondent."""

    respondent: Respondent
    stages: Items[Stage] = Field(min_length=1)  # the respondent's stages
    loans: Items[Loan] = Field(min_length=1)
    outcome: Outcome
    liability_kind: LiabilityKind
    sanctions: OptionalItems[Text] = []  # removed (exempt), reduced (reduced) or referred (liable)
    reasons: Items[Reason] = Field(min_length=1)  # the fired rules, in precedence order
    tolerance: Tolerance | None  # required: None when no tolerance figure applies
    deviation: Deviation | None = None
    appeal: AppealRight

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.deviation and self.deviation.decided != self.outcome:
            problems.insert(0, f"deviation.decided: {self.deviation.decided!r} differs from outcome {self.outcome!r}")
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


#: The model of each kind of letter.
MODELS: dict[str, type[Letter]] = {
    "determination": Determination,
    "appeal_record": AppealRecord,
    "appeal_decision": AppealDecision,
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
