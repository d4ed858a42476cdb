"""The exemption rule set as data, and the recommendation engine over it (domain.md §6, §8, §9).

A `RuleSet` is plain data (ruleset_default.json is the seed): the positive, mitigating and negative lists,
the stage duty checklists, the precedence steps with their texts and sources, tolerance options, scope,
time limits, committee rules and sanctions. Administrators edit the data; the code below only knows the
*order* of the precedence steps (§6) and what each one tests.

Every function here is pure: facts and a rule set in, a result out; no Flask, no SQL.

Explanations list the steps actually consulted, in precedence order, and stop at the first that fires (its
entry is always the last one, and its `fired` is true). A step after the deciding one was not consulted, so
it is not listed: the explanation says why the outcome is what it is and nothing that could be misread as a
reason. Each entry: {"step": n, "rule": <step code>, "fired": bool, "fact": {...}, "source": <step source>,
"text": {"zh", "en"}, "items": [the rule-set entries named in the fact]}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic import PrivateAttr as _PrivateAttr

from .errors import OutOfScope, ValidationFailed
from .tolerance import ToleranceResult, compute_tolerance, from_ratios, parse_decimal

DEFAULT_RULE_SET_PATH = Path(__file__).with_name("ruleset_default.json")

OUTCOMES: tuple[str, ...] = ("exempt", "reduced", "liable")
SEVERITY: dict[str, int] = {"exempt": 0, "reduced": 1, "liable": 2}
# The credit stages of domain.md §3; a rule set may name any of them (marketing and acceptance are optional).
STAGES: tuple[str, ...] = ("marketing", "acceptance", "pre_loan", "review", "approval", "disbursement", "post_loan")
# The precedence of §6, first that applies wins. The rule set supplies each step's text and source.
STEPS: tuple[str, ...] = (
    "negative_list", "positive_list", "no_evidence_of_fault", "tolerance_presumption", "minor_fault", "otherwise",
)
STEP_YIELDS: dict[str, str] = {
    "negative_list": "liable", "positive_list": "exempt", "no_evidence_of_fault": "exempt",
    "tolerance_presumption": "exempt", "minor_fault": "reduced", "otherwise": "liable",
}
LIST_KINDS: tuple[str, ...] = ("positive", "mitigating", "negative")
LIST_LABELS = {"positive": "positive-list item", "mitigating": "mitigating item",
               "negative": "negative-list item", "duty": "duty"}
TIME_LIMITS: tuple[str, ...] = (
    "statement", "investigation", "determination", "publicity", "appeal_window", "appeal_decision", "total_case",
)
# Versions published before the right to be heard have no statement limit: they read as this default.
DEFAULT_STATEMENT_LIMIT = {"days": 10, "unit": "working_days", "basis": "bank_policy",
                           "source": "bank-policy default (no regulatory source)",
                           "zh": "免责陈述（自立案起）", "en": "Exemption statement (from registration)"}
TOLERANCE_TEXTS: tuple[str, ...] = (
    "no_loans", "no_sme_loans", "gap", "target", "given", "unknown", "within", "outside",
)
# Placeholders a tolerance text may use; filled from ToleranceResult.display.
TOLERANCE_PLACEHOLDERS = {"all_ratio": "", "sme_ratio": "", "gap_pp": "", "margin_pp": "", "target": ""}

Outcome = Literal["exempt", "reduced", "liable"]
Code = str


# ---------------------------------------------------------------------------------------------------------
# The rule set (data)
# ---------------------------------------------------------------------------------------------------------


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Data):
    """A text in both languages."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class ListItem(_Data):
    """An item of the positive, mitigating or negative list; `stages` None means every stage.

    `source` is the regulatory anchor, `bank_rule` the bank's own citation (document and article of its
    实施细则) that letters and forms show; `note` and `verified` say how far the wording was checked against
    the official text, for administrators only (never printed).
    """

    code: Code = Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    source: str = Field(min_length=1)
    verified: bool
    bank_rule: str = ""
    note: str = ""
    stages: tuple[str, ...] | None = None


class DutyItem(_Data):
    """One duty of a stage's checklist."""

    code: Code = Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")
    stage: str
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    source: str = Field(min_length=1)
    verified: bool
    bank_rule: str = ""  # the bank's own citation (see ListItem)
    note: str = ""  # verification note, for administrators only


class StageInfo(_Data):
    """A credit stage the rule set judges."""

    code: str
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    optional: bool = False


class Step(_Data):
    """A precedence step's text and source (its logic is fixed in code, its words are data).

    `zh`/`en` describe the step for the rule-set view and explanations; `letter` is the sentence a letter
    gives as the reason of a stage decided by this step (the description when absent); `bank_rule` the
    bank's own citation.
    """

    code: str
    yields: Outcome
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    source: str = Field(min_length=1)
    bank_rule: str = ""
    letter: Text | None = None

    def letter_text(self, lang: str) -> str:
        """The reason a letter gives for a stage this step decided."""
        return getattr(self.letter, lang) if self.letter else getattr(self, lang)


class ToleranceRules(_Data):
    """Tolerance margin (a fraction: 0.03 = 3 pp), options recorded in snapshots, and explanation texts."""

    margin: Decimal = Field(ge=0, le=1)
    period_basis: Literal["annual", "quarterly"] = "annual"
    add_back_written_off: bool = False
    source: str = Field(min_length=1)
    texts: dict[str, Text]

    @field_validator("texts")
    @classmethod
    def _texts_complete(cls, texts: dict[str, Text]) -> dict[str, Text]:
        missing = [key for key in TOLERANCE_TEXTS if key not in texts]
        unknown = sorted(set(texts) - set(TOLERANCE_TEXTS))
        if missing or unknown:
            raise ValueError(f"tolerance texts: missing {missing}, unknown {unknown}")
        for key, text in texts.items():
            for lang in ("zh", "en"):
                try:
                    getattr(text, lang).format(**TOLERANCE_PLACEHOLDERS)
                except (KeyError, IndexError, ValueError) as exc:
                    raise ValueError(
                        f"tolerance text {key}.{lang} uses an unknown placeholder {exc}; "
                        f"allowed: {sorted(TOLERANCE_PLACEHOLDERS)}"
                    ) from None
        return texts

    @property
    def options(self) -> dict[str, Any]:
        """The options to record beside a computed tolerance."""
        return {"period_basis": self.period_basis, "add_back_written_off": self.add_back_written_off}


class ProductScope(_Data):
    """One eligible product class: its single-borrower credit limit (yuan) and eligible borrower kinds."""

    credit_limit: Decimal = Field(gt=0)
    borrower_kinds: tuple[str, ...] = Field(min_length=1)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class ScopeRules(_Data):
    """Which loans the exemption rules cover (金规〔2024〕11号)."""

    source: str = Field(min_length=1)
    product_classes: dict[str, ProductScope] = Field(min_length=1)

    @property
    def borrower_kinds(self) -> tuple[str, ...]:
        """Every eligible borrower kind, in order of first appearance."""
        return tuple(dict.fromkeys(k for p in self.product_classes.values() for k in p.borrower_kinds))


class TimeLimit(_Data):
    """A time limit; `basis` tells a bank-policy default from a regulatory limit (the UI labels it)."""

    days: int = Field(gt=0)
    unit: Literal["working_days", "calendar_days"]
    basis: Literal["bank_policy", "regulatory"]
    source: str = Field(min_length=1)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


def _parse_fraction(value: str) -> Fraction:
    if not re.fullmatch(r"\d+/\d+", value):
        raise ValueError(f"{value!r} is not a fraction like '2/3'")
    result = Fraction(value)
    if not 0 < result <= 1:
        raise ValueError(f"{value!r} must be above 0 and at most 1")
    return result


class CommitteeRules(_Data):
    """Quorum (share of non-recused members present, at least) and the majority an outcome needs.

    `majority_strict` true: more than `majority` of the votes cast (过半数, the default "1/2");
    false: at least `majority` (e.g. "2/3" meaning two thirds or more).
    """

    quorum: str
    majority: str
    majority_strict: bool = True
    basis: Literal["bank_policy", "regulatory"] = "bank_policy"
    source: str = Field(min_length=1)

    @field_validator("quorum", "majority")
    @classmethod
    def _is_fraction(cls, value: str) -> str:
        _parse_fraction(value)
        return value

    @property
    def quorum_fraction(self) -> Fraction:
        return _parse_fraction(self.quorum)

    @property
    def majority_fraction(self) -> Fraction:
        return _parse_fraction(self.majority)


class AppealCommitteeRules(CommitteeRules):
    """The appeal committee of the level above (上一级): its quorum and majority, and the fewest members who
    must vote (`min_votes`): a panel is a body, so one reviewer alone never decides an appeal."""

    min_votes: int = Field(default=3, ge=2)


class BatchRules(_Data):
    """Loans under this amount (yuan), with clear responsibility, may share one duty-review report."""

    threshold_amount: Decimal = Field(gt=0)
    basis: Literal["bank_policy", "regulatory"] = "bank_policy"
    source: str = Field(min_length=1)


class AuthorityTier(_Data):
    """One tier of the determination authority: cases of a branch at one of `branch_levels` (the branch the
    case's loans are booked at: 1 tier-1 branch, 2 sub-branch, 3 outlet) whose total loan amount (yuan) is
    above `over_amount` (if given) and at most `up_to_amount` (if given) are decided by the committee at
    `committee_level` above them (0 head office, 1 tier-1 branch, 2 sub-branch)."""

    code: Code = Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")
    branch_levels: tuple[int, ...] = Field(min_length=1)
    over_amount: Decimal | None = Field(default=None, ge=0)
    up_to_amount: Decimal | None = Field(default=None, gt=0)
    committee_level: int = Field(ge=0, le=2)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    @model_validator(mode="after")
    def _sensible(self) -> AuthorityTier:
        if any(level not in (0, 1, 2, 3) for level in self.branch_levels):
            raise ValueError(f"authority tier {self.code}: branch levels are 0 to 3")
        if self.committee_level > min(self.branch_levels):
            raise ValueError(f"authority tier {self.code}: the deciding committee sits at the case's branch or "
                             "above it (committee_level at most the lowest branch level)")
        if self.over_amount is not None and self.up_to_amount is not None and self.up_to_amount <= self.over_amount:
            raise ValueError(f"authority tier {self.code}: up_to_amount must be above over_amount")
        return self

    def applies(self, branch_level: int, total_amount: Decimal) -> bool:
        """Whether a case of a branch at this level with this total loan amount falls in the tier."""
        return (branch_level in self.branch_levels
                and (self.over_amount is None or total_amount > self.over_amount)
                and (self.up_to_amount is None or total_amount <= self.up_to_amount))


class AuthorityRules(_Data):
    """Which committee decides which case (适当下放免责认定权限): the first tier that applies, else the
    committee at `default_level` (the tier-1 branch's by default) above the case's branch. A bank-policy
    setting: the regulation asks to delegate authority downward but sets no tiers."""

    default_level: int = Field(default=1, ge=0, le=2)
    tiers: tuple[AuthorityTier, ...] = ()
    basis: Literal["bank_policy", "regulatory"] = "bank_policy"
    source: str = Field(min_length=1)
    zh: str = Field(min_length=1)  # what the default means, for the case page and the rule-set view
    en: str = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> AuthorityRules:
        codes = [t.code for t in self.tiers]
        if len(set(codes)) != len(codes):
            raise ValueError("an authority tier code is used twice")
        return self


DEFAULT_AUTHORITY = AuthorityRules(
    source="济管财金〔2022〕25号 三(二)（适当下放免责认定权限）; the tiers are a bank-policy default",
    zh="未设分级授权：各一级分行尽职免责评议委员会认定其辖内全部案件",
    en="No delegated tiers: each tier-1 branch's committee decides every case of its branches")


@dataclass(frozen=True)
class Authority:
    """Which committee has authority over a case, and why: the rule (a tier's code or "default"), the facts
    it read (the level of the case's branch, the total loan amount) and the rule's words."""

    committee_level: int
    rule: str
    branch_level: int
    total_amount: Decimal
    text: dict[str, str]
    basis: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"committee_level": self.committee_level, "rule": self.rule, "branch_level": self.branch_level,
                "total_amount": str(self.total_amount), "text": dict(self.text), "basis": self.basis,
                "source": self.source}


def committee_with_authority(rule_set: RuleSet, *, branch_level: int, total_amount: Decimal) -> Authority:
    """The level of the committee that decides a case of a branch at `branch_level` with this total loan
    amount: the first authority tier that applies, else the rule set's default (a missing `authority`
    section means the default: the tier-1 branch committee). Never below the case's own branch."""
    section = rule_set.authority_rules
    total = Decimal(total_amount)
    for tier in section.tiers:
        if tier.applies(branch_level, total):
            return Authority(min(tier.committee_level, branch_level), tier.code, branch_level, total,
                             {"zh": tier.zh, "en": tier.en}, section.basis, section.source)
    return Authority(min(section.default_level, branch_level), "default", branch_level, total,
                     {"zh": section.zh, "en": section.en}, section.basis, section.source)


class Sanction(_Data):
    """What an outcome means for sanctions: factors of the normal sanction (0 = none, 1 = in full)."""

    assessment_points_factor: Decimal = Field(ge=0, le=1)
    administrative_sanction: Literal["none", "lighter", "as_determined"]
    administrative_grades_lighter: int = Field(default=0, ge=0)
    economic_penalty_factor: Decimal = Field(ge=0, le=1)
    referred: bool
    source: str = Field(min_length=1)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    bank_rule: str = ""
    referral_recipient: Text | None = None  # who receives a referral (referred outcomes)


class RuleSet(_Data):
    """One version of the rule set; validated strictly (unique codes, known stages, complete sections).

    Build one with `RuleSet.model_validate(dict)`; freeze one into a case with `model_dump(mode="json")`.
    Raises pydantic.ValidationError on bad data (`parse_rule_set` turns that into ValidationFailed).
    """

    version: str = Field(min_length=1)
    effective_from: date
    name: Text
    outcomes: dict[Outcome, Text]
    liability_kinds: dict[str, Text] = Field(default_factory=dict)
    stages: tuple[StageInfo, ...] = Field(min_length=1)
    positive: tuple[ListItem, ...]
    mitigating: tuple[ListItem, ...]
    negative: tuple[ListItem, ...]
    duties: tuple[DutyItem, ...]
    steps: tuple[Step, ...]
    tolerance: ToleranceRules
    scope: ScopeRules
    time_limits: dict[str, TimeLimit]
    committee: CommitteeRules
    # Absent in versions published before appeal panels: the committee's quorum and majority, three votes.
    appeal_committee: AppealCommitteeRules | None = None
    batch: BatchRules
    # Absent in versions published before delegated authority: the default (the tier-1 branch decides all).
    authority: AuthorityRules | None = None
    sanctions: dict[Outcome, Sanction]
    bank_document: Text | None = None  # the bank's 实施细则 the `bank_rule` citations refer to

    # code -> (kind, item); kind in LIST_KINDS or "duty". Built once after validation.
    _index: dict[str, tuple[str, ListItem | DutyItem]] = _PrivateAttr(default_factory=dict)
    _order: dict[str, int] = _PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _older_versions(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("time_limits"), dict) \
                and "statement" not in data["time_limits"]:
            data = {**data, "time_limits": {"statement": DEFAULT_STATEMENT_LIMIT, **data["time_limits"]}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        problems: list[str] = []
        stage_codes = [s.code for s in self.stages]
        for code in stage_codes:
            if code not in STAGES:
                problems.append(f"unknown stage {code!r} (known: {', '.join(STAGES)})")
        if len(set(stage_codes)) != len(stage_codes):
            problems.append("a stage is listed twice")
        index: dict[str, tuple[str, ListItem | DutyItem]] = {}
        entries: list[tuple[str, ListItem | DutyItem]] = [
            (kind, item) for kind in LIST_KINDS for item in getattr(self, kind)
        ] + [("duty", d) for d in self.duties]
        for kind, item in entries:
            if item.code in index:
                problems.append(f"code {item.code!r} is used twice ({index[item.code][0]} and {kind})")
            index[item.code] = (kind, item)
            if isinstance(item, DutyItem) and item.stage not in stage_codes:
                problems.append(f"duty {item.code!r} names stage {item.stage!r}, which the rule set does not have")
            if isinstance(item, ListItem) and item.stages is not None:
                for stage in item.stages:
                    if stage not in stage_codes:
                        problems.append(f"{item.code!r} names stage {stage!r}, which the rule set does not have")
        if [s.code for s in self.steps] != list(STEPS):
            problems.append(f"steps must be exactly, in this order: {', '.join(STEPS)}")
        else:
            for step in self.steps:
                if step.yields != STEP_YIELDS[step.code]:
                    problems.append(f"step {step.code!r} yields {STEP_YIELDS[step.code]!r}, not {step.yields!r}")
        for section in ("outcomes", "sanctions"):
            missing = [o for o in OUTCOMES if o not in getattr(self, section)]
            if missing:
                problems.append(f"{section} lacks {', '.join(missing)}")
        missing_limits = [k for k in TIME_LIMITS if k not in self.time_limits]
        if missing_limits:
            problems.append(f"time_limits lacks {', '.join(missing_limits)}")
        if problems:
            raise ValueError("; ".join(problems))
        self._index = index
        self._order = {item.code: n for n, (_, item) in enumerate(entries)}
        return self

    # -- look-ups ------------------------------------------------------------------------------------

    @property
    def stage_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.stages)

    def kind_of(self, code: str) -> str | None:
        """'positive', 'mitigating', 'negative', 'duty', or None for an unknown code."""
        entry = self._index.get(code)
        return entry[0] if entry else None

    def item(self, code: str) -> ListItem | DutyItem:
        """The list item or duty with this code; raises ValidationFailed if there is none."""
        entry = self._index.get(code)
        if entry is None:
            raise ValidationFailed(f"unknown code {code!r}", value=code)
        return entry[1]

    def duties_for(self, stage: str) -> tuple[DutyItem, ...]:
        """The duty checklist of one stage, in rule-set order."""
        return tuple(d for d in self.duties if d.stage == stage)

    def step(self, code: str) -> Step:
        return next(s for s in self.steps if s.code == code)

    def ordered(self, codes: Iterable[str]) -> list[str]:
        """Codes in rule-set order (so results never depend on the order facts were entered)."""
        return sorted(codes, key=lambda c: (self._order.get(c, len(self._order)), c))

    @property
    def authority_rules(self) -> AuthorityRules:
        """The authority section, or the default when the version has none."""
        return self.authority or DEFAULT_AUTHORITY

    def sanction_for(self, outcome: str) -> dict[str, Any]:
        """The sanctions of an outcome, JSON-ready."""
        return self.sanctions[outcome].model_dump(mode="json")


def parse_rule_set(data: Any) -> RuleSet:
    """A RuleSet from plain data; raises ValidationFailed listing what is wrong."""
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(f"invalid rule set: {_describe(exc)}", errors=_errors(exc)) from None


def load_default_rule_set() -> RuleSet:
    """The seed rule set of domain.md §8, read from ruleset_default.json."""
    with DEFAULT_RULE_SET_PATH.open(encoding="utf-8") as f:
        return parse_rule_set(json.load(f))


def rule_set_for(day: date, versions: Sequence[RuleSet]) -> RuleSet:
    """The version in force on `day`: the latest effective_from ≤ day, else the earliest version.

    Raises ValidationFailed for no versions, or two versions taking effect on the same date.
    """
    if not versions:
        raise ValidationFailed("no rule-set versions to choose from")
    dates = [v.effective_from for v in versions]
    if len(set(dates)) != len(dates):
        raise ValidationFailed("two rule-set versions take effect on the same date")
    in_force = [v for v in versions if v.effective_from <= day]
    if not in_force:
        return min(versions, key=lambda v: v.effective_from)
    return max(in_force, key=lambda v: v.effective_from)


# ---------------------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------------------


class _Input(BaseModel):
    # strict: JSON true is a bool, "true" is an error; extra fields are errors.
    model_config = ConfigDict(extra="forbid", strict=True)


class UnperformedDuty(_Input):
    """A duty shown unperformed by evidence, and whether that is causally linked to the loss."""

    duty: str
    causal: bool
    evidence: list[int] | None = None


class StageFacts(_Input):
    """What was established for one respondent at one stage (of one loan, when `loan` is given).

    A duty with no evidence either way is not unperformed and is not listed. `violation` is a breach of
    law or supervisory rule; an internal-policy lapse is an unperformed duty instead. `dissented` is a
    qualifying dissent in a collective decision.
    """

    stage: str
    loan: str | None = None
    positive: list[str] = Field(default_factory=list)
    mitigating: list[str] = Field(default_factory=list)
    negative: list[str] = Field(default_factory=list)
    violation: bool = False
    unperformed: list[UnperformedDuty] = Field(default_factory=list)
    dissented: bool = False
    # Evidence ids behind each established list item (code -> ids); not used by the recommendation.
    evidence: dict[str, list[int]] = Field(default_factory=dict)
    # The written findings (查明事实): plain paragraphs, and the evidence they refer to. Not used by the
    # recommendation; a stage counts as recorded only with findings (the investigation report and the
    # letters print them).
    findings: str = Field(default="", max_length=20_000)
    findings_evidence: list[int] = Field(default_factory=list)


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "input"


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": _loc(e["loc"]), "message": e["msg"]} for e in exc.errors()]


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in exc.errors():
        where = _loc(e["loc"])
        if prefix:
            where = f"{prefix}.{where}" if e["loc"] else prefix
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _parse_facts(facts: StageFacts | Mapping[str, Any], where: str = "") -> StageFacts:
    if isinstance(facts, StageFacts):
        return facts
    if not isinstance(facts, Mapping):
        raise ValidationFailed(f"{where or 'stage facts'}: must be an object", field=where or None)
    try:
        return StageFacts.model_validate(dict(facts))
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc, where), errors=_errors(exc)) from None


def validate_facts(facts: StageFacts | Mapping[str, Any], rule_set: RuleSet, *, where: str = "") -> StageFacts:
    """Check one stage's facts against the rule set and return them as StageFacts.

    Raises ValidationFailed naming the offending value: an unknown stage, an unknown code, a code of another
    list (an N-code among the positive items), a duty of another stage, an item not applicable to the
    stage, or a code listed twice. `where` prefixes messages (e.g. "respondents[0].stages[1]").
    """
    facts = _parse_facts(facts, where)
    at = f"{where}." if where else ""
    if facts.stage not in rule_set.stage_codes:
        raise ValidationFailed(
            f"{at}stage: unknown stage {facts.stage!r} (known: {', '.join(rule_set.stage_codes)})",
            field=f"{at}stage", value=facts.stage,
        )
    for kind in LIST_KINDS:
        seen: set[str] = set()
        for n, code in enumerate(getattr(facts, kind)):
            path = f"{at}{kind}[{n}]"
            actual = rule_set.kind_of(code)
            if actual is None:
                raise ValidationFailed(f"{path}: unknown {LIST_LABELS[kind]} {code!r}", field=path, value=code)
            if actual != kind:
                raise ValidationFailed(
                    f"{path}: {code!r} is a {LIST_LABELS[actual]}, not a {LIST_LABELS[kind]}", field=path, value=code
                )
            item = rule_set.item(code)
            assert isinstance(item, ListItem)
            if item.stages is not None and facts.stage not in item.stages:
                raise ValidationFailed(
                    f"{path}: {code!r} does not apply to stage {facts.stage!r}", field=path, value=code
                )
            if code in seen:
                raise ValidationFailed(f"{path}: {code!r} is listed twice", field=path, value=code)
            seen.add(code)
    seen_duties: set[str] = set()
    for n, entry in enumerate(facts.unperformed):
        path = f"{at}unperformed[{n}].duty"
        code = entry.duty
        actual = rule_set.kind_of(code)
        if actual is None:
            raise ValidationFailed(f"{path}: unknown duty {code!r}", field=path, value=code)
        if actual != "duty":
            raise ValidationFailed(f"{path}: {code!r} is a {LIST_LABELS[actual]}, not a duty", field=path, value=code)
        item = rule_set.item(code)
        assert isinstance(item, DutyItem)
        if item.stage != facts.stage:
            raise ValidationFailed(
                f"{path}: duty {code!r} belongs to stage {item.stage!r}, not {facts.stage!r}", field=path, value=code
            )
        if code in seen_duties:
            raise ValidationFailed(f"{path}: duty {code!r} is listed twice", field=path, value=code)
        seen_duties.add(code)
    established = {*facts.positive, *facts.mitigating, *facts.negative}
    for code in facts.evidence:
        if code not in established:
            raise ValidationFailed(f"{at}evidence.{code}: evidence is given for {code!r}, which is not established "
                                   "in this stage", field=f"{at}evidence", value=code)
    return facts


# ---------------------------------------------------------------------------------------------------------
# Recommendation
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageResult:
    """The recommended outcome of one stage and the explanation behind it."""

    stage: str
    outcome: str
    explanation: list[dict[str, Any]]
    loan: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage}
        if self.loan is not None:
            out["loan"] = self.loan
        out["outcome"] = self.outcome
        out["explanation"] = self.explanation
        return out


@dataclass(frozen=True)
class RespondentResult:
    """A respondent's recommended outcome (the most severe of their stages) and its sanctions."""

    outcome: str
    stages: list[StageResult]
    sanctions: dict[str, Any]
    rule_set_versions: list[str] = field(default_factory=list)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outcome": self.outcome,
            "sanctions": self.sanctions,
            "stages": [s.to_dict() for s in self.stages],
        }


def _entry(rule_set: RuleSet, n: int, code: str, fired: bool, fact: dict[str, Any],
           item_codes: Iterable[str]) -> dict[str, Any]:
    step = rule_set.step(code)
    items = []
    for c in item_codes:
        item = rule_set.item(c)
        items.append({"code": c, "zh": item.zh, "en": item.en, "source": item.source, "verified": item.verified})
    return {
        "step": n,
        "rule": code,
        "fired": fired,
        "fact": fact,
        "source": step.source,
        "text": {"zh": step.zh, "en": step.en},
        "items": items,
    }


def recommend_stage(
    facts: StageFacts | Mapping[str, Any], rule_set: RuleSet, within_tolerance: bool | None = None
) -> StageResult:
    """Recommend one stage's outcome by the §6 precedence; the first step that applies wins.

    1 negative item → liable; 2 positive item or qualifying dissent → exempt; 3 no duty shown unperformed and
    no violation → exempt; 4 within tolerance (True; None means unknown) and no violation → exempt;
    5 no violation and (every unperformed duty non-causal, or a mitigating item) → reduced; 6 → liable.
    Raises ValidationFailed for facts the rule set does not know (see validate_facts).
    """
    facts = validate_facts(facts, rule_set)
    if within_tolerance is not None and not isinstance(within_tolerance, bool):
        raise ValidationFailed("within_tolerance must be true, false or null", value=repr(within_tolerance))
    negative = rule_set.ordered(facts.negative)
    positive = rule_set.ordered(facts.positive)
    mitigating = rule_set.ordered(facts.mitigating)
    by_duty = {u.duty: u for u in facts.unperformed}
    unperformed = rule_set.ordered(by_duty)
    causal = [d for d in unperformed if by_duty[d].causal]
    non_causal = [d for d in unperformed if not by_duty[d].causal]
    violation = facts.violation

    # (step, fires?, the fact it looked at, the codes named) — in precedence order, evaluated lazily.
    checks: list[Callable[[], tuple[bool, dict[str, Any], list[str]]]] = [
        lambda: (bool(negative), {"negative": negative}, negative),
        lambda: (bool(positive) or facts.dissented, {"positive": positive, "dissented": facts.dissented}, positive),
        lambda: (not unperformed and not violation, {"unperformed": unperformed, "violation": violation}, unperformed),
        lambda: (within_tolerance is True and not violation,
                 {"within_tolerance": within_tolerance, "violation": violation}, []),
        lambda: (not violation and (not causal or bool(mitigating)),
                 {"violation": violation, "causal": causal, "non_causal": non_causal, "mitigating": mitigating},
                 unperformed + mitigating),
        lambda: (True, {"violation": violation, "causal": causal, "non_causal": non_causal}, unperformed),
    ]
    explanation = []
    for n, (code, check) in enumerate(zip(STEPS, checks, strict=True), start=1):
        fired, fact, codes = check()
        explanation.append(_entry(rule_set, n, code, fired, fact, codes if fired else []))
        if fired:
            return StageResult(stage=facts.stage, outcome=STEP_YIELDS[code], explanation=explanation,
                               loan=facts.loan)
    raise AssertionError("the last step always fires")  # pragma: no cover


def most_severe(outcomes: Iterable[str]) -> str:
    """The most severe outcome (exempt < reduced < liable); raises ValidationFailed for none or unknown."""
    outcomes = list(outcomes)
    for o in outcomes:
        if o not in SEVERITY:
            raise ValidationFailed(f"unknown outcome {o!r} (known: {', '.join(OUTCOMES)})", value=o)
    if not outcomes:
        raise ValidationFailed("no outcomes to combine")
    return max(outcomes, key=SEVERITY.__getitem__)


RuleSetChoice = RuleSet | Mapping[str, RuleSet] | Callable[[StageFacts], RuleSet]


def _rule_set_of(choice: RuleSetChoice, facts: StageFacts) -> RuleSet:
    if isinstance(choice, RuleSet):
        return choice
    if isinstance(choice, Mapping):
        if facts.stage not in choice:
            raise ValidationFailed(f"no rule set given for stage {facts.stage!r}", value=facts.stage)
        result = choice[facts.stage]
    else:
        result = choice(facts)
    if not isinstance(result, RuleSet):
        raise TypeError(f"the rule set for stage {facts.stage!r} is a {type(result).__name__}, not a RuleSet")
    return result


def recommend_respondent(
    stages: Sequence[StageFacts | Mapping[str, Any]],
    rule_set: RuleSetChoice,
    within_tolerance: bool | None = None,
    *,
    respondent_id: str | None = None,
    sanctions_from: RuleSet | None = None,
    where: str = "",
) -> RespondentResult:
    """Recommend a respondent's outcome: the most severe of their stages, with that outcome's sanctions.

    `rule_set` is one RuleSet, or — to judge each stage by the rules in force when it was handled — a
    mapping stage code → RuleSet, or a callable StageFacts → RuleSet (e.g. built on `rule_set_for` and the
    loan's dates). Sanctions come from `sanctions_from`, else the single rule set, else the newest
    (latest effective_from) of the stage rule sets.
    Raises ValidationFailed for no stages, a stage (of the same loan) given twice, or facts the rule set
    does not know.
    """
    if not stages:
        raise ValidationFailed(f"{where or 'respondent'}: at least one stage is needed")
    parsed = [_parse_facts(s, f"{where}.stages[{n}]" if where else f"stages[{n}]") for n, s in enumerate(stages)]
    seen: set[tuple[str, str | None]] = set()
    results: list[StageResult] = []
    used: list[RuleSet] = []
    for n, facts in enumerate(parsed):
        path = f"{where}.stages[{n}]" if where else f"stages[{n}]"
        key = (facts.stage, facts.loan)
        if key in seen:
            what = f"stage {facts.stage!r}" + (f" of loan {facts.loan!r}" if facts.loan is not None else "")
            raise ValidationFailed(f"{path}: {what} is given twice", field=path, value=facts.stage)
        seen.add(key)
        rs = _rule_set_of(rule_set, facts)
        validate_facts(facts, rs, where=path)
        used.append(rs)
        results.append(recommend_stage(facts, rs, within_tolerance))
    outcome = most_severe(r.outcome for r in results)
    source = sanctions_from or (rule_set if isinstance(rule_set, RuleSet) else max(used, key=lambda r: r.effective_from))
    return RespondentResult(
        id=respondent_id,
        outcome=outcome,
        stages=results,
        sanctions=source.sanction_for(outcome),
        rule_set_versions=list(dict.fromkeys(r.version for r in used)),
    )


# ---------------------------------------------------------------------------------------------------------
# Tolerance as the rule set explains it
# ---------------------------------------------------------------------------------------------------------


def tolerance_explanation(result: ToleranceResult | None, rule_set: RuleSet, *, basis: str | None = None,
                          within: bool | None = None) -> dict[str, str]:
    """The tolerance verdict in words, from the rule set's texts (filled with the result's figures)."""
    texts = rule_set.tolerance.texts
    if result is not None:
        basis, within = result.basis, result.within
        values = result.display
    else:
        values = dict.fromkeys(TOLERANCE_PLACEHOLDERS, "—")
    head = texts[basis or "unknown"]
    out = {}
    for lang in ("zh", "en"):
        text = getattr(head, lang).format(**values)
        if within is not None:
            verdict = getattr(texts["within" if within else "outside"], lang)
            text = f"{text}：{verdict}" if lang == "zh" else f"{text}: {verdict}"
        out[lang] = text
    return out


def _tolerance_dict(result: ToleranceResult, form: str, rule_set: RuleSet) -> dict[str, Any]:
    out = {"form": form, **result.to_dict()}
    out["explanation"] = tolerance_explanation(result, rule_set)
    return out


def _plain_tolerance(form: str, within: bool | None, rule_set: RuleSet) -> dict[str, Any]:
    basis = "unknown" if within is None else "given"
    return {"form": form, "within": within, "basis": basis, "gap": None, "gap_pp": None,
            "margin": str(rule_set.tolerance.margin),
            "explanation": tolerance_explanation(None, rule_set, basis=basis, within=within)}


_RATIO_KEYS = {"sme_npl_ratio", "all_npl_ratio"}
_BALANCE_KEYS = {"all_balance", "all_npl_balance", "sme_balance", "sme_npl_balance"}
_TOLERANCE_FORMS = (
    '{"sme_npl_ratio": "0.0501", "all_npl_ratio": "0.0200"} (optionally "target"), '
    '{"all_balance", "all_npl_balance", "sme_balance", "sme_npl_balance"} (optionally "target"), '
    '{"within": true|false} or {"branch": "<code>", "period": "YYYY-MM-DD"}'
)

ToleranceResolver = Callable[[str, date], "bool | ToleranceResult"]


def resolve_tolerance(
    spec: Any, rule_set: RuleSet, tolerance_resolver: ToleranceResolver | None = None
) -> tuple[bool | None, dict[str, Any]]:
    """Read the `tolerance` member of a what-if request: (within or None if not given, the output dict).

    Raises ValidationFailed for a malformed spec, or the branch form without a resolver.
    """
    if spec is None:
        return None, _plain_tolerance("none", None, rule_set)
    if not isinstance(spec, Mapping):
        raise ValidationFailed(f"tolerance: must be an object, one of {_TOLERANCE_FORMS}", field="tolerance")
    keys = set(spec)
    margin = rule_set.tolerance.margin
    options = rule_set.tolerance.options
    if keys == {"within"}:
        if not isinstance(spec["within"], bool):
            raise ValidationFailed("tolerance.within: must be true or false", field="tolerance.within")
        return spec["within"], _plain_tolerance("given", spec["within"], rule_set)
    if keys == {"branch", "period"}:
        branch, period = spec["branch"], spec["period"]
        if not isinstance(branch, str) or not branch:
            raise ValidationFailed("tolerance.branch: must be a branch code", field="tolerance.branch")
        if not isinstance(period, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", period):
            raise ValidationFailed("tolerance.period: must be a date YYYY-MM-DD", field="tolerance.period")
        try:
            period_date = date.fromisoformat(period)
        except ValueError:
            raise ValidationFailed(f"tolerance.period: {period!r} is not a valid date",
                                   field="tolerance.period") from None
        if tolerance_resolver is None:
            raise ValidationFailed("tolerance: the branch form cannot be computed here (no loan book)",
                                   field="tolerance")
        resolved = tolerance_resolver(branch, period_date)
        if isinstance(resolved, ToleranceResult):
            out = _tolerance_dict(resolved, "branch", rule_set)
            within = resolved.within
        elif isinstance(resolved, bool):
            out = _plain_tolerance("branch", resolved, rule_set)
            within = resolved
        else:
            raise TypeError(f"tolerance_resolver returned {type(resolved).__name__}, not bool or ToleranceResult")
        out.update(branch=branch, period=period)
        return within, out
    extra = keys - _RATIO_KEYS - _BALANCE_KEYS - {"target"}
    if not extra and _RATIO_KEYS <= keys and not keys & _BALANCE_KEYS:
        result = from_ratios(_number(spec, "sme_npl_ratio"), _number(spec, "all_npl_ratio"), margin,
                             _number(spec, "target"), options=options)
        return result.within, _tolerance_dict(result, "ratios", rule_set)
    if not extra and _BALANCE_KEYS <= keys and not keys & _RATIO_KEYS:
        result = compute_tolerance(
            _number(spec, "all_balance"), _number(spec, "all_npl_balance"), _number(spec, "sme_balance"),
            _number(spec, "sme_npl_balance"), margin, _number(spec, "target"), options=options,
        )
        return result.within, _tolerance_dict(result, "balances", rule_set)
    raise ValidationFailed(
        f"tolerance: unexpected keys {sorted(keys)}; use one of {_TOLERANCE_FORMS}", field="tolerance"
    )


def _number(spec: Mapping[str, Any], key: str) -> Decimal | None:
    value = spec.get(key)
    if value is None:
        return None
    return parse_decimal(value, f"tolerance.{key}")


# ---------------------------------------------------------------------------------------------------------
# The what-if evaluation (§9)
# ---------------------------------------------------------------------------------------------------------


class _RespondentIn(_Input):
    id: str = Field(min_length=1)
    stages: list[dict[str, Any]] = Field(min_length=1)


class _EvaluationIn(_Input):
    rule_set: str = Field(default="current", min_length=1)
    tolerance: dict[str, Any] | None = None
    respondents: list[_RespondentIn] = Field(min_length=1)


def evaluate(
    request: Any,
    rule_set: RuleSet | Callable[[str], RuleSet],
    tolerance_resolver: ToleranceResolver | None = None,
) -> dict[str, Any]:
    """Answer a what-if evaluation (the stable JSON of domain.md §9).

    `rule_set` is the RuleSet to use (the request's "rule_set" must be "current" or its version), or a
    callable name → RuleSet that loads the version the request names (it may raise NotFound).
    `tolerance_resolver(branch_code, period_date)` → bool | ToleranceResult serves the branch form.
    Returns {"rule_set": version, "tolerance": {..., "within", "gap"}, "respondents": [{"id", "outcome",
    "sanctions", "stages": [{"stage", "outcome", "explanation"}]}]}.
    Raises ValidationFailed saying what is wrong (wrong types, unknown fields, codes or stages).
    """
    if not isinstance(request, Mapping):
        raise ValidationFailed("the evaluation request must be a JSON object")
    try:
        parsed = _EvaluationIn.model_validate(dict(request))
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc), errors=_errors(exc)) from None
    if isinstance(rule_set, RuleSet):
        if parsed.rule_set not in ("current", rule_set.version):
            raise ValidationFailed(
                f"rule_set: unknown rule set {parsed.rule_set!r} (use \"current\" or {rule_set.version!r})",
                field="rule_set", value=parsed.rule_set,
            )
        rs = rule_set
    else:
        rs = rule_set(parsed.rule_set)
        if not isinstance(rs, RuleSet):
            raise TypeError("the rule-set loader must return a RuleSet")
    ids = [r.id for r in parsed.respondents]
    for n, rid in enumerate(ids):
        if ids.index(rid) != n:
            raise ValidationFailed(f"respondents[{n}].id: {rid!r} is given twice", field=f"respondents[{n}].id")
    # Validate every fact before any computing (and before the tolerance resolver is asked).
    for n, respondent in enumerate(parsed.respondents):
        for m, stage in enumerate(respondent.stages):
            validate_facts(stage, rs, where=f"respondents[{n}].stages[{m}]")
    within, tolerance_out = resolve_tolerance(parsed.tolerance, rs, tolerance_resolver)
    respondents = [
        recommend_respondent(r.stages, rs, within, respondent_id=r.id, where=f"respondents[{n}]").to_dict()
        for n, r in enumerate(parsed.respondents)
    ]
    return {"rule_set": rs.version, "tolerance": tolerance_out, "respondents": respondents}


# ---------------------------------------------------------------------------------------------------------
# Scope, committee, appeal, batch
# ---------------------------------------------------------------------------------------------------------


def check_scope(loan: Mapping[str, Any], rule_set: RuleSet) -> None:
    """Check a loan is covered by the exemption rules (金规〔2024〕11号 scope).

    `loan` has "product_class", "credit_total" (the borrower's total credit, yuan) and optionally
    "borrower_kind". Raises OutOfScope (details: reason = "product_class" | "borrower_kind" |
    "credit_total") or ValidationFailed for missing or malformed fields.
    """
    if not isinstance(loan, Mapping):
        raise ValidationFailed("loan: must be an object")
    product_class = loan.get("product_class")
    if not isinstance(product_class, str) or not product_class:
        raise ValidationFailed("loan.product_class: required", field="product_class")
    if loan.get("credit_total") is None:
        raise ValidationFailed("loan.credit_total: required", field="credit_total")
    credit_total = parse_decimal(loan["credit_total"], "credit_total")
    scope = rule_set.scope
    product = scope.product_classes.get(product_class)
    if product is None:
        raise OutOfScope(
            f"product class {product_class!r} is not inclusive credit covered by {scope.source} "
            f"(covered: {', '.join(scope.product_classes)})",
            reason="product_class", value=product_class,
        )
    kind = loan.get("borrower_kind")
    if kind is not None and kind not in product.borrower_kinds:
        raise OutOfScope(
            f"borrower kind {kind!r} is not eligible for {product_class} "
            f"(eligible: {', '.join(product.borrower_kinds)})",
            reason="borrower_kind", value=kind,
        )
    if credit_total > product.credit_limit:
        raise OutOfScope(
            f"single-borrower credit total {credit_total:,} yuan is above the {product.credit_limit:,} yuan "
            f"limit for {product_class} ({scope.source})",
            reason="credit_total", value=str(credit_total), limit=str(product.credit_limit),
        )


def is_batch_eligible(amount: Any, rule_set: RuleSet) -> bool:
    """Whether a loan amount is under the batch threshold (responsibility must also be clear — not judged here)."""
    return parse_decimal(amount, "amount") < rule_set.batch.threshold_amount


def _check_outcome(outcome: Any, name: str) -> str:
    if outcome not in SEVERITY:
        raise ValidationFailed(f"{name}: unknown outcome {outcome!r} (known: {', '.join(OUTCOMES)})", value=outcome)
    return outcome


def appeal_outcome_allowed(appealed: str, new: str) -> bool:
    """An appeal may confirm or improve an outcome, never worsen it; raises ValidationFailed for unknown outcomes."""
    return SEVERITY[_check_outcome(new, "new")] <= SEVERITY[_check_outcome(appealed, "appealed")]


def quorum_reached(present: int, eligible: int, rule_set: RuleSet, body: CommitteeRules | None = None) -> bool:
    """Whether enough non-recused members are present (at least the quorum share of them, and for an appeal
    panel at least its `min_votes`). `body`: the committee whose rules apply (default: the deciding one)."""
    if present < 0 or eligible < 0 or present > eligible:
        raise ValidationFailed("present must be between 0 and the number of eligible members")
    if eligible == 0:
        return False
    body = body or rule_set.committee
    if present < getattr(body, "min_votes", 1):
        return False
    return Fraction(present, eligible) >= body.quorum_fraction


def appeal_rules(rule_set: RuleSet) -> AppealCommitteeRules:
    """The appeal committee's rules: the rule set's own, or (for a version without them) the deciding
    committee's quorum and majority with the default fewest votes."""
    if rule_set.appeal_committee is not None:
        return rule_set.appeal_committee
    return AppealCommitteeRules(**rule_set.committee.model_dump())


def appeal_votes_needed(eligible: int, rule_set: RuleSet) -> int:
    """How many of the `eligible` panel members must vote for the appeal panel's quorum."""
    body = appeal_rules(rule_set)
    needed = -(-body.quorum_fraction.numerator * eligible // body.quorum_fraction.denominator)
    return max(needed, body.min_votes)


def decide_by_votes(votes: Sequence[str], cast: int | None, rule_set: RuleSet,
                    body: CommitteeRules | None = None) -> str | None:
    """The outcome carrying the committee's majority of the votes cast, or None if none does.

    `votes` are the outcomes voted for; `cast` the number of votes cast (None: len(votes); more than
    len(votes) counts abstentions). Default: more than 1/2 of the votes cast.
    Raises ValidationFailed for an unknown outcome or `cast` below the number of votes.
    """
    for n, vote in enumerate(votes):
        _check_outcome(vote, f"votes[{n}]")
    cast = len(votes) if cast is None else cast
    if isinstance(cast, bool) or not isinstance(cast, int) or cast < len(votes):
        raise ValidationFailed(f"cast must be a whole number at least {len(votes)}, got {cast!r}")
    if cast == 0:
        return None
    committee = body or rule_set.committee
    needed = committee.majority_fraction
    carried = [
        outcome for outcome in OUTCOMES
        if (share := Fraction(sum(1 for v in votes if v == outcome), cast)) > needed
        or (not committee.majority_strict and share == needed)
    ]
    # Two outcomes can both reach a non-strict half: then no outcome carries the majority.
    return carried[0] if len(carried) == 1 else None


@dataclass(frozen=True)
class PanelTally:
    """Where an appeal panel's votes stand: who may vote, how many voted and must, what the votes carry."""

    eligible: int
    voted: int
    needed: int
    counts: dict[str, int]
    carried: str | None  # the outcome the majority carries once the quorum is reached, else None

    @property
    def quorum(self) -> bool:
        return self.eligible > 0 and self.voted >= self.needed


def appeal_panel_tally(outcomes: Sequence[str], eligible: int, rule_set: RuleSet) -> PanelTally:
    """The tally of an appeal panel: `outcomes` are the outcomes its non-recused members voted for (one each:
    the appealed outcome for "uphold"), `eligible` how many non-recused members it has.

    The votes carry an outcome only when the quorum is reached (at least the quorum share of the eligible
    members and at least `min_votes` of them) and one outcome has the majority of the votes cast.
    """
    body = appeal_rules(rule_set)
    needed = appeal_votes_needed(eligible, rule_set)
    voted = len(outcomes)
    counts = {o: sum(1 for v in outcomes if v == o) for o in OUTCOMES}
    quorum = eligible > 0 and voted >= needed and quorum_reached(voted, eligible, rule_set, body)
    carried = decide_by_votes(list(outcomes), None, rule_set, body) if quorum else None
    return PanelTally(eligible=eligible, voted=voted, needed=needed, counts=counts, carried=carried)
