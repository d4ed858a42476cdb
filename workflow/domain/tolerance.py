"""NPL tolerance (不良容忍度) in exact Decimal arithmetic (domain.md §7).

A branch is within tolerance when its inclusive SME NPL ratio exceeds its all-loans NPL ratio by no more than
the rule set's margin (3 percentage points by default, inclusive), or — when head office has set it an
absolute target (差异化目标, 银监发〔2015〕38号 四) — when its SME NPL ratio does not exceed that target.
A branch with no SME loans, or no loans at all, is within tolerance.

Ratios are fractions (0.0501, not 5.01): computed from balances, never from averages, kept unrounded; the
test compares exact rationals; only `display` rounds (to 2 decimals of a percent). Nothing here reads a
database: the service layer sums the balances and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from typing import Any

from .errors import ValidationFailed

# Why each result is what it is; rule sets carry a text for each key.
BASES = ("no_loans", "no_sme_loans", "gap", "target")

_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
_PRECISION = 50  # digits for ratios: far beyond any balance, so rounding never decides a comparison
_NO_VALUE = "—"


def parse_decimal(value: Any, name: str) -> Decimal:
    """A finite Decimal from a Decimal, int, float or numeric string; raises ValidationFailed otherwise."""
    if isinstance(value, bool):
        raise ValidationFailed(f"{name} must be a number, not a boolean", field=name)
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(repr(value))  # the shortest repr: 0.0501 stays 0.0501
        elif isinstance(value, str):
            result = Decimal(value.strip())
        else:
            raise ValidationFailed(
                f"{name} must be a number or a numeric string, got {type(value).__name__}", field=name
            )
    except InvalidOperation:
        raise ValidationFailed(f"{name} is not a number: {value!r}", field=name) from None
    if not result.is_finite():
        raise ValidationFailed(f"{name} must be a finite number, got {value!r}", field=name)
    return result


def percent(ratio: Decimal | None) -> str:
    """A fraction shown as a percent with 2 decimals (0.0501 → '5.01%'); '—' when there is no ratio."""
    if ratio is None:
        return _NO_VALUE
    return f"{(ratio * _HUNDRED).quantize(_CENT, rounding=ROUND_HALF_UP)}%"


def points(value: Decimal | None) -> str:
    """Percentage points with 2 decimals (Decimal('3.005') → '3.01'); '—' when there is none."""
    if value is None:
        return _NO_VALUE
    return str(value.quantize(_CENT, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class ToleranceResult:
    """The tolerance test for one branch and period, with every figure it used (to freeze into a case).

    `basis` says which test decided: "no_loans", "no_sme_loans", "gap" or "target". Balances are None
    when the result was made from ratios. `gap` is a fraction (sme_ratio − all_ratio), `gap_pp` the same
    in percentage points; both None when there is no SME ratio or no all-loans ratio.
    """

    within: bool
    basis: str
    margin: Decimal
    all_balance: Decimal | None = None
    all_npl_balance: Decimal | None = None
    sme_balance: Decimal | None = None
    sme_npl_balance: Decimal | None = None
    all_ratio: Decimal | None = None
    sme_ratio: Decimal | None = None
    gap: Decimal | None = None
    gap_pp: Decimal | None = None
    target: Decimal | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reason_code(self) -> str:
        """Why the branch is within (or outside), for people: the basis, except that a gap test over a book of
        inclusive SME loans only compares the SME ratio with itself ("only_sme_loans": the gap test does not
        apply, the branch is within by construction)."""
        if self.basis == "gap" and self.all_balance is not None and self.all_balance == self.sme_balance:
            return "only_sme_loans"
        return self.basis

    @property
    def display(self) -> dict[str, str]:
        """Figures for people: ratios as percents to 2 decimals, the gap and margin in points."""
        return {
            "all_ratio": percent(self.all_ratio),
            "sme_ratio": percent(self.sme_ratio),
            "gap_pp": points(self.gap_pp),
            "margin_pp": points(self.margin * _HUNDRED),
            "target": percent(self.target),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; every Decimal as a string, so nothing is lost in the frozen snapshot."""
        out: dict[str, Any] = {"within": self.within, "basis": self.basis, "reason_code": self.reason_code}
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            out[name] = None if value is None else str(value)
        out["options"] = dict(self.options)
        out["display"] = self.display
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToleranceResult:
        """Rebuild a result frozen by `to_dict` (the `display` key is derived and ignored)."""
        if not isinstance(data, dict):
            raise ValidationFailed("a tolerance snapshot must be an object")
        if not isinstance(data.get("within"), bool) or data.get("basis") not in BASES:
            raise ValidationFailed("a tolerance snapshot needs a boolean 'within' and a known 'basis'")
        values = {
            name: None if data.get(name) is None else parse_decimal(data[name], name) for name in _DECIMAL_FIELDS
        }
        if values["margin"] is None:
            raise ValidationFailed("a tolerance snapshot needs its 'margin'")
        return cls(within=data["within"], basis=data["basis"], options=dict(data.get("options") or {}), **values)


_DECIMAL_FIELDS = (
    "all_balance", "all_npl_balance", "sme_balance", "sme_npl_balance",
    "all_ratio", "sme_ratio", "gap", "gap_pp", "margin", "target",
)


def _fraction_between_0_and_1(value: Any, name: str) -> Decimal:
    result = parse_decimal(value, name)
    if not Decimal(0) <= result <= Decimal(1):
        raise ValidationFailed(f"{name} must be a fraction between 0 and 1 (0.03 = 3 pp), got {value!r}", field=name)
    return result


def _non_negative(value: Any, name: str) -> Decimal:
    result = parse_decimal(value, name)
    if result < 0:
        raise ValidationFailed(f"{name} must not be negative, got {value!r}", field=name)
    return result


def _ratio(npl: Decimal, balance: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return npl / balance


def _difference(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return a - b


def _decide(
    sme: Fraction | None, all_: Fraction | None, margin: Decimal, target: Decimal | None
) -> tuple[bool, str]:
    """Within tolerance, and why; compares exact rationals so that +3.00 pp is within and +3.0000…1 is not."""
    if sme is None and all_ is None:
        return True, "no_loans"
    if sme is None:
        return True, "no_sme_loans"
    if target is not None:
        return sme <= Fraction(target), "target"
    assert all_ is not None
    return sme - all_ <= Fraction(margin), "gap"


def compute_tolerance(
    all_balance: Any,
    all_npl: Any,
    sme_balance: Any,
    sme_npl: Any,
    margin: Any,
    target: Any = None,
    *,
    options: dict[str, Any] | None = None,
) -> ToleranceResult:
    """The tolerance test from balances (all loans, their NPLs, inclusive SME loans, their NPLs).

    `margin` and `target` are fractions (0.03 = 3 pp). With a target, within ⇔ SME ratio ≤ target;
    otherwise within ⇔ SME ratio − all-loans ratio ≤ margin. `options` (period basis, written-off add-back)
    are recorded, not applied: the caller applied them when summing the balances.
    Raises ValidationFailed for non-numbers, negative balances or inconsistent balances (an NPL balance above
    its loan balance, SME figures above the all-loans figures).
    """
    all_balance = _non_negative(all_balance, "all_balance")
    all_npl = _non_negative(all_npl, "all_npl_balance")
    sme_balance = _non_negative(sme_balance, "sme_balance")
    sme_npl = _non_negative(sme_npl, "sme_npl_balance")
    margin = _fraction_between_0_and_1(margin, "margin")
    target = None if target is None else _fraction_between_0_and_1(target, "target")
    if all_npl > all_balance:
        raise ValidationFailed("all_npl_balance is larger than all_balance", field="all_npl_balance")
    if sme_npl > sme_balance:
        raise ValidationFailed("sme_npl_balance is larger than sme_balance", field="sme_npl_balance")
    if sme_balance > all_balance:
        raise ValidationFailed("sme_balance is larger than all_balance (SME loans are part of all loans)",
                               field="sme_balance")
    if sme_npl > all_npl:
        raise ValidationFailed("sme_npl_balance is larger than all_npl_balance (SME NPLs are part of all NPLs)",
                               field="sme_npl_balance")

    all_ratio = _ratio(all_npl, all_balance) if all_balance else None
    sme_ratio = _ratio(sme_npl, sme_balance) if sme_balance else None
    within, basis = _decide(
        Fraction(sme_npl) / Fraction(sme_balance) if sme_balance else None,
        Fraction(all_npl) / Fraction(all_balance) if all_balance else None,
        margin,
        target,
    )
    gap = _difference(sme_ratio, all_ratio) if sme_ratio is not None and all_ratio is not None else None
    return ToleranceResult(
        within=within, basis=basis, margin=margin, target=target,
        all_balance=all_balance, all_npl_balance=all_npl, sme_balance=sme_balance, sme_npl_balance=sme_npl,
        all_ratio=all_ratio, sme_ratio=sme_ratio,
        gap=gap, gap_pp=None if gap is None else gap * _HUNDRED,
        options=dict(options or {}),
    )


def from_ratios(
    sme_ratio: Any, all_ratio: Any, margin: Any, target: Any = None, *, options: dict[str, Any] | None = None
) -> ToleranceResult:
    """The tolerance test from two ratios given as fractions (the §9 form {"sme_npl_ratio", "all_npl_ratio"}).

    None for `sme_ratio` means no SME loans; None for both means no loans at all.
    Raises ValidationFailed for non-numbers, ratios outside [0, 1], or an SME ratio without an all-loans one.
    """
    sme = None if sme_ratio is None else _fraction_between_0_and_1(sme_ratio, "sme_npl_ratio")
    all_ = None if all_ratio is None else _fraction_between_0_and_1(all_ratio, "all_npl_ratio")
    margin = _fraction_between_0_and_1(margin, "margin")
    target = None if target is None else _fraction_between_0_and_1(target, "target")
    if sme is not None and all_ is None:
        raise ValidationFailed("an SME NPL ratio needs the all-loans NPL ratio beside it", field="all_npl_ratio")
    within, basis = _decide(
        None if sme is None else Fraction(sme), None if all_ is None else Fraction(all_), margin, target
    )
    gap = _difference(sme, all_) if sme is not None and all_ is not None else None
    return ToleranceResult(
        within=within, basis=basis, margin=margin, target=target, all_ratio=all_, sme_ratio=sme,
        gap=gap, gap_pp=None if gap is None else gap * _HUNDRED, options=dict(options or {}),
    )
