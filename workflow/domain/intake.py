"""NPL intake (自动触发): non-performing loans awaiting an exemption case, and why a case is not opened.

A loan is on the intake list while it is non-performing (次级, 可疑, 损失), belongs to no case that was not
withdrawn, and nobody recorded why no case is opened for it. The list is grouped by enterprise: the loans
of one enterprise are considered together in one case (统一合并考量, domain.md §13).
"""

from __future__ import annotations

NPL_CLASSES: tuple[str, ...] = ("substandard", "doubtful", "loss")

# Why no case is opened for a loan on the intake list; "other" needs a note.
DISMISSAL_REASONS: dict[str, dict[str, str]] = {
    "recovered": {"zh": "已收回或已正常化", "en": "Recovered or back to performing"},
    "out_of_scope": {"zh": "不属于尽职免责适用范围", "en": "Outside the exemption rules' scope"},
    "merged": {"zh": "已并入其他案件考量", "en": "Considered in another case"},
    "other": {"zh": "其他原因（须说明）", "en": "Other (explained in the note)"},
}
NOTE_MAX = 500


def entered_npl(before: str | None, after: str) -> bool:
    """Whether a loan's classification moved into a non-performing class (a new loan counts from None)."""
    return after in NPL_CLASSES and (before is None or before not in NPL_CLASSES)
