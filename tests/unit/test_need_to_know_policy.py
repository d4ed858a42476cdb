"""The need-to-know rule of the policy (domain.md §13): a respondent reads their own part and the tally."""

from __future__ import annotations

from workflow.domain import policy

CASE = policy.CaseView(case_id=1, state="final", branch_id=2, branch_path="/1/2/", investigator_id=30,
                       respondent_user_ids=frozenset({10, 11}), respondent_of_user=((10, 100), (11, 101)))


def _actor(user_id: int, *roles: str, level: int = 1, path: str = "/1/2/") -> policy.Actor:
    return policy.Actor(id=user_id, roles=frozenset(roles), branch_id=2, branch_path=path, branch_level=level)


def test_a_respondent_sees_only_their_own_part_and_not_the_named_votes():
    me = _actor(10, "credit_officer")
    assert policy.visible_respondent_ids(me, CASE) == frozenset({100})
    assert policy.why_not_see(me, CASE, 100) is None
    assert policy.why_not_see(me, CASE, 101).code == "need_to_know"
    assert policy.why_not_see(me, CASE, None) is None  # case-wide material (evidence on the loans)
    assert not policy.sees_named_votes(me, CASE)


def test_a_respondent_reads_their_letters_and_the_publicity_notice_only():
    me = _actor(10, "credit_officer")
    assert policy.why_not_read_document(me, CASE, "determination", 100) is None
    assert policy.why_not_read_document(me, CASE, "publicity_notice", None) is None
    for kind, rid in (("determination", 101), ("appeal_record", 101), ("minutes", None),
                      ("investigation_report", None), ("referral", None), ("batch_report", None)):
        assert policy.why_not_read_document(me, CASE, kind, rid) == policy.NEED_TO_KNOW, kind


def test_a_respondent_with_a_wider_role_is_a_respondent_first():
    me = _actor(11, "credit_officer", "auditor", "admin", "committee_chair", level=0, path="/1/")
    assert policy.visible_respondent_ids(me, CASE) == frozenset({101})
    assert policy.why_not_see(me, CASE, 100) == policy.NEED_TO_KNOW


def test_the_committee_the_investigator_audit_and_administrators_see_all():
    for who in (_actor(20, "committee_member"), _actor(21, "committee_chair"), _actor(30, "investigator"),
                _actor(40, "auditor", level=0, path="/1/"), _actor(50, "admin")):
        assert policy.visible_respondent_ids(who, CASE) is None
        assert policy.sees_named_votes(who, CASE)
        assert policy.why_not_see(who, CASE, 101) is None
        assert policy.why_not_read_document(who, CASE, "minutes", None) is None


def test_outside_the_scope_nothing_is_readable():
    stranger = _actor(60, "credit_officer", path="/1/3/")
    assert policy.why_not_see(stranger, CASE, 100) == policy.OUT_OF_SCOPE
    assert policy.why_not_read_document(stranger, CASE, "publicity_notice", None) == policy.OUT_OF_SCOPE
