"""Rule-set drafts in the administration pages: create, edit (errors next to the field, nothing saved), list
with who and when, discard, submit with an effective date and have a second administrator approve (publish)
or reject it, with the changes against the version in force; CSRF on every form; both languages."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from tests.web.support import login, post, set_passwords
from workflow.models import AuditEvent, AuditHead, RuleSetDraft, RuleSetVersion

PO04 = {"code": "PO04", "stage": "post_loan", "zh": "按月核查抵押物状态", "en": "checked the collateral monthly",
        "source": "本行2025年制度", "verified": False}


@pytest.fixture
def admin(bank, app_for):
    from workflow.db import unit_of_work
    from workflow.models import User

    with unit_of_work(bank.engine) as s:  # the checker: a second head-office administrator
        s.add(User(username="admin2", name="复核管理员", employee_no="E9002", branch_id=bank.branches["HO"],
                   roles="admin"))
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    assert login(client, "admin").status_code == 302
    return client


@pytest.fixture
def checker(bank, app_for, admin):
    client = app_for(bank.engine).test_client()
    assert login(client, "admin2").status_code == 302
    return client


def _head(bank) -> int:
    with Session(bank.engine) as s:
        return s.get(AuditHead, 1).seq


def _draft(bank, draft_id) -> RuleSetDraft:
    with Session(bank.engine) as s:
        return s.get(RuleSetDraft, draft_id)


def _create(admin, note="增加贷后抵押物核查") -> int:
    response = post(admin, "/admin/rulesets/drafts", {"based_on": "1", "note": note})
    assert response.status_code == 302
    match = re.search(r"/admin/rulesets/drafts/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _text(page: str) -> str:
    """The JSON document shown in the draft's textarea."""
    import html

    return html.unescape(re.search(r'<textarea id="data"[^>]*>(.*?)</textarea>', page, re.S).group(1))


def _edited(admin, draft_id, label="bank-2025.1") -> dict:
    data = json.loads(_text(admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)))
    return {**data, "version": label, "duties": [*data["duties"], PO04]}


def test_an_administrator_creates_edits_and_submits_a_draft_and_a_second_one_publishes_it(bank, admin, checker):
    page = admin.get("/admin/rulesets").get_data(as_text=True)
    assert 'id="new-draft"' in page and "暂无草稿" in page

    draft_id = _create(admin)
    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    data = json.loads(_text(page))
    assert "effective_from" not in data and list(data)[:2] == ["version", "name"]  # the model's order
    listing = admin.get("/admin/rulesets").get_data(as_text=True)
    row = re.search(rf'<tr id="draft-{draft_id}">(.*?)</tr>', listing, re.S).group(1)
    assert "管理员" in row and "增加贷后抵押物核查" in row and data["version"] in row

    data["version"] = "bank-2025.1"
    data["duties"].append(PO04)
    saved = post(admin, f"/admin/rulesets/drafts/{draft_id}",
                 {"expected_version": "1", "data": json.dumps(data, ensure_ascii=False), "note": "增加 PO04"})
    assert saved.status_code == 302
    draft = _draft(bank, draft_id)
    assert (draft.revision, draft.note, draft.data["duties"][-1]["code"]) == (2, "增加 PO04", "PO04")
    with Session(bank.engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "update_rule_set_draft")).one()
        assert event.actor == "admin" and event.payload["changed"] == ["duties", "version"]

    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    changes = re.search(r'<section class="card" id="changes">(.*?)</section>', page, re.S).group(1)
    assert "PO04" in changes and "按月核查抵押物状态" in changes and "新增" in changes and "bank-2025.1" in changes

    missing_date = post(admin, f"/admin/rulesets/drafts/{draft_id}/submit",
                        {"expected_version": "2", "effective_from": ""})
    assert missing_date.status_code == 400 and 'id="error-effective_from"' in missing_date.get_data(as_text=True)
    past = post(admin, f"/admin/rulesets/drafts/{draft_id}/submit",
                {"expected_version": "2", "effective_from": (date.today() - timedelta(days=3)).isoformat()})
    assert past.status_code == 400
    assert "早于今天的生效日期须说明理由" in re.search(r'id="error-reason">(.*?)</span>', past.get_data(as_text=True),
                                                      re.S).group(1)
    assert _draft(bank, draft_id).status == "draft"

    effective = date.today() + timedelta(days=10)
    submitted = post(admin, f"/admin/rulesets/drafts/{draft_id}/submit",
                     {"expected_version": "2", "effective_from": effective.isoformat()})
    assert submitted.status_code == 302 and _draft(bank, draft_id).status == "submitted"
    mine = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert 'id="edit-draft"' not in mine and 'id="approve-draft"' not in mine
    assert "须由另一位总行管理员审批" in re.search(r'id="review-refusal">(.*?)</p>', mine, re.S).group(1)
    alone = post(admin, f"/admin/rulesets/drafts/{draft_id}/publish", {"expected_version": "3"})
    assert alone.status_code == 403 and "须由另一位总行管理员审批" in alone.get_data(as_text=True)
    assert _draft(bank, draft_id).status == "submitted"

    approval = checker.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert 'id="approve-draft"' in approval and "PO04" in approval and "管理员" in approval
    published = post(checker, f"/admin/rulesets/drafts/{draft_id}/publish", {"expected_version": "3"})
    assert published.status_code == 302 and published.headers["Location"].endswith("/admin/rulesets/2")
    with Session(bank.engine) as s:
        v2 = s.exec(select(RuleSetVersion).where(RuleSetVersion.version == 2)).one()
        assert (v2.effective_from, v2.note, v2.data["version"]) == (effective, "增加 PO04", "bank-2025.1")
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "publish_rule_set")
                       .order_by(AuditEvent.seq.desc())).first()
        assert event.payload["draft"] == draft_id and event.payload["version"] == 2 and event.actor == "admin2"
        steps = [e.event for e in s.exec(select(AuditEvent).where(AuditEvent.event.like("%rule_set%"))
                                          .order_by(AuditEvent.seq))][1:]
        assert steps == ["create_rule_set_draft", "update_rule_set_draft", "submit_rule_set_draft",
                         "approve_rule_set_draft", "publish_rule_set"]
    assert _draft(bank, draft_id).status == "published"
    listing = admin.get("/admin/rulesets").get_data(as_text=True)
    assert f'id="draft-{draft_id}"' not in listing and "bank-2025.1" in listing
    closed = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert 'id="edit-draft"' not in closed and "/admin/rulesets/2" in closed


def test_a_second_administrator_rejects_a_draft_with_a_reason_and_it_is_a_draft_again(bank, admin, checker):
    draft_id = _create(admin)
    post(admin, f"/admin/rulesets/drafts/{draft_id}",
         {"expected_version": "1", "data": json.dumps(_edited(admin, draft_id)), "note": "增加 PO04"})
    past = (date.today() - timedelta(days=5)).isoformat()
    assert post(admin, f"/admin/rulesets/drafts/{draft_id}/submit",
                {"expected_version": "2", "effective_from": past, "reason": "监管通知自本月起执行"}).status_code == 302
    approval = checker.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert "监管通知自本月起执行" in approval
    no_reason = post(checker, f"/admin/rulesets/drafts/{draft_id}/reject", {"expected_version": "3"})
    assert no_reason.status_code == 400 and 'id="error-rejection_reason"' in no_reason.get_data(as_text=True)
    rejected = post(checker, f"/admin/rulesets/drafts/{draft_id}/reject",
                    {"expected_version": "3", "rejection_reason": "出处不对"})
    assert rejected.status_code == 302
    draft = _draft(bank, draft_id)
    assert (draft.status, draft.rejection_reason) == ("draft", "出处不对")
    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert 'id="edit-draft"' in page and "出处不对" in re.search(r'id="rejected">(.*?)</p>', page, re.S).group(1)
    with Session(bank.engine) as s:
        assert len(s.exec(select(RuleSetVersion)).all()) == 1


@pytest.mark.parametrize("change,shown", [
    (lambda text: text[:-3], "不是有效的 JSON"),
    (lambda text: json.dumps({**json.loads(text), "duties": [*json.loads(text)["duties"], PO04, PO04]}),
     "规则集无效"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "steps"}), "steps"),
    (lambda text: "[]", "规则集必须是一个 JSON 对象"),
])
def test_an_invalid_document_is_shown_next_to_the_field_and_nothing_is_saved(bank, admin, change, shown):
    draft_id = _create(admin)
    text = _text(admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True))
    before = _head(bank)
    bad = change(text)
    response = post(admin, f"/admin/rulesets/drafts/{draft_id}",
                    {"expected_version": "1", "data": bad, "note": "改了"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    error = re.search(r'<span class="error" id="error-data">(.*?)</span>', page, re.S).group(1)
    assert shown in error
    assert _text(page) == bad  # the administrator's text is kept for correcting
    draft = _draft(bank, draft_id)
    assert (draft.revision, draft.note) == (1, "增加贷后抵押物核查") and _head(bank) == before


def test_submitting_refuses_a_label_already_used_and_a_missing_note_next_to_the_field(bank, admin):
    draft_id = _create(admin, note="")
    response = post(admin, f"/admin/rulesets/drafts/{draft_id}/submit",
                    {"expected_version": "1", "effective_from": date.today().isoformat()})
    assert response.status_code == 400 and 'id="error-note"' in response.get_data(as_text=True)
    post(admin, f"/admin/rulesets/drafts/{draft_id}",
         {"expected_version": "1", "data": _text(admin.get(f"/admin/rulesets/drafts/{draft_id}")
                                                 .get_data(as_text=True)), "note": "只改说明"})
    response = post(admin, f"/admin/rulesets/drafts/{draft_id}/submit",
                    {"expected_version": "2", "effective_from": date.today().isoformat()})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "已被版本 1 使用" in re.search(r'id="error-data">(.*?)</span>', page, re.S).group(1)
    with Session(bank.engine) as s:
        assert len(s.exec(select(RuleSetVersion)).all()) == 1


def test_discarding_a_draft_keeps_it_on_record_and_removes_it_from_the_list(bank, admin):
    draft_id = _create(admin)
    response = post(admin, f"/admin/rulesets/drafts/{draft_id}/discard", {"expected_version": "1"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/rulesets")
    assert _draft(bank, draft_id).status == "discarded"
    with Session(bank.engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "discard_rule_set_draft")).one()
        assert event.payload["draft"] == draft_id and event.actor == "admin"
    assert f'id="draft-{draft_id}"' not in admin.get("/admin/rulesets").get_data(as_text=True)
    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert "此草稿已被放弃" in page and 'id="submit-draft"' not in page


def test_a_stale_form_is_refused_and_keeps_the_text_the_administrator_typed(bank, admin):
    draft_id = _create(admin)
    first = _edited(admin, draft_id)
    assert post(admin, f"/admin/rulesets/drafts/{draft_id}",
                {"expected_version": "1", "data": json.dumps(first), "note": "甲"}).status_code == 302
    before = _head(bank)
    mine = json.dumps(_edited(admin, draft_id, label="bank-mine") | {"duties": first["duties"]})
    response = post(admin, f"/admin/rulesets/drafts/{draft_id}", {"expected_version": "1", "data": mine, "note": "乙"})
    assert response.status_code == 409 and _text(response.get_data(as_text=True)) == mine
    assert "其他人" in response.get_data(as_text=True)
    for action in ("submit", "discard"):
        stale = post(admin, f"/admin/rulesets/drafts/{draft_id}/{action}",
                     {"expected_version": "1", "effective_from": date.today().isoformat()})
        assert stale.status_code == 302 and stale.headers["Location"].endswith(f"/admin/rulesets/drafts/{draft_id}")
    assert _head(bank) == before and _draft(bank, draft_id).status == "draft"


def test_every_draft_form_needs_the_csrf_token(bank, admin):
    draft_id = _create(admin)
    before = _head(bank)
    forms = [("/admin/rulesets/drafts", {"based_on": "1"}),
             (f"/admin/rulesets/drafts/{draft_id}", {"expected_version": "1", "data": "{}", "note": "x"}),
             (f"/admin/rulesets/drafts/{draft_id}/submit", {"expected_version": "1",
                                                           "effective_from": date.today().isoformat()}),
             (f"/admin/rulesets/drafts/{draft_id}/publish", {"expected_version": "1"}),
             (f"/admin/rulesets/drafts/{draft_id}/reject", {"expected_version": "1", "rejection_reason": "x"}),
             (f"/admin/rulesets/drafts/{draft_id}/discard", {"expected_version": "1"})]
    for url, data in forms:
        assert admin.post(url, data=data).status_code == 400, url
        assert admin.post(url, data={**data, "csrf_token": "forged"}).status_code == 400, url
    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert page.count('name="csrf_token"') >= 4  # the three draft forms and the language switch
    assert _head(bank) == before and _draft(bank, draft_id).status == "draft"


def test_the_draft_pages_follow_the_users_language(bank, admin):
    draft_id = _create(admin)
    zh = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert "保存草稿" in zh and "放弃草稿" in zh and "生效日期" in zh
    post(admin, "/language", {"locale": "en"})
    en = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert "Save the draft" in en and "Discard the draft" in en and "保存草稿" not in en
    assert "Drafts" in admin.get("/admin/rulesets").get_data(as_text=True)


def test_a_branch_administrator_sees_versions_but_no_drafts(bank, app_for):
    from workflow.db import unit_of_work
    from workflow.models import User

    with unit_of_work(bank.engine) as s:
        s.add(User(username="t1_admin", name="分行管理员", employee_no="E9001", branch_id=bank.branches["T1"],
                   roles="admin"))
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    assert login(client, "t1_admin").status_code == 302
    page = client.get("/admin/rulesets")
    assert page.status_code == 200
    assert 'id="drafts"' not in page.get_data(as_text=True) and 'id="new-draft"' not in page.get_data(as_text=True)


def _item(**fields) -> dict:
    return {"section": "duties", "code": "PO04", "stage": "post_loan", "zh": "按月核查抵押物状态",
            "en": "checked the collateral monthly", "source": "本行2025年制度", "bank_rule": "", "note": "",
            "original_code": "", **fields}


def test_an_item_is_added_edited_and_retired_in_the_form_and_the_changes_show_it(bank, admin):
    draft_id = _create(admin)
    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    assert 'id="item-form"' in page and 'id="items-positive"' in page

    missing = post(admin, f"/admin/rulesets/drafts/{draft_id}/items", {"expected_version": "1", **_item(en=" ")})
    assert missing.status_code == 400
    assert "请填写此项" in re.search(r'id="error-item_en">(.*?)</span>', missing.get_data(as_text=True), re.S).group(1)
    unknown_stage = post(admin, f"/admin/rulesets/drafts/{draft_id}/items",
                         {"expected_version": "1", **_item(stage="no_such_stage")})
    assert unknown_stage.status_code == 400 and 'id="error-item_stage"' in unknown_stage.get_data(as_text=True)
    assert _draft(bank, draft_id).revision == 1

    added = post(admin, f"/admin/rulesets/drafts/{draft_id}/items", {"expected_version": "1", **_item()})
    assert added.status_code == 302
    draft = _draft(bank, draft_id)
    assert draft.revision == 2 and draft.data["duties"][-1] == {
        "code": "PO04", "stage": "post_loan", "zh": "按月核查抵押物状态", "en": "checked the collateral monthly",
        "source": "本行2025年制度", "bank_rule": "", "note": "", "verified": False}
    again = post(admin, f"/admin/rulesets/drafts/{draft_id}/items", {"expected_version": "2", **_item()})
    assert again.status_code == 400 and "已在此清单中使用" in again.get_data(as_text=True)

    edit_page = admin.get(f"/admin/rulesets/drafts/{draft_id}?edit=duties:PO04").get_data(as_text=True)
    assert 'name="original_code" value="PO04"' in edit_page and 'value="checked the collateral monthly"' in edit_page
    edited = post(admin, f"/admin/rulesets/drafts/{draft_id}/items",
                  {"expected_version": "2", **_item(original_code="PO04", en="checks the collateral every month",
                                                    bank_rule="《贷后管理办法》第12条", verified="1")})
    assert edited.status_code == 302
    duty = _draft(bank, draft_id).data["duties"][-1]
    assert (duty["en"], duty["bank_rule"], duty["verified"]) == ("checks the collateral every month",
                                                                 "《贷后管理办法》第12条", True)

    positive = _draft(bank, draft_id).data["positive"][0]["code"]
    retired = post(admin, f"/admin/rulesets/drafts/{draft_id}/items/retire",
                   {"expected_version": "3", "section": "positive", "code": positive})
    assert retired.status_code == 302
    assert positive not in [i["code"] for i in _draft(bank, draft_id).data["positive"]]

    page = admin.get(f"/admin/rulesets/drafts/{draft_id}").get_data(as_text=True)
    changes = re.search(r'<section class="card" id="changes">(.*?)</section>', page, re.S).group(1)
    assert "PO04" in changes and "新增" in changes and positive in changes and "停用" in changes
    with Session(bank.engine) as s:
        items = [e.payload["item"] for e in s.exec(select(AuditEvent).where(AuditEvent.event == "update_rule_set_draft")
                                                   .order_by(AuditEvent.seq))]
    assert items == [{"section": "duties", "code": "PO04", "action": "added"},
                     {"section": "duties", "code": "PO04", "action": "changed"},
                     {"section": "positive", "code": positive, "action": "retired"}]
