"""Stand-ins (issue 19, point 8): a committee member or chair names a stand-in for a period; the stand-in votes
(and, for the chair, signs) "on behalf of" the principal within the period, and is refused after it, when
revoked, or when conflicted on the case; the power is never passed on; naming and revoking are audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from tests.authority_support import add_deputy, respondent_ids
from tests.factories import TODAY, drive
from workflow.db import unit_of_work
from workflow.domain.errors import ConflictError, PermissionDenied, ValidationFailed
from workflow.models import AuditEvent, Case, Letter, StandIn, Vote
from workflow.services import cases, integrity, letters, stand_ins


def _name(bank, principal: str, stand_in: str, starts=TODAY, ends=TODAY + timedelta(days=10), reason="出差两周"):
    with unit_of_work(bank.engine) as s:
        return stand_ins.name_stand_in(s, bank.user(s, principal), bank.users[stand_in], starts, ends, reason).id


def _vote(bank, case_id: int, who: str, outcome: str = "exempt", **kw):
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        return [cases.record_vote(s, case, bank.user(s, who), rid, outcome, **kw).id
                for rid in respondent_ids(s, case_id)]


@pytest.fixture
def review(bank):
    add_deputy(bank)
    return drive(bank, "under_review")


def test_a_stand_in_votes_on_behalf_of_the_member_within_the_period(bank, review):
    _name(bank, "member1", "deputy")
    vote_ids = _vote(bank, review, "deputy")
    with Session(bank.engine) as s:
        votes = [s.get(Vote, v) for v in vote_ids]
        assert {(v.member_id, v.on_behalf_of_id, v.seat_id) for v in votes} == {
            (bank.users["deputy"], bank.users["member1"], bank.users["member1"])}
        events = s.exec(select(AuditEvent).where(AuditEvent.case_id == review, AuditEvent.event == "record_vote",
                                                 AuditEvent.actor == "deputy")).all()
        assert events and all(e.payload["on_behalf_of"] == "member1" and e.payload["on_behalf_of_name"] == "钱七"
                              for e in events)
    # The principal's own later vote replaces the stand-in's: one seat, one vote.
    _vote(bank, review, "member1", "reduced")
    with Session(bank.engine) as s:
        valid = s.exec(select(Vote).where(Vote.case_id == review, Vote.invalidated_at.is_(None))).all()
        assert [v.outcome for v in valid if v.seat_id == bank.users["member1"]] == ["reduced"] * len(vote_ids)


def test_the_stand_in_fills_the_principals_seat_for_the_quorum_and_the_chairs_stand_in_signs(bank, review):
    _name(bank, "chair", "deputy")
    _vote(bank, review, "member1")
    _vote(bank, review, "member2")
    _vote(bank, review, "deputy")  # the chair's vote, by the stand-in
    with unit_of_work(bank.engine) as s:
        cases.determine(s, s.get(Case, review), bank.user(s, "deputy"))
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, review)
        assert case.state == "determined"
        event = s.exec(select(AuditEvent).where(AuditEvent.case_id == review, AuditEvent.event == "determine")).one()
        assert (event.actor, event.payload["on_behalf_of"]) == ("deputy", "chair")
        minutes = letters.minutes_data(s, case)
        names = [v["member"] for r in minutes["respondents"] for v in r["votes"]]
        assert "许代（代周九）" in names
        # the business tables still re-derive from the audit chain (votes keyed by the seat they fill)
        assert [p for p in integrity.verify(s, None).problems if "vote" in p] == []


def test_a_stand_in_is_refused_after_the_period_and_once_revoked(bank, review):
    row_id = _name(bank, "member1", "deputy")
    with unit_of_work(bank.engine) as s:  # the period has passed (the clock moves on past its last day)
        row = s.get(StandIn, row_id)
        row.starts_on, row.ends_on = TODAY - timedelta(days=20), TODAY - timedelta(days=1)
        s.add(row)
    with pytest.raises(PermissionDenied) as refused:
        _vote(bank, review, "deputy")
    assert refused.value.details["reason"] == "not_committee"
    with unit_of_work(bank.engine) as s:
        row = s.get(StandIn, row_id)
        row.starts_on, row.ends_on = TODAY, TODAY
        s.add(row)
    _vote(bank, review, "deputy")  # within it again
    with unit_of_work(bank.engine) as s:
        stand_ins.revoke_stand_in(s, bank.user(s, "member1"), row_id)
    with pytest.raises(PermissionDenied):
        _vote(bank, review, "deputy")
    with Session(bank.engine) as s:
        events = [e.event for e in s.exec(select(AuditEvent).where(AuditEvent.case_id.is_(None),
                                                                   AuditEvent.event.like("%stand_in")))]
        assert events == ["name_stand_in", "revoke_stand_in"]


def test_a_stand_in_conflicted_on_the_case_is_refused(bank, review):
    _name(bank, "member1", "investigator")  # the case's investigator, of the same branch
    with pytest.raises(PermissionDenied) as refused:
        _vote(bank, review, "investigator")
    assert refused.value.details["reason"] == "stand_in_conflicted"
    assert "investigator" in refused.value.message
    _name(bank, "member2", "approver")  # a respondent of the case (handled its approval stage)
    with pytest.raises(PermissionDenied) as refused:
        _vote(bank, review, "approver")
    assert refused.value.details["reason"] == "own_case"


def test_a_stand_in_is_never_passed_on(bank, review):
    _name(bank, "member1", "deputy")
    add_deputy(bank, "second", "二代")
    with unit_of_work(bank.engine) as s, pytest.raises(PermissionDenied) as refused:
        stand_ins.name_stand_in(s, bank.user(s, "deputy"), bank.users["second"], TODAY, TODAY, "再转")
    assert refused.value.details["reason"] == "passed_on"
    # nor named for someone who is away themselves, nor for oneself, outside the branch, or an auditor
    _name(bank, "member2", "chair", reason="休假")
    with unit_of_work(bank.engine) as s, pytest.raises(PermissionDenied) as refused:
        stand_ins.name_stand_in(s, bank.user(s, "chair"), bank.users["member2"], TODAY, TODAY, "请代")
    assert refused.value.details["reason"] in ("stand_in_away", "passed_on")
    for who, code in (("member2", "stand_in_self"), ("other_member", "stand_in_branch"), ("officer", "stand_in_branch")):
        with unit_of_work(bank.engine) as s, pytest.raises(PermissionDenied) as refused:
            stand_ins.name_stand_in(s, bank.user(s, "member2"), bank.users[who], TODAY, TODAY, "请代")
        assert refused.value.details["reason"] in (code, "passed_on")


def test_naming_needs_a_reason_and_a_period_that_has_not_ended_and_does_not_overlap(bank, review):
    with unit_of_work(bank.engine) as s:
        member = bank.user(s, "member1")
        with pytest.raises(ValidationFailed):
            stand_ins.name_stand_in(s, member, bank.users["deputy"], TODAY, TODAY, " ")
        with pytest.raises(ValidationFailed):
            stand_ins.name_stand_in(s, member, bank.users["deputy"], TODAY - timedelta(days=3),
                                    TODAY - timedelta(days=1), "补登")
        with pytest.raises(ValidationFailed):
            stand_ins.name_stand_in(s, member, bank.users["deputy"], TODAY, TODAY - timedelta(days=1), "倒置")
    _name(bank, "member1", "deputy")
    with unit_of_work(bank.engine) as s, pytest.raises(ConflictError):
        stand_ins.name_stand_in(s, bank.user(s, "member1"), bank.users["deputy"], TODAY + timedelta(days=5),
                                TODAY + timedelta(days=30), "重叠")
    with unit_of_work(bank.engine) as s, pytest.raises(PermissionDenied) as refused:
        stand_ins.revoke_stand_in(s, bank.user(s, "member2"), s.exec(select(StandIn)).first().id)
    assert refused.value.details["reason"] == "not_your_stand_in"


def test_the_minutes_name_the_stand_in_on_behalf_of_the_member(bank, review):
    _name(bank, "member1", "deputy")
    _vote(bank, review, "deputy")
    _vote(bank, review, "member2")
    _vote(bank, review, "chair")
    with unit_of_work(bank.engine) as s:
        cases.determine(s, s.get(Case, review), bank.user(s, "chair"))
        letters.issue_determination_letters(s, s.get(Case, review), bank.user(s, "chair"))
    with Session(bank.engine) as s:
        from tests.letters_text import pdf_text

        minutes = s.exec(select(Letter).where(Letter.case_id == review, Letter.kind == "minutes")).one()
        assert "许代（代钱七）" in "".join(pdf_text(minutes.pdf).split())
