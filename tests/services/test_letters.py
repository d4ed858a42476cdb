"""The documents of a case: fit to send, right reasons per stage, numbered per issuer and kind without gaps,
stored once, corrected by versions, served; the appeal window from service; issuing under concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.factories import (
    TODAY,
    decide_appeal_by_panel,
    drive,
    liable_officer,
    make_bank,
    open_case,
    serve_letters,
)
from tests.letters_text import pdf_text, problems
from workflow.db import unit_of_work
from workflow.domain.errors import ConflictError, PermissionDenied, ValidationFailed
from workflow.models import Appeal, Branch, Case, DocSequence, Letter, LetterService, Loan, Respondent, User
from workflow.services import cases, deadlines, document_form, letters

ROOT = Path(__file__).resolve().parents[2]
LATER = TODAY + timedelta(days=14)  # the factories end publicity on this day and serve the letters


def _flat(text: str) -> str:
    return "".join(text.split())


def _respondent(s, bank, username: str, case_id: int) -> Respondent:
    return s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                           Respondent.user_id == bank.users[username])).one()


def _current(s, kind: str, case_id: int, respondent_id: int | None = None) -> Letter:
    return letters.current(s, kind, case_id, respondent_id)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    """A full lifecycle on SQLite with an altered appeal, plus a batch case: every kind of document.

    The officer is liable (a violation at the pre-loan stage, exempt at post-loan) and appeals; the appeal
    committee alters the outcome to reduced; the case is referred. The reviewer and the approver let their
    windows run out. A second, batch case is determined and its letters issued.
    """
    from sqlmodel import SQLModel

    from workflow.db import make_engine
    from workflow.services import rulesets

    tmp = tmp_path_factory.mktemp("letters")
    engine = make_engine(f"sqlite:///{tmp / 'letters.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine, n_loans=3, loans_per_enterprise=2)
    with unit_of_work(engine) as s:
        small = s.get(Loan, bank.loans[2])
        small.amount = small.credit_total = small.balance = 200000
        s.add(small)
    case_id = drive(replace(bank, loans=bank.loans[:2]), "appeal_window", facts_for=liable_officer, appeal=False)
    with unit_of_work(engine) as s:
        cases.file_appeal(s, s.get(Case, case_id), bank.user(s, "officer"), "本人已书面提示风险，请求复核。", today=LATER)
    with unit_of_work(engine) as s:
        cases.close_appeal_window(s, s.get(Case, case_id), None, today=LATER + timedelta(days=14))
    with unit_of_work(engine) as s:
        case = s.get(Case, case_id)
        appeal = s.exec(select(Appeal).where(Appeal.case_id == case_id)).one()
        decide_appeal_by_panel(bank, s, case, appeal.id, "altered", "reduced",
                               "补充提交的书面报告证明被评议人曾提示风险，违规情节较轻，改为减责。",
                               today=LATER + timedelta(days=15))
        cases.conclude_appeals(s, case, bank.user(s, "appeal"), today=LATER + timedelta(days=16))
    with unit_of_work(engine) as s:
        cases.refer_for_accountability(s, s.get(Case, case_id), bank.user(s, "chair"), today=LATER + timedelta(days=17))
    batch_id = open_case(replace(bank, loans=bank.loans[2:]), batch=True)
    batch_id = drive(replace(bank, loans=bank.loans[2:]), "determined", existing=batch_id)
    with unit_of_work(engine) as s:
        letters.issue_determination_letters(s, s.get(Case, batch_id), bank.user(s, "chair"))
    yield bank, case_id, batch_id
    engine.dispose()


def test_every_document_of_a_full_lifecycle_with_an_altered_appeal_is_fit_to_send(lifecycle):
    bank, case_id, batch_id = lifecycle
    with Session(bank.engine) as s:
        docs = s.exec(select(Letter).order_by(Letter.id)).all()
        kinds = {lt.kind for lt in docs}
        assert kinds >= {"investigation_report", "minutes", "determination", "publicity_notice", "service_record",
                         "appeal_record", "appeal_decision", "referral", "batch_report"}
        assert any(lt.kind == "determination" and lt.data.get("final") for lt in docs)
        found = {f"{lt.doc_number} ({lt.kind})": problems(pdf_text(lt.pdf)) for lt in docs}
    assert {doc: p for doc, p in found.items() if p} == {}


def test_a_liable_letter_names_the_deciding_stage_and_its_rule_and_an_exempt_reason_only_under_its_stage(lifecycle):
    bank, case_id, _ = lifecycle
    with Session(bank.engine) as s:
        officer = _respondent(s, bank, "officer", case_id)
        first = s.exec(select(Letter).where(Letter.subject_key == letters.subject_key("determination", case_id,
                                                                                       officer.id),
                                            Letter.version == 1)).one()
        text = _flat(pdf_text(first.pdf))
    # Each stage under its own heading, in order: the exempt post-loan stage's reason appears only there.
    pre = text.index("贷款L2024-0001·贷前调查环节：不予免责")
    post = text.index("贷款L2024-0001·贷后管理环节：免责")
    assert pre < post
    exempt_reason = "无确切证据证明被评议人违反法律法规"
    assert text.count(exempt_reason) == 2 and text.index(exempt_reason) > post  # once per loan, under post-loan
    liable_rule = "存在违反法律法规、监管规定的行为，或未履行职责且与损失存在因果关系"
    assert pre < text.index(liable_rule) < post
    assert "经查，经办人未对照纳税记录和银行流水核实借款用途" in text  # the written findings (经查)
    assert "《普惠信贷尽职免责实施细则（示范文本）》第十四条第（三）项" in text  # the bank's own rule
    assert "综合各环节，贷款L2024-0001·贷前调查环节、贷款L2024-0002·贷前调查环节的认定结论均为不予免责" in text
    assert "认定被评议人张三：不予免责" in text
    assert "表决情况参加表决3人" in text
    assert "移交人力资源部（问责部门）依规处理" in text
    assert "自本认定书送达之日起5个工作日内" in text and "送达回证" in text


def test_after_an_altered_appeal_the_final_determination_cites_the_decision_and_has_no_appeal_section(lifecycle):
    bank, case_id, _ = lifecycle
    with Session(bank.engine) as s:
        officer = _respondent(s, bank, "officer", case_id)
        final = _current(s, "determination", case_id, officer.id)
        decision = s.exec(select(Letter).where(Letter.kind == "appeal_decision")).one()
        text = _flat(pdf_text(final.pdf))
        assert final.version == 2 and final.data["final"] is True and final.data["appeal"] is None
        assert final.supersedes_id is not None and final.branch_id == bank.branches["T1"]
    assert decision.doc_number in text and "申诉复核决定" in text
    assert "最终认定被评议人张三：减责" in text and "不再受理申诉" in text
    assert "申诉权利" not in text and "送达之日起5个工作日内" not in text
    assert "违反法律法规、监管规定的行为，或未履行职责" not in text  # the overturned reason is not cited


def test_the_appeal_decision_carries_the_appeal_bodys_header_and_series(lifecycle):
    bank, case_id, _ = lifecycle
    with Session(bank.engine) as s:
        decision = s.exec(select(Letter).where(Letter.kind == "appeal_decision")).one()
        record = s.exec(select(Letter).where(Letter.kind == "appeal_record")).one()
        numbers = {lt.kind: lt.doc_number for lt in s.exec(select(Letter).where(Letter.case_id == case_id,
                                                                                Letter.version == 1))}
    head_office = bank.branches["HO"]
    assert decision.branch_id == record.branch_id == head_office
    assert decision.doc_number.startswith("总行免复〔") and decision.doc_number.endswith("〕1号")
    assert record.doc_number.startswith("总行免申〔") and record.doc_number.endswith("〕1号")
    text = _flat(pdf_text(decision.pdf))
    assert text.startswith("示范商业银行总行") and "示范商业银行总行尽职免责申诉复核委员会" in text
    assert "一分行尽职免责评议委员会" not in text
    # Each kind in its own series of its organ.
    assert numbers["determination"].startswith("一分免认〔") and numbers["minutes"].startswith("一分免纪〔")
    assert numbers["investigation_report"].startswith("一分免调〔") and numbers["publicity_notice"].startswith("一分免公〔")
    assert numbers["referral"].startswith("一分免移〔") and numbers["service_record"].startswith("一分免送〔")


def test_the_minutes_name_attendance_recusals_votes_and_the_chairs_signature(lifecycle):
    bank, case_id, batch_id = lifecycle
    with Session(bank.engine) as s:
        minutes = _current(s, "minutes", case_id)
        batch = _current(s, "batch_report", batch_id)
        report = _current(s, "investigation_report", case_id)
        referral = _current(s, "referral", case_id)
    text = _flat(pdf_text(minutes.pdf))
    assert "出席委员：周九（主任委员）、钱七、孙八" in text
    assert "王五：系本案被评议人" not in text  # the approver is a respondent, not a committee member
    assert "对被评议人张三的表决" in text and "参加表决3人" in text and "主持人签字：周九" in text
    assert "本案共有被评议人3人" in _flat(pdf_text(batch.pdf))
    report_text = _flat(pdf_text(report.pdf))
    assert "被评议人张三的履职情况" in report_text and "经查，经办人未对照纳税记录" in report_text
    assert "被评议人书面表示不提交免责陈述" in report_text and "调查人员：赵六" in report_text
    referral_text = _flat(pdf_text(referral.pdf))
    assert "人力资源部（问责部门）" in referral_text and "考核扣分按应扣分值的50%执行" in referral_text


def test_service_on_day_d_starts_the_window_and_case_page_letter_and_api_agree(bank, tmp_path):
    from tests.api.conftest import Api
    from tests.web.support import login, make_app, set_passwords
    from workflow import engine_of
    from workflow.services import tokens

    case_id = drive(bank, "in_publicity")
    day = TODAY
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        officer = _respondent(s, bank, "officer", case_id)
        letter = _current(s, "determination", case_id, officer.id)
        letters.record_service(s, case, bank.user(s, "chair"), letter.id, "in_person", day, served_by="周九")
        token = tokens.create(s, None, bank.users["officer"], "officer")[1]
    expected = deadlines.add_working_days(Session(bank.engine), day, 5)
    with Session(bank.engine) as s:
        service = s.exec(select(LetterService)).one()
        receipt = s.get(Letter, service.receipt_id)
        assert service.appeal_deadline == expected
    receipt_text = _flat(pdf_text(receipt.pdf))
    assert f"{expected.year}年{expected.month}月{expected.day}日止" in receipt_text
    assert f"{day.year}年{day.month}月{day.day}日送达" in receipt_text
    set_passwords(bank.engine)
    app = make_app(bank.engine, tmp_path)
    try:
        client = app.test_client()
        assert login(client, "officer").status_code == 302
        page = client.get(f"/cases/{case_id}").get_data(as_text=True)
        row = page[page.index(f'id="window-{officer.id}"'):]
        row = row[:row.index("</tr>")]
        assert expected.isoformat() in row or f"{expected.year}年{expected.month}月{expected.day}日" in row
        api = Api(app=app, client=app.test_client(), bank=bank, tokens={"officer": token})
        windows = {w["respondent_id"]: w for w in api.get("officer", f"/api/v1/cases/{case_id}/appeal-windows").json["items"]}
        assert windows[officer.id]["appeal_deadline"] == expected.isoformat()
        assert windows[officer.id]["served_on"] == day.isoformat() and windows[officer.id]["open"] is True
    finally:
        engine_of(app).dispose()


def test_an_appeal_after_the_respondents_own_deadline_is_refused(bank):
    from workflow.domain.errors import GuardFailed

    case_id = drive(bank, "appeal_window")
    with Session(bank.engine) as s:
        deadline = s.exec(select(LetterService)).first().appeal_deadline
    with unit_of_work(bank.engine) as s, pytest.raises(GuardFailed, match="ended on"):
        cases.file_appeal(s, s.get(Case, case_id), bank.user(s, "officer"), "迟到的申诉",
                          today=deadline + timedelta(days=1))


def test_two_respondents_who_both_waive_close_the_window_the_same_day(bank):
    with unit_of_work(bank.engine) as s:  # two respondents only: the approver handles no stage
        from workflow.models import LoanStage

        for a in s.exec(select(LoanStage).where(LoanStage.user_id == bank.users["approver"])):
            s.delete(a)
    case_id = drive(bank, "appeal_window")
    with unit_of_work(bank.engine) as s:
        cases.waive_appeal(s, s.get(Case, case_id), bank.user(s, "officer"), "对认定结论无异议，放弃申诉。", today=LATER)
        assert s.get(Case, case_id).state == "appeal_window"
    with unit_of_work(bank.engine) as s:
        cases.waive_appeal(s, s.get(Case, case_id), bank.user(s, "reviewer"), "放弃申诉。", today=LATER)
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.state == "final" and case.final_at.date() == date.today()
    with unit_of_work(bank.engine) as s, pytest.raises(Exception, match="waive|appeal"):
        cases.waive_appeal(s, s.get(Case, case_id), bank.user(s, "officer"), "再次放弃", today=LATER)


def test_a_letter_is_served_once_and_never_before_it_was_issued(bank):
    case_id = drive(bank, "in_publicity")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        letter = _current(s, "determination", case_id, _respondent(s, bank, "officer", case_id).id)
        with pytest.raises(ValidationFailed, match="issued on"):
            letters.record_service(s, case, bank.user(s, "chair"), letter.id, "post", TODAY - timedelta(days=1))
        with pytest.raises(ValidationFailed, match="future"):
            letters.record_service(s, case, bank.user(s, "chair"), letter.id, "post", TODAY + timedelta(days=1))
    serve_letters(bank, case_id)
    with unit_of_work(bank.engine) as s, pytest.raises(ConflictError, match="already served"):
        letters.record_service(s, s.get(Case, case_id), bank.user(s, "chair"), letter.id, "post", TODAY)


def test_a_respondent_acknowledges_their_own_letter_in_the_app(bank):
    from workflow.domain.errors import NotFound

    case_id = drive(bank, "in_publicity")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        mine = _current(s, "determination", case_id, _respondent(s, bank, "officer", case_id).id)
        theirs = _current(s, "determination", case_id, _respondent(s, bank, "reviewer", case_id).id)
        with pytest.raises(NotFound):
            letters.acknowledge(s, case, bank.user(s, "officer"), theirs.id)
        with pytest.raises(PermissionDenied):
            letters.acknowledge(s, case, bank.user(s, "chair"), mine.id)
        service = letters.acknowledge(s, case, bank.user(s, "officer"), mine.id)
        assert (service.method, service.served_on) == ("in_app", date.today())


def test_issuing_the_same_letters_twice_returns_the_stored_records(bank):
    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        first = letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"), today=TODAY)
    with unit_of_work(bank.engine) as s:
        again = letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"), today=TODAY)
    assert [lt.id for lt in first] == [lt.id for lt in again]
    with Session(bank.engine) as s:
        kinds = sorted(lt.kind for lt in s.exec(select(Letter).where(Letter.case_id == case_id)))
        assert kinds == ["determination"] * 3 + ["investigation_report", "minutes"]
        assert s.exec(select(DocSequence).where(DocSequence.series == "免认")).one().last_seq == 3


def test_a_correction_is_version_two_naming_version_one_and_both_remain(bank):
    drive(bank, "in_publicity")
    with Session(bank.engine) as s:
        v1 = s.exec(select(Letter).where(Letter.kind == "determination")).first()
        v1_sha, v1_pdf = v1.sha256, v1.pdf
    with unit_of_work(bank.engine) as s:
        v2 = letters.correct_letter(s, v1.id, bank.user(s, "chair"), "更正被评议人所在机构名称")
    with Session(bank.engine) as s:
        v2 = s.get(Letter, v2.id)
        old = s.get(Letter, v1.id)
        assert v2.version == 2 and v2.supersedes_id == v1.id and v2.doc_number != v1.doc_number
        assert v2.data["supersedes"] == v1.doc_number and v2.subject_key == v1.subject_key
        assert old.sha256 == v1_sha and old.pdf == v1_pdf
        text = _flat(pdf_text(v2.pdf))
        assert v1.doc_number in text and "更正原因：更正被评议人所在机构名称" in text


def test_a_preview_is_a_watermarked_unnumbered_draft_and_stores_nothing(bank):
    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        officer = _respondent(s, bank, "officer", case_id)
        draft = letters.preview(s, case, bank.user(s, "chair"), "determination", respondent_id=officer.id)
        count = len(s.exec(select(Letter)).all())
        seqs = [(d.series, d.last_seq) for d in s.exec(select(DocSequence))]
    text = _flat(pdf_text(draft.pdf))
    assert "草稿" in text and "（草稿，未编号）" in text and "免认〔" not in text
    with Session(bank.engine) as s:
        assert len(s.exec(select(Letter)).all()) == count
        assert [(d.series, d.last_seq) for d in s.exec(select(DocSequence))] == seqs


def test_the_form_an_administrator_sets_is_on_the_documents_issued_after(bank):
    with unit_of_work(bank.engine) as s:
        admin = bank.user(s, "admin")
        document_form.save_form(s, admin, bank_name="中原示范农村商业银行股份有限公司", cc="人力资源部、合规部、内审部")
        document_form.save_organ(s, admin, bank.branches["T1"], short_name="一分", committee_name="一分行尽职免责评议委员会",
                                 appeal_committee_name="一分行申诉复核委员会", signatory="李行长", printed_by="一分行办公室")
        with pytest.raises(ValidationFailed, match="short form"):
            document_form.save_organ(s, admin, bank.branches["T2"], short_name="一分", committee_name="二分行委员会",
                                     appeal_committee_name="二分行申诉复核委员会")
    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"))
        with pytest.raises(PermissionDenied):
            document_form.save_form(s, bank.user(s, "chair"), bank_name="别的银行", cc="")
    with Session(bank.engine) as s:
        letter = s.exec(select(Letter).where(Letter.kind == "determination")).first()
        text = _flat(pdf_text(letter.pdf))
    assert text.startswith("中原示范农村商业银行股份有限公司")
    assert "中原示范农村商业银行股份有限公司一分行尽职免责评议委员会" in text
    assert "签发人：李行长" in text and "抄送：人力资源部、合规部、内审部" in text
    assert "中原示范农村商业银行股份有限公司一分行办公室" in text


def test_a_missing_font_stores_nothing_and_is_a_clear_503(bank, monkeypatch):
    from workflow import pdf
    from workflow.domain.errors import DocumentsUnavailable

    case_id = drive(bank, "determined")

    def missing(*a, **kw):
        raise pdf.LetterFontMissing("the CJK font Noto Serif CJK SC is not installed")

    monkeypatch.setattr(pdf, "render_letter", missing)
    with Session(bank.engine) as s:
        before = len(s.exec(select(Letter)).all())
    with pytest.raises(DocumentsUnavailable) as excinfo, unit_of_work(bank.engine) as s:
        letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"))
    assert (excinfo.value.code, excinfo.value.http_status) == ("letter_font_missing", 503)
    with Session(bank.engine) as s:
        assert len(s.exec(select(Letter)).all()) == before
        assert all(d.last_seq in (0, 1) or d.series != "免认" for d in s.exec(select(DocSequence)))


def test_the_web_and_the_api_say_so_when_the_font_is_missing(bank, tmp_path, monkeypatch):
    from tests.web.support import login, make_app, set_passwords, version_of
    from workflow import engine_of, pdf
    from workflow.services import tokens

    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        token = tokens.create(s, None, bank.users["chair"], "chair")[1]
    set_passwords(bank.engine)
    app = make_app(bank.engine, tmp_path)

    def missing(*a, **kw):
        raise pdf.LetterFontMissing("the CJK font is not installed")

    monkeypatch.setattr(pdf, "render_letter", missing)
    try:
        client = app.test_client()
        assert login(client, "chair").status_code == 302
        response = client.post(f"/cases/{case_id}/letters", data={"csrf_token": client.csrf,
                                                                  "expected_version": version_of(bank.engine, case_id),
                                                                  "confirm": "1"},
                               follow_redirects=True)
        assert response.status_code == 200 and "scripts/setup" in response.get_data(as_text=True)
        api = app.test_client().post(f"/api/v1/cases/{case_id}/letters", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 503 and api.json["code"] == "letter_font_missing"
        with Session(bank.engine) as s:
            assert not s.exec(select(Letter).where(Letter.kind == "determination")).all()
    finally:
        engine_of(app).dispose()


def test_16_concurrent_issue_requests_store_one_current_letter_per_respondent_numbered_without_gaps(db_url, tmp_path):
    from sqlmodel import SQLModel

    from tests.api.conftest import build_api
    from workflow import engine_of

    api = build_api(db_url)
    try:
        bank = api.bank
        case_id = drive(bank, "determined")
        barrier = threading.Barrier(16)
        statuses, lock = [], threading.Lock()

        def issue():
            client = api.app.test_client()
            barrier.wait()
            response = client.post(f"/api/v1/cases/{case_id}/letters", headers=api.headers("chair"))
            with lock:
                statuses.append(response.status_code)

        threads = [threading.Thread(target=issue) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert set(statuses) <= {200, 409} and 200 in statuses, statuses
        with Session(engine_of(api.app)) as s:
            determinations = s.exec(select(Letter).where(Letter.case_id == case_id,
                                                         Letter.kind == "determination")).all()
            assert sorted(lt.respondent_id for lt in determinations) == sorted(
                r.id for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)))
            assert {lt.version for lt in determinations} == {1}
            assert sorted(lt.seq for lt in determinations) == [1, 2, 3]
            assert len(s.exec(select(Letter).where(Letter.kind == "minutes")).all()) == 1
            assert s.exec(select(DocSequence).where(DocSequence.series == "免认")).one().last_seq == 3
        del SQLModel
    finally:
        engine_of(api.app).dispose()


def test_document_numbers_stay_gap_free_under_concurrent_issuing_with_failures(bank):
    with Session(bank.engine) as s:
        branch = s.get(Branch, bank.branches["T2"])
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(12)

    def issue(n: int):
        barrier.wait()
        try:
            with unit_of_work(bank.engine) as s:
                seq, _ = letters.next_number(s, branch, 2026)
                if n % 3 == 0:
                    raise RuntimeError("rendering failed")  # the number must be given back
            with lock:
                results.append(seq)
        except RuntimeError:
            pass

    threads = [threading.Thread(target=issue, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(1, 9))
    with Session(bank.engine) as s:
        assert s.exec(select(DocSequence).where(DocSequence.branch_id == branch.id)).one().last_seq == 8


def test_batch_issuing_renders_in_processes_and_a_rerun_issues_nothing(sqlite_engine):
    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "determined")
    with Session(bank.engine) as s:
        chair = s.exec(select(User).where(User.username == "chair")).one()
        branch_id = s.get(Case, case_id).branch_id
    first = letters.issue_batch(bank.engine, branch_id, chair.id, workers=2)
    assert first == {"cases": 1, "letters_issued": 4, "cases_already_complete": 0}  # the minutes and 3 letters
    again = letters.issue_batch(bank.engine, branch_id, chair.id, workers=2)
    assert again == {"cases": 1, "letters_issued": 0, "cases_already_complete": 1}
    with Session(bank.engine) as s:
        assert sorted(lt.seq for lt in s.exec(select(Letter).where(Letter.kind == "determination"))) == [1, 2, 3]


def test_batch_issuing_groups_cases_and_a_failed_group_gives_its_numbers_back(sqlite_engine, monkeypatch):
    """Groups of cases share one transaction and one busy pool; a failure loses only the failing group."""
    bank = make_bank(sqlite_engine, n_loans=3, loans_per_enterprise=1)
    case_ids = [drive(bank, "determined", loan_ids=[loan_id]) for loan_id in bank.loans]
    with Session(bank.engine) as s:
        branch_id = s.get(Case, case_ids[0]).branch_id
    real_persist = letters.persist

    def persist_failing_in_the_last_case(session, pending, rendered, actor):
        if pending.case_id == case_ids[-1]:
            raise RuntimeError("disk full")
        return real_persist(session, pending, rendered, actor)

    monkeypatch.setattr(letters, "persist", persist_failing_in_the_last_case)
    progress: list[int] = []
    with pytest.raises(RuntimeError, match="disk full"):
        letters.issue_batch(bank.engine, branch_id, bank.users["chair"], workers=2, group_letters=8,
                            progress=progress.append)
    # The first group (two cases, eight documents) was stored; the failing case's group was rolled back.
    assert progress == [4, 4]
    determinations = select(Letter).where(Letter.kind == "determination")
    with Session(bank.engine) as s:
        assert sorted((lt.case_id, lt.seq) for lt in s.exec(determinations)) == \
            [(case_ids[0], 1), (case_ids[0], 2), (case_ids[0], 3), (case_ids[1], 4), (case_ids[1], 5),
             (case_ids[1], 6)]
    monkeypatch.setattr(letters, "persist", real_persist)
    progress.clear()
    rerun = letters.issue_batch(bank.engine, branch_id, bank.users["chair"], workers=2, group_letters=8,
                                progress=progress.append)
    assert rerun == {"cases": 3, "letters_issued": 4, "cases_already_complete": 2}
    assert progress == [0, 0, 4]
    with Session(bank.engine) as s:
        assert sorted(lt.seq for lt in s.exec(determinations)) == list(range(1, 10))  # gap-free
        from workflow.services import audit

        audit.verify(s)


def test_flask_letters_issue_batch_run_as_a_command_issues_what_is_missing(sqlite_engine, tmp_path):
    bank = make_bank(sqlite_engine, n_loans=2, loans_per_enterprise=1)
    case_ids = [drive(bank, "determined", loan_ids=[loan_id]) for loan_id in bank.loans]
    with unit_of_work(bank.engine) as s:  # one case's letters are already issued
        letters.issue_determination_letters(s, s.get(Case, case_ids[0]), bank.user(s, "chair"))
    env = {**os.environ, "DATABASE_URL": sqlite_engine.url.render_as_string(hide_password=False),
           "MIANZE_EVIDENCE_DIR": str(tmp_path / "evidence")}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "letters", "issue-batch", "--branch", "T1",
                             "--as", "chair", "--workers", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"cases": 2, "letters_issued": 4, "cases_already_complete": 1}
    with Session(bank.engine) as s:
        assert len(s.exec(select(Letter).where(Letter.kind == "determination")).all()) == 6


def test_a_calendar_change_restates_a_running_deadline_in_a_new_certificate_and_tells_the_respondent(bank):
    from workflow.models import CalendarOverride, Notification

    case_id = drive(bank, "in_publicity")
    serve_letters(bank, case_id, TODAY)
    with Session(bank.engine) as s:
        service = s.exec(select(LetterService)).first()
        before, receipt = service.appeal_deadline, s.get(Letter, service.receipt_id)
        # A working day inside the window becomes a holiday.
        holiday = next(d for d in (TODAY + timedelta(days=n) for n in range(1, 10))
                       if deadlines.add_working_days(s, d - timedelta(days=1), 1) == d and d <= before)
    with unit_of_work(bank.engine) as s:
        s.add(CalendarOverride(day=holiday, working=False, note="临时调休"))
        s.flush()
        moved = letters.restate_deadlines(s, s.get(Case, case_id), bank.user(s, "chair"))
        assert len(moved) == 3
    with Session(bank.engine) as s:
        service = s.get(LetterService, service.id)
        assert service.appeal_deadline == deadlines.add_working_days(s, before, 1)
        restated = s.get(Letter, service.receipt_id)
        assert restated.version == 2 and restated.supersedes_id == receipt.id
        new = service.appeal_deadline
        assert f"{new.year}年{new.month}月{new.day}日止" in _flat(pdf_text(restated.pdf))
        told = s.exec(select(Notification).where(Notification.kind == "deadline_moved")).all()
        assert len(told) == 3
        assert s.get(Case, case_id).appeal_window_ends == new
    with unit_of_work(bank.engine) as s:  # counted again, nothing moves
        assert letters.restate_deadlines(s, s.get(Case, case_id), bank.user(s, "chair")) == []


def test_the_rendering_processes_end_with_their_parent(tmp_path):
    """A batch killed mid-way leaves no rendering process behind (PR_SET_PDEATHSIG in each worker)."""
    import signal
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from multiprocessing import get_context\n"
        "from workflow.services import letters\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(2, mp_context=get_context('spawn'), initializer=letters._worker_start)\n"
        "    list(pool.map(int, [1, 2]))\n"
        "    print(' '.join(str(p.pid) for p in pool._processes.values()), flush=True)\n"
        "    time.sleep(60)\n", encoding="utf-8")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2
        parent.send_signal(signal.SIGKILL)  # no shutdown, no clean-up: the parent is simply gone
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        alive = set(workers)
        while alive and time.monotonic() < deadline:
            alive = {pid for pid in alive if Path(f"/proc/{pid}").exists()
                     and "Z" not in (Path(f"/proc/{pid}/stat").read_text().split()[2:3] or ["Z"])}
            time.sleep(0.1)
        assert alive == set()
    finally:
        parent.kill()
        parent.stdout.close()


def test_correcting_a_final_determination_keeps_it_final(lifecycle):
    bank, case_id, _ = lifecycle
    with Session(bank.engine) as s:
        officer = _respondent(s, bank, "officer", case_id)
        final = _current(s, "determination", case_id, officer.id)
    from workflow.db import writer

    with Session(writer(bank.engine)) as s:  # rolled back: the module's lifecycle stays as it is
        try:
            corrected = letters.correct_letter(s, final.id, bank.user(s, "chair"), "更正被评议人工号")
            assert corrected.version == 3 and corrected.data["final"] is True and corrected.data["appeal"] is None
            assert corrected.data["appeal_outcome"]["doc_number"] == final.data["appeal_outcome"]["doc_number"]
        finally:
            s.rollback()
