"""Segregation-of-duties and role checks: pure functions of plain values."""

from __future__ import annotations

from collections.abc import Collection


def has_role(roles: Collection[str], *wanted: str) -> bool:
    """Whether any of `wanted` is among `roles`."""
    return any(r in roles for r in wanted)


def in_subtree(branch_path: str, scope_path: str) -> bool:
    """Whether a branch (by materialised path) lies in the subtree rooted at `scope_path`."""
    return branch_path.startswith(scope_path)


def recusal_reason(user_id: int, *, respondent_ids: Collection[int], investigator_id: int | None,
                   loan_handler_ids: Collection[int]) -> str | None:
    """Why a committee member may not vote on a case, or None if they may."""
    if user_id in respondent_ids:
        return "a respondent may not vote on their own case"
    if investigator_id is not None and user_id == investigator_id:
        return "the case's investigator may not vote on it"
    if user_id in loan_handler_ids:
        return "a member who handled a stage of the case's loans must recuse"
    return None


def appeal_reviewer_conflict(user_id: int, *, respondent_ids: Collection[int], decider_ids: Collection[int],
                             investigator_id: int | None) -> str | None:
    """Why a user may not review the case's appeals, or None if they may."""
    if user_id in respondent_ids:
        return "a respondent may not review appeals in their own case"
    if user_id in decider_ids:
        return "the original deciders may not review the appeal"
    if investigator_id is not None and user_id == investigator_id:
        return "the case's investigator may not review its appeals"
    return None
