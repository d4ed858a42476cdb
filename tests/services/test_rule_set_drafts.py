"""Rule-set drafts: created from a version, edited (validated, nothing saved on error), discarded or published
through `rulesets.publish`; every change audited in the same transaction; a draft never judges anything."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from tests.factories import open_case
from workflow.db import unit_of_work
from workflow.domain.errors import ConflictError, PermissionDenied, ValidationFailed
from workflow.models import AuditEvent, AuditHead, Case, RuleSetDraft, RuleSetVersion, User
from workflow.services import audit, evaluation, rulesets

PO04 = {"code": "PO04", "stage": "post_loan", "zh": "按月核查抵押物状态", "en": "checked the collateral monthly",
        "source": "本行2025年制度", "verified": False}


def _create(bank, based_on=None, note="") -> RuleSetDraft:
    with unit_of_work(bank.engine) as s:
        return rulesets.create_draft(s, bank.user(s, "admin"), based_on=based_on, note=note)


def _edited(draft: RuleSetDraft, label="bank-2025.1") -> dict:
    data = copy.deepcopy(draft.data)
    data["version"] = label
    data["duties"] = [*data["duties"], PO04]
    return data


def _update(bank, draft_id, data, note="adds PO04", revision=None, user="admin") -> RuleSetDraft:
    with unit_of_work(bank.engine) as s:
        if revision is None:
            revision = s.get(RuleSetDraft, draft_id).revision
        return rulesets.update_draft(s, bank.user(s, user), draft_id, data, note, expected_revision=revision)


def _events(bank, name: str) -> list[AuditEvent]:
    with Session(bank.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.seq)))


def _head(bank) -> int:
    with Session(bank.engine) as s:
        return s.get(AuditHead, 1).seq


def test_a_draft_starts_from_the_version_in_force_or_a_named_one_and_its_creation_is_audited(bank):
    draft = _create(bank, note="2025年修订")
    with Session(bank.engine) as s:
        v1 = s.exec(select(RuleSetVersion).where(RuleSetVersion.version == 1)).one()
        row = s.get(RuleSetDraft, draft.id)
    assert (row.status, row.based_on_id, row.note, row.revision) == ("draft", v1.id, "2025年修订", 1)
    assert row.data == {k: v for k, v in v1.data.items() if k != "effective_from"}
    assert row.created_by_id == row.updated_by_id == bank.users["admin"] and row.updated_at is not None
    [event] = _events(bank, "create_rule_set_draft")
    assert event.actor == "admin"
    assert event.payload["draft"] == draft.id and event.payload["based_on"] == 1
    assert event.payload["label"] == v1.data["version"] and len(event.payload["sha256"]) == 64

    named = _create(bank, based_on=1)
    assert named.based_on_id == v1.id
    with pytest.raises(ValidationFailed) as exc:
        _create(bank, based_on=99)
    assert exc.value.details["field"] == "based_on"
    with Session(bank.engine) as s:
        assert [d.id for d in rulesets.open_drafts(s)] == [named.id, draft.id]


def test_a_draft_change_and_its_audit_event_are_one_transaction(bank):
    before = _head(bank)
    with pytest.raises(RuntimeError), unit_of_work(bank.engine) as s:
        rulesets.create_draft(s, bank.user(s, "admin"))
        raise RuntimeError("the request failed after the draft was created")
    with Session(bank.engine) as s:
        assert s.exec(select(RuleSetDraft)).all() == []
    assert _head(bank) == before


@pytest.mark.parametrize("mutate,problem", [
    (lambda d: [d], "JSON object"),
    (lambda d: {**d, "duties": [*d["duties"], d["duties"][0]]}, "invalid rule set"),
    (lambda d: {k: v for k, v in d.items() if k != "time_limits"}, "time_limits"),
    (lambda d: {**d, "duties": [*d["duties"], {**PO04, "stage": "lunch"}]}, "lunch"),
])
def test_an_invalid_document_is_refused_next_to_the_field_and_nothing_is_saved(bank, mutate, problem):
    draft = _create(bank)
    before = _head(bank)
    with pytest.raises(ValidationFailed, match=problem) as exc:
        _update(bank, draft.id, mutate(copy.deepcopy(draft.data)))
    assert exc.value.details["field"] == "data"
    with Session(bank.engine) as s:
        row = s.get(RuleSetDraft, draft.id)
        assert (row.data, row.revision, row.note) == (draft.data, 1, "")
    assert _head(bank) == before


def test_each_change_to_a_draft_is_audited_with_what_changed_and_a_save_without_change_records_nothing(bank):
    draft = _create(bank)
    data = _edited(draft)
    updated = _update(bank, draft.id, {**data, "effective_from": "2030-01-01"})  # the date is chosen on publishing
    assert updated.revision == 2 and "effective_from" not in updated.data
    assert updated.data["duties"][-1]["code"] == "PO04"
    [event] = _events(bank, "update_rule_set_draft")
    assert event.payload["changed"] == ["duties", "version"] and event.payload["label"] == "bank-2025.1"
    assert event.payload["note"] == "adds PO04"
    before = _head(bank)
    again = _update(bank, draft.id, data)
    assert again.revision == 2 and _head(bank) == before
    _update(bank, draft.id, data, note="adds PO04 (monthly)")
    assert [e.payload["changed"] for e in _events(bank, "update_rule_set_draft")] == [["duties", "version"], []]
    with pytest.raises(ValidationFailed) as exc:
        _update(bank, draft.id, data, note="x" * 501)
    assert exc.value.details["field"] == "note"


def test_a_draft_never_judges_anything(bank):
    draft = _create(bank)
    _update(bank, draft.id, _edited(draft))
    case_id = open_case(bank)
    with Session(bank.engine) as s:
        assert rulesets.version_in_force(s, date.today()).version == 1
        assert rulesets.version_in_force(s, date(2100, 1, 1)).version == 1
        assert s.get(RuleSetVersion, s.get(Case, case_id).rule_set_version_id).version == 1
        in_force = rulesets.parsed(rulesets.version_in_force(s, date.today()))
    assert "PO04" not in {d.code for d in in_force.duties}
    with pytest.raises(ValidationFailed, match="PO04"):  # the draft's new duty is unknown to the rules in force
        rulesets.validate_stage_facts(in_force, "post_loan", {"unperformed": [{"duty": "PO04", "causal": False}]})
    stage = {"stage": "post_loan", "positive": [], "mitigating": [], "negative": [], "violation": False,
             "unperformed": [{"duty": "PO04", "causal": False}], "dissented": False}
    request = {"rule_set": "bank-2025.1", "tolerance": {"sme_npl_ratio": "0.0501", "all_npl_ratio": "0.0200"},
               "respondents": [{"id": "E1000", "stages": [stage]}]}
    with Session(bank.engine) as s:
        with pytest.raises(ValidationFailed, match="unknown rule set 'bank-2025.1'"):
            evaluation.evaluate(s, request)  # a what-if evaluation cannot name a draft
        with pytest.raises(ValidationFailed, match="PO04"):
            evaluation.evaluate(s, {**request, "rule_set": "current"})


def _second_admin(bank, username="admin2") -> None:
    """A second head-office administrator, the checker of the maker-checker rule."""
    with unit_of_work(bank.engine) as s:
        s.add(User(username=username, name="复核管理员", employee_no=f"E9{username[-1]}02", branch_id=bank.branches["HO"],
                   roles="admin"))
    with Session(bank.engine) as s:
        bank.users[username] = s.exec(select(User.id).where(User.username == username)).one()


def _submit(bank, draft_id, effective, reason="", user="admin", revision=None) -> RuleSetDraft:
    with unit_of_work(bank.engine) as s:
        if revision is None:
            revision = s.get(RuleSetDraft, draft_id).revision
        return rulesets.submit_draft(s, bank.user(s, user), draft_id, effective, reason=reason,
                                     expected_revision=revision)


def _approve(bank, draft_id, user="admin2"):
    with unit_of_work(bank.engine) as s:
        revision = s.get(RuleSetDraft, draft_id).revision
        return rulesets.publish_draft(s, bank.user(s, user), draft_id, expected_revision=revision)


def test_publishing_needs_a_second_administrator_who_approves_what_the_author_submitted(bank):
    _second_admin(bank)
    draft = _create(bank)
    draft = _update(bank, draft.id, _edited(draft))
    effective = date.today() + timedelta(days=30)
    submitted = _submit(bank, draft.id, effective)
    assert (submitted.status, submitted.effective_from, submitted.submitted_by_id) == \
        ("submitted", effective, bank.users["admin"])
    with pytest.raises(ConflictError, match="submitted"):  # a submitted draft is frozen
        _update(bank, draft.id, _edited(draft, "bank-x"))
    before = _head(bank)
    with pytest.raises(PermissionDenied) as exc:  # the author alone is refused, with the policy's reason
        _approve(bank, draft.id, user="admin")
    assert exc.value.details["reason"] == "own_draft" and "second head-office administrator" in exc.value.message
    with pytest.raises(PermissionDenied) as exc, unit_of_work(bank.engine) as s:
        rulesets.reject_draft(s, bank.user(s, "admin"), draft.id, "no", expected_revision=submitted.revision)
    assert exc.value.details["reason"] == "own_draft"
    assert _head(bank) == before
    with Session(bank.engine) as s:
        assert len(s.exec(select(RuleSetVersion)).all()) == 1

    version = _approve(bank, draft.id)
    with Session(bank.engine) as s:
        row = s.get(RuleSetDraft, draft.id)
        v2 = s.get(RuleSetVersion, version.id)
        assert (row.status, row.published_version_id, row.reviewed_by_id) == ("published", v2.id, bank.users["admin2"])
        assert (v2.version, v2.status, v2.effective_from, v2.note) == (2, "published", effective, "adds PO04")
        assert (v2.created_by_id, v2.published_by_id) == (bank.users["admin"], bank.users["admin2"])
        assert v2.data["effective_from"] == effective.isoformat() and v2.data["duties"][-1]["code"] == "PO04"
        assert rulesets.open_drafts(s) == []
        assert rulesets.version_in_force(s, effective).version == 2
        assert rulesets.version_in_force(s, date.today()).version == 1
        audit.verify(s)
    [submit] = _events(bank, "submit_rule_set_draft")
    assert (submit.actor, submit.payload["effective_from"], submit.payload["backdated"]) == \
        ("admin", effective.isoformat(), False)
    [approve] = _events(bank, "approve_rule_set_draft")
    assert approve.actor == "admin2"
    assert (approve.payload["requested_by"], approve.payload["approved_by"]) == (bank.users["admin"],
                                                                                  bank.users["admin2"])
    [event] = [e for e in _events(bank, "publish_rule_set") if e.payload["version"] == 2]
    assert event.actor == "admin2" and event.payload == {
        "version": 2, "label": "bank-2025.1", "effective_from": effective.isoformat(), "note": "adds PO04",
        "draft": draft.id}
    assert approve.seq < event.seq

    other = _create(bank)
    other = _update(bank, other.id, _edited(other, label="bank-2025.2"))
    other = _submit(bank, other.id, effective)
    before = _head(bank)
    with pytest.raises(RuntimeError), unit_of_work(bank.engine) as s:
        rulesets.publish_draft(s, bank.user(s, "admin2"), other.id, expected_revision=other.revision)
        raise RuntimeError("failed before the commit")
    with Session(bank.engine) as s:
        assert s.get(RuleSetDraft, other.id).status == "submitted"
        assert len(s.exec(select(RuleSetVersion)).all()) == 2
    assert _head(bank) == before


def test_the_last_editor_may_not_approve_either(bank):
    _second_admin(bank)
    draft = _create(bank)
    draft = _update(bank, draft.id, _edited(draft), user="admin2")  # admin created, admin2 edited last
    _submit(bank, draft.id, date.today())
    with pytest.raises(PermissionDenied) as exc:
        _approve(bank, draft.id, user="admin2")
    assert exc.value.details["reason"] == "own_draft"
    with pytest.raises(PermissionDenied):
        _approve(bank, draft.id, user="admin")
    _second_admin(bank, "admin3")
    assert _approve(bank, draft.id, user="admin3").version == 2


def test_a_past_effective_date_needs_a_reason_and_both_approvals_are_recorded(bank):
    _second_admin(bank)
    draft = _create(bank)
    draft = _update(bank, draft.id, _edited(draft))
    past = date.today() - timedelta(days=10)
    before = _head(bank)
    with pytest.raises(ValidationFailed, match="needs a stated reason") as exc:
        _submit(bank, draft.id, past, reason="  ")
    assert exc.value.details["field"] == "reason"
    assert _head(bank) == before
    with Session(bank.engine) as s:
        assert s.get(RuleSetDraft, draft.id).status == "draft"
    _submit(bank, draft.id, past, reason="监管通知自上月起执行")
    version = _approve(bank, draft.id)
    assert version.effective_from == past
    [submit] = _events(bank, "submit_rule_set_draft")
    assert (submit.actor, submit.payload["backdated"], submit.payload["reason"]) == ("admin", True, "监管通知自上月起执行")
    [approve] = _events(bank, "approve_rule_set_draft")
    assert (approve.actor, approve.payload["reason"], approve.payload["effective_from"]) == \
        ("admin2", "监管通知自上月起执行", past.isoformat())


def test_a_rejected_draft_is_a_draft_again_with_the_reason(bank):
    _second_admin(bank)
    draft = _create(bank)
    draft = _update(bank, draft.id, _edited(draft))
    submitted = _submit(bank, draft.id, date.today())
    with pytest.raises(ValidationFailed) as exc, unit_of_work(bank.engine) as s:
        rulesets.reject_draft(s, bank.user(s, "admin2"), draft.id, " ", expected_revision=submitted.revision)
    assert exc.value.details["field"] == "rejection_reason"
    with unit_of_work(bank.engine) as s:
        row = rulesets.reject_draft(s, bank.user(s, "admin2"), draft.id, "PO04 的出处不对",
                                    expected_revision=submitted.revision)
    assert (row.status, row.rejection_reason, row.reviewed_by_id) == ("draft", "PO04 的出处不对", bank.users["admin2"])
    [event] = _events(bank, "reject_rule_set_draft")
    assert (event.actor, event.payload["reason"], event.payload["requested_by"]) == \
        ("admin2", "PO04 的出处不对", bank.users["admin"])
    with pytest.raises(ConflictError, match="not been submitted"):
        _approve(bank, draft.id)
    _update(bank, draft.id, {**draft.data, "version": "bank-2025.9"})  # the author can edit and submit again
    _submit(bank, draft.id, date.today())
    assert _approve(bank, draft.id).version == 2


def test_the_diff_shows_items_added_changed_and_retired_field_by_field(bank):
    draft = _create(bank)
    data = _edited(draft)
    changed = data["positive"][0]
    old_en = changed["en"]
    changed["en"] = "a new English text"
    retired = data["negative"].pop()
    with Session(bank.engine) as s:
        in_force = rulesets.version_in_force(s, date.today())
    changes = rulesets.diff_documents(in_force.data, data)
    by_code = {(c["section"], c["code"]): c for c in changes}
    assert by_code[("duties", "PO04")]["kind"] == "added" and by_code[("duties", "PO04")]["zh"] == PO04["zh"]
    assert by_code[("positive", changed["code"])]["kind"] == "changed"
    assert by_code[("positive", changed["code"])]["fields"] == [("en", old_en, "a new English text")]
    assert by_code[("negative", retired["code"])]["kind"] == "retired"
    assert by_code[("version", None)]["fields"] == [("version", in_force.data["version"], "bank-2025.1")]
    assert rulesets.diff_documents(in_force.data, in_force.data) == []


def test_publishing_needs_a_note_and_a_label_no_version_uses(bank):
    draft = _create(bank)
    draft = _update(bank, draft.id, {**draft.data, "duties": [*draft.data["duties"], PO04]})  # same label as v1
    with pytest.raises(ValidationFailed, match="already used by version 1") as exc:
        _submit(bank, draft.id, date.today())
    assert exc.value.details["field"] == "data"
    draft = _update(bank, draft.id, {**draft.data, "version": "bank-2025.1"}, note="")
    with pytest.raises(ValidationFailed) as exc:
        _submit(bank, draft.id, date.today())
    assert exc.value.details["field"] == "note"
    with Session(bank.engine) as s:
        assert s.get(RuleSetDraft, draft.id).status == "draft"
        assert len(s.exec(select(RuleSetVersion)).all()) == 1


def test_a_stale_or_closed_draft_is_refused_as_a_conflict_and_nothing_changes(bank):
    draft = _create(bank)
    _update(bank, draft.id, _edited(draft))  # revision 2
    before = _head(bank)
    with pytest.raises(ConflictError, match="someone else"):
        _update(bank, draft.id, _edited(draft, "bank-x"), revision=1)
    with pytest.raises(ConflictError), unit_of_work(bank.engine) as s:
        rulesets.discard_draft(s, bank.user(s, "admin"), draft.id, expected_revision=1)
    with pytest.raises(ConflictError):
        _submit(bank, draft.id, date.today(), revision=1)
    assert _head(bank) == before
    with unit_of_work(bank.engine) as s:
        discarded = rulesets.discard_draft(s, bank.user(s, "admin"), draft.id, expected_revision=2)
    assert discarded.status == "discarded"
    [event] = _events(bank, "discard_rule_set_draft")
    assert event.payload["draft"] == draft.id and event.payload["label"] == "bank-2025.1"
    with pytest.raises(ConflictError, match="discarded"):
        _update(bank, draft.id, _edited(draft, "bank-y"), revision=3)
    with pytest.raises(ConflictError, match="discarded"):
        _submit(bank, draft.id, date.today(), revision=3)
    with Session(bank.engine) as s:
        assert rulesets.open_drafts(s) == [] and s.get(RuleSetDraft, draft.id).data["version"] == "bank-2025.1"
        assert len(s.exec(select(RuleSetVersion)).all()) == 1


def test_only_head_office_administrators_work_on_drafts(bank):
    draft = _create(bank)
    with unit_of_work(bank.engine) as s:
        s.add(User(username="t1_admin", name="分行管理员", employee_no="E9001", branch_id=bank.branches["T1"],
                   roles="admin"))
    with Session(bank.engine) as s:
        bank.users["t1_admin"] = s.exec(select(User.id).where(User.username == "t1_admin")).one()
    before = _head(bank)
    for user in ("chair", "auditor", "t1_admin"):
        with pytest.raises(PermissionDenied), unit_of_work(bank.engine) as s:
            rulesets.create_draft(s, bank.user(s, user))
        with pytest.raises(PermissionDenied):
            _update(bank, draft.id, _edited(draft), user=user)
        with pytest.raises(PermissionDenied), unit_of_work(bank.engine) as s:
            rulesets.discard_draft(s, bank.user(s, user), draft.id, expected_revision=1)
        with pytest.raises(PermissionDenied):
            _submit(bank, draft.id, date.today(), user=user, revision=1)
        with pytest.raises(PermissionDenied), unit_of_work(bank.engine) as s:
            rulesets.publish_draft(s, bank.user(s, user), draft.id, expected_revision=1)
    assert _head(bank) == before
