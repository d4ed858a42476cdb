"""The consequences of a determination for HR (pure): the kinds of sanction recorded back from the
accountability procedure, the month a deduction is applied in, and when (and how much) a deduction is
refunded after an appeal decision or a re-determination improved the outcome it was applied for.

A deduction (扣发) is applied for the outcome in force when it was recorded (its basis). When a later decision
leaves the person with a less severe outcome, the part of the deduction that the new outcome no longer
carries is refunded (返还): the economic penalty factors of the rule set's sanctions say how much each outcome
carries (default: liable 1, reduced 0.5, exempt 0), so liable → exempt refunds all of it, liable → reduced half.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .errors import ValidationFailed
from .states import SEVERITY

# Administrative sanctions (行政处分) and the lighter organisational measures banks record with them, by code.
SANCTION_TYPES: dict[str, dict[str, str]] = {
    "none": {"zh": "无", "en": "None"},
    "criticism": {"zh": "通报批评", "en": "Circulated criticism"},
    "warning": {"zh": "警告", "en": "Warning"},
    "demerit": {"zh": "记过", "en": "Demerit"},
    "major_demerit": {"zh": "记大过", "en": "Major demerit"},
    "demotion": {"zh": "降级", "en": "Demotion"},
    "removal": {"zh": "撤职", "en": "Removal from post"},
    "probation": {"zh": "留用察看", "en": "Probation"},
    "dismissal": {"zh": "开除", "en": "Dismissal"},
}
# The decisions that can improve an outcome after a deduction, and their labels.
IMPROVING_DECISIONS: dict[str, dict[str, str]] = {
    "appeal_decision": {"zh": "申诉复核决定", "en": "Appeal decision"},
    "redetermination": {"zh": "重新认定", "en": "Re-determination"},
}
MAX_POINTS = 100
MAX_AMOUNT = Decimal("10000000")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_CENT = Decimal("0.01")


def parse_month(text: str | None, field: str = "month") -> str:
    """A month as YYYY-MM (the month a deduction is applied in, or an export's month).

    Raises ValidationFailed for anything else."""
    m = _MONTH.match((text or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise ValidationFailed("the month must be given as YYYY-MM", field=field)
    return m.group(0)


def month_of(day: date) -> str:
    """The YYYY-MM month of a date."""
    return f"{day.year:04d}-{day.month:02d}"


def improves(before: str | None, after: str | None) -> bool:
    """Whether `after` is a less severe outcome than `before`."""
    return before in SEVERITY and after in SEVERITY and SEVERITY[after] < SEVERITY[before]


def refund_due(deducted: Decimal, refunded: Decimal, basis_factor: Decimal, new_factor: Decimal) -> Decimal:
    """What is refunded of a deduction `deducted` (of which `refunded` was refunded already) when the outcome
    it was applied for (economic penalty factor `basis_factor`) becomes one with `new_factor`: the deduction
    the new outcome still carries is kept, the rest returned; never negative, in fen."""
    deducted, refunded = Decimal(deducted), Decimal(refunded)
    basis_factor, new_factor = Decimal(basis_factor), Decimal(new_factor)
    keep = deducted if basis_factor == 0 else deducted * min(new_factor / basis_factor, Decimal(1))
    due = (deducted - keep.quantize(_CENT, rounding=ROUND_HALF_UP)) - refunded
    return max(due, Decimal(0)).quantize(_CENT)


def validate_sanction(points: int | None, sanction_type: str | None, amount: Decimal | str | None,
                      month: str | None) -> tuple[int, str, Decimal, str | None]:
    """Check the accountability result for one person: points deducted (whole, 0–100), the sanction type (a
    code of SANCTION_TYPES), the amount deducted in yuan (≥ 0, two decimals at most) and the month it is applied
    in (required when an amount is deducted). Returns them normalised.

    Raises ValidationFailed naming the field."""
    try:
        pts = int(points or 0)
    except (TypeError, ValueError):
        raise ValidationFailed("the points deducted must be a whole number", field="points") from None
    if not 0 <= pts <= MAX_POINTS:
        raise ValidationFailed("the points deducted must be between 0 and 100", field="points")
    kind = (sanction_type or "none").strip()
    if kind not in SANCTION_TYPES:
        raise ValidationFailed("unknown sanction type", field="sanction_type")
    text = str(amount if amount is not None else "0").strip().replace(",", "") or "0"
    if not re.fullmatch(r"\d{1,9}(\.\d{1,2})?", text):
        raise ValidationFailed("the amount deducted must be in yuan with at most two decimals", field="amount")
    money = Decimal(text).quantize(_CENT)
    if money > MAX_AMOUNT:
        raise ValidationFailed("the amount deducted is too large", field="amount")
    applied = parse_month(month, "month") if (month or "").strip() else None
    if money > 0 and applied is None:
        raise ValidationFailed("say in which month the amount is deducted", field="month")
    if pts == 0 and kind == "none" and money == 0:
        raise ValidationFailed("record at least one sanction: points, a sanction type or an amount", field="points")
    return pts, kind, money, applied
