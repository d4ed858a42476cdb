"""Who may grant which roles where: the accounts section of the policy, with no app and no database."""

from __future__ import annotations

import pytest

from workflow.domain import policy
from workflow.domain.errors import PermissionDenied

HEAD_OFFICE_ADMIN = policy.Actor(id=1, roles=frozenset({"admin"}), branch_id=1, branch_path="/1/", branch_level=0)
BRANCH_ADMIN = policy.Actor(id=2, roles=frozenset({"admin"}), branch_id=2, branch_path="/1/2/", branch_level=1)
CHAIR = policy.Actor(id=3, roles=frozenset({"committee_chair"}), branch_id=2, branch_path="/1/2/", branch_level=1)
HEAD_OFFICE, T1, SUB_BRANCH, T2 = "/1/", "/1/2/", "/1/2/3/", "/1/4/"

GRANTS = [
    # (actor, roles wanted, at branch, roles held before, refusal or None)
    (HEAD_OFFICE_ADMIN, {"auditor"}, HEAD_OFFICE, (), None),
    (HEAD_OFFICE_ADMIN, {"admin"}, HEAD_OFFICE, (), None),
    (HEAD_OFFICE_ADMIN, {"admin"}, T2, (), None),
    (BRANCH_ADMIN, {"admin"}, SUB_BRANCH, (), None),
    (BRANCH_ADMIN, {"admin", "investigator"}, T1, {"investigator"}, None),
    (BRANCH_ADMIN, {"auditor"}, SUB_BRANCH, (), policy.BANK_WIDE_ROLE),
    (BRANCH_ADMIN, {"auditor"}, T1, {"credit_officer"}, policy.BANK_WIDE_ROLE),
    (BRANCH_ADMIN, {"credit_officer"}, T1, {"auditor"}, policy.BANK_WIDE_ROLE),  # nor takes it away
    (BRANCH_ADMIN, {"auditor", "admin"}, T1, {"auditor"}, None),  # held already, left as it is
    (BRANCH_ADMIN, {"admin"}, HEAD_OFFICE, (), policy.OUTSIDE_SUBTREE),
    (BRANCH_ADMIN, {"admin"}, T2, (), policy.OUTSIDE_SUBTREE),
    (BRANCH_ADMIN, {"credit_officer"}, T2, (), policy.OUTSIDE_SUBTREE),
    (CHAIR, {"credit_officer"}, T1, (), policy.NOT_ADMIN),
    (HEAD_OFFICE_ADMIN, {"auditor", "committee_member"}, HEAD_OFFICE, (), policy.AUDIT_INDEPENDENCE),
    (HEAD_OFFICE_ADMIN, {"auditor", "committee_chair"}, HEAD_OFFICE, (), policy.AUDIT_INDEPENDENCE),
    (HEAD_OFFICE_ADMIN, {"auditor", "investigator"}, HEAD_OFFICE, {"auditor"}, policy.AUDIT_INDEPENDENCE),
    (HEAD_OFFICE_ADMIN, {"auditor", "appeal_reviewer"}, HEAD_OFFICE, (), policy.AUDIT_INDEPENDENCE),
    (HEAD_OFFICE_ADMIN, {"auditor", "admin"}, HEAD_OFFICE, (), None),
    (BRANCH_ADMIN, {"investigator", "committee_member"}, T1, (), None),
]


@pytest.mark.parametrize("actor,roles,branch_path,before,expected", GRANTS)
def test_nobody_grants_a_role_or_a_branch_wider_than_their_own_scope(actor, roles, branch_path, before, expected):
    assert policy.why_not_grant(actor, roles, branch_path=branch_path, before=before) == expected


def test_only_a_head_office_administrator_may_grant_the_bank_wide_auditor_role():
    assert policy.may_grant(HEAD_OFFICE_ADMIN, "auditor") and not policy.may_grant(BRANCH_ADMIN, "auditor")
    assert policy.may_grant(BRANCH_ADMIN, "admin") and policy.may_grant(BRANCH_ADMIN, "investigator")
    assert not policy.may_grant(CHAIR, "credit_officer")


def test_a_refused_grant_raises_permission_denied_with_the_refusals_code():
    with pytest.raises(PermissionDenied) as caught:
        policy.require_grant(BRANCH_ADMIN, {"auditor"}, branch_path=T1)
    assert caught.value.details["reason"] == "bank_wide_role"
    assert caught.value.message == policy.BANK_WIDE_ROLE.message
