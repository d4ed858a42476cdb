"""The right to be heard (domain.md §13): each respondent is invited to file an exemption statement.

Registration gives every respondent a deadline (the rule set's `statement` time limit, in working days; a
bank-policy default). The investigation may be submitted once every respondent has filed a statement,
declined to file one, or let the deadline pass; the record then says which of these each one did.
"""

from __future__ import annotations

from datetime import date, datetime

FILED = "filed"
DECLINED = "declined"
AWAITED = "awaited"  # invited, the deadline not yet passed, neither filed nor declined
LAPSED = "lapsed"  # the deadline passed without a statement or a refusal
NOT_INVITED = "not_invited"  # a respondent of a case registered before invitations (no deadline recorded)

POSITIONS: tuple[str, ...] = (FILED, DECLINED, AWAITED, LAPSED, NOT_INVITED)

POSITION_LABELS: dict[str, dict[str, str]] = {
    FILED: {"zh": "已提交免责陈述", "en": "Statement filed"},
    DECLINED: {"zh": "书面表示不提交陈述", "en": "Declined to file a statement"},
    AWAITED: {"zh": "陈述期限未届满，等待陈述", "en": "Awaited: the deadline has not passed"},
    LAPSED: {"zh": "逾期未提交陈述", "en": "Let the deadline pass without a statement"},
    NOT_INVITED: {"zh": "未设陈述期限（立案早于陈述邀请）", "en": "No deadline (registered before invitations)"},
}


def position(statement_at: datetime | None, declined_at: datetime | None, due: date | None, today: date) -> str:
    """Where a respondent stands on their statement on `today`.

    A filed statement counts whatever came before (a respondent who declined may still file until the
    investigation is submitted). The deadline is inclusive: the respondent has the whole of the due day.
    """
    if statement_at is not None:
        return FILED
    if declined_at is not None:
        return DECLINED
    if due is None:
        return NOT_INVITED
    return AWAITED if today <= due else LAPSED


def heard(positions) -> bool:
    """Whether the investigation may be submitted: nobody's statement is still awaited."""
    return all(p != AWAITED for p in positions)
