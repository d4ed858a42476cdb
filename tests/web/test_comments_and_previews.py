"""Comments on a case (the staff's, never the respondents'; @mentions tell; pages; length checked) and
evidence previews (PDF and images by their content, sandboxed, logged like downloads; sizes in KB/MB)."""

from __future__ import annotations

import re

from sqlmodel import Session, select

from tests.factories import drive
from tests.web.support import login, post, set_passwords
from workflow.db import unit_of_work
from workflow.models import AccessLog, AuditEvent, Case, CaseComment, Notification, Respondent
from workflow.services import comments, investigation

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"1 0 obj <<>> endobj\n" * 200


def _client(bank, app_for, username):
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def _comment(client, case_id, body):
    return post(client, f"/cases/{case_id}/comments", {"body": body})


def test_the_staff_comment_with_an_audit_event_and_a_mention_tells_the_colleague(bank, app_for):
    case_id = drive(bank, "under_review")
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    response = _comment(chair, case_id, "请 @member1 核对第二笔贷款的审批材料。")
    assert response.status_code == 302
    page = chair.get(f"/cases/{case_id}/comments").get_data(as_text=True)
    assert "请 @member1 核对第二笔贷款的审批材料。" in page and "周九" in page and "共 1 条评论" in page
    with Session(bank.engine) as s:
        comment = s.exec(select(CaseComment)).one()
        assert comment.mentions == [bank.users["member1"]] and comment.author_id == bank.users["chair"]
        event = s.exec(select(AuditEvent).where(AuditEvent.event == "comment")).one()
        assert event.payload["comment_id"] == comment.id and event.payload["mentions"] == ["member1"]
        told = s.exec(select(Notification).where(Notification.kind == "mention")).all()
        assert [(n.user_id, n.case_id) for n in told] == [(bank.users["member1"], case_id)]
        assert told[0].message.startswith("周九 在案件 ") and "提到了您" in told[0].message
        assert s.get(Case, case_id).version == s.get(Case, case_id).version  # a comment changes no case
    member = _client(bank, app_for, "member1")
    assert "核对第二笔贷款" in member.get(f"/cases/{case_id}/comments").get_data(as_text=True)


def test_respondents_neither_read_nor_write_comments_and_cannot_be_mentioned(bank, app_for):
    case_id = drive(bank, "under_review")
    set_passwords(bank.engine)
    officer = _client(bank, app_for, "officer")
    assert officer.get(f"/cases/{case_id}/comments").status_code == 403
    assert _comment(officer, case_id, "我有补充").status_code == 403
    assert 'id="comments"' not in officer.get(f"/cases/{case_id}").get_data(as_text=True)
    chair = _client(bank, app_for, "chair")
    assert 'id="comments"' in chair.get(f"/cases/{case_id}").get_data(as_text=True)
    refused = _comment(chair, case_id, "@officer 请说明")  # a respondent of the case
    assert refused.status_code == 400
    assert "只能提及本案的工作人员" in refused.get_data(as_text=True) and "@officer" in refused.get_data(as_text=True)
    unknown = _comment(chair, case_id, "@nobody_here 请看")
    assert unknown.status_code == 400 and "没有使用该用户名的在职人员" in unknown.get_data(as_text=True)
    with Session(bank.engine) as s:
        assert s.exec(select(CaseComment)).all() == []


def test_an_empty_or_too_long_comment_is_refused_with_a_clear_message(bank, app_for):
    case_id = drive(bank, "investigating")
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    empty = _comment(chair, case_id, "   ")
    assert empty.status_code == 400 and "请填写评论内容" in empty.get_data(as_text=True)
    long = _comment(chair, case_id, "字" * 2001)
    assert long.status_code == 400 and "评论最多 2,000 个字符" in long.get_data(as_text=True)
    assert _comment(chair, case_id, "字" * 2000).status_code == 302


def test_comments_come_a_page_at_a_time_oldest_first(bank, app_for):
    case_id = drive(bank, "registered")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for i in range(comments.PAGE_SIZE + 3):
            comments.add_comment(s, case, bank.user(s, "chair"), f"第{i + 1}条意见")
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    first = chair.get(f"/cases/{case_id}/comments").get_data(as_text=True)
    assert "第1条意见" in first and f"第{comments.PAGE_SIZE}条意见" in first
    assert f"第{comments.PAGE_SIZE + 1}条意见" not in first and 'id="next-comments"' in first
    last = chair.get(f"/cases/{case_id}/comments?page=last").get_data(as_text=True)
    assert f"第{comments.PAGE_SIZE + 3}条意见" in last and "第1条意见<" not in last


def _with_evidence_dir(app_for, tmp_path):
    return lambda engine: app_for(engine, EVIDENCE_DIR=str(tmp_path / "evidence"))


def _evidence(bank, case_id, tmp_path, filename, data, respondent=None, content_type="application/pdf"):
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        rid = None
        if respondent:
            rid = s.exec(select(Respondent.id).where(Respondent.case_id == case_id,
                                                     Respondent.user_id == bank.users[respondent])).one()
        ev = investigation.add_evidence(s, case, bank.user(s, respondent or "investigator"), filename=filename,
                                        content_type=content_type, data=data,
                                        storage_dir=str(tmp_path / "evidence"), respondent_id=rid)
        return ev.id


def test_a_pdf_or_image_is_previewed_by_its_content_in_a_sandbox_and_logged(bank, app_for, tmp_path):
    case_id = drive(bank, "investigating")
    app_for = _with_evidence_dir(app_for, tmp_path)
    pdf = _evidence(bank, case_id, tmp_path, "审批表.pdf", PDF)
    png = _evidence(bank, case_id, tmp_path, "现场照片.png", PNG, content_type="image/png")
    fake = _evidence(bank, case_id, tmp_path, "看似图片.png", b"<html><script>alert(1)</script></html>",
                     content_type="text/plain")
    set_passwords(bank.engine)
    chair = _client(bank, app_for, "chair")
    for ev_id, kind in ((pdf, "application/pdf"), (png, "image/png")):
        r = chair.get(f"/cases/{case_id}/evidence/{ev_id}/preview")
        assert r.status_code == 200 and r.mimetype == kind
        assert r.headers["Content-Security-Policy"] == "sandbox"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Disposition"].startswith("inline")
    refused = chair.get(f"/cases/{case_id}/evidence/{fake}/preview")
    assert refused.status_code == 404 and "仅可预览 PDF 文件及 PNG、JPEG 图片" in refused.get_data(as_text=True)
    assert chair.get(f"/cases/{case_id}/evidence/{fake}").status_code == 200  # downloaded, as any file
    with Session(bank.engine) as s:
        logged = s.exec(select(AccessLog).where(AccessLog.action == "preview_evidence")).all()
        assert sorted(a.details["evidence_id"] for a in logged) == [pdf, png]
    page = chair.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'/cases/{case_id}/evidence/{pdf}/preview' in page and "预览" in page
    assert re.search(r">\s*3\.9 kB\s*<", page) and re.search(r">\s*72 B\s*<", page)  # 4,009 and 72 bytes


def test_a_co_respondent_may_not_preview_another_respondents_evidence(bank, app_for, tmp_path):
    case_id = drive(bank, "investigating")
    app_for = _with_evidence_dir(app_for, tmp_path)
    mine = _evidence(bank, case_id, tmp_path, "我的说明.pdf", PDF, respondent="officer")
    set_passwords(bank.engine)
    reviewer = _client(bank, app_for, "reviewer")  # a respondent of the same case
    refused = reviewer.get(f"/cases/{case_id}/evidence/{mine}/preview")
    assert refused.status_code == 403
    officer = _client(bank, app_for, "officer")
    assert officer.get(f"/cases/{case_id}/evidence/{mine}/preview").status_code == 200


def test_file_sizes_read_in_bytes_kb_and_mb_in_both_languages(app_for, bank):
    from workflow.web.i18n import fmt_size

    app = app_for(bank.engine)
    with app.test_request_context("/"):
        assert (fmt_size(512), fmt_size(1536), fmt_size(5 * 1024 * 1024 + 300_000)) == ("512 B", "1.5 kB", "5.3 MB")


def test_evidence_kinds_are_told_by_their_first_bytes():
    assert investigation.preview_type(PDF[:16]) == "application/pdf"
    assert investigation.preview_type(PNG[:16]) == "image/png"
    assert investigation.preview_type(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"
    assert investigation.preview_type(b"<svg onload=alert(1)>") is None
    assert investigation.preview_type(b"GIF89a") is None


def test_mentions_are_usernames_after_an_at_sign_not_e_mail_addresses():
    assert comments.mentioned("请 @member1 和 @chair. 看看，联系 a@b.cn") == ["member1", "chair"]
    assert comments.mentioned("@member1 @member1") == ["member1"]

