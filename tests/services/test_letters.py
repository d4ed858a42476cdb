"""Letters: content a respondent can read, stored once, corrected by versions, numbered without gaps."""

from __future__ import annotations

import subprocess
import threading

from sqlmodel import Session, select

from tests.factories import TODAY, drive
from workflow.db import unit_of_work
from workflow.models import Branch, Case, DocSequence, Letter, Respondent, User
from workflow.services import letters


def _text(pdf_bytes: bytes) -> str:
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf_bytes, capture_output=True, check=True)
    return out.stdout.decode("utf-8")


def test_a_determination_letter_names_number_person_outcome_rules_and_appeal_deadline(bank):
    case_id = drive(bank, "in_publicity")
    with Session(bank.engine) as s:
        officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).one()
        letter = s.exec(select(Letter).where(Letter.respondent_id == officer.id,
                                             Letter.kind == "determination")).one()
        text = _text(letter.pdf)
        assert letter.doc_number in text.replace(" ", "")
        assert "张三" in text
        assert "免责" in text
        for reason in letter.data["reasons"]:
            assert reason["code"] in text
        deadline = letter.data["appeal"]["deadline"]
        y, m, d = deadline.split("-")
        assert f"{int(y)}年{int(m)}月{int(d)}日" in text.replace(" ", "")
        fonts = subprocess.run(["pdffonts", "-"], input=letter.pdf, capture_output=True, check=True).stdout.decode()
        assert "Noto-Serif-CJK-SC-Letters" in fonts and "Noto-Sans-CJK-SC-Letters-Bold" in fonts
        case = s.get(Case, case_id)
        assert case.tolerance["display"]["gap_pp"] in text or case.tolerance["display"]["sme_ratio"] in text


def test_issuing_the_same_letter_twice_returns_the_stored_record(bank):
    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        first = letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"), today=TODAY)
    with unit_of_work(bank.engine) as s:
        again = letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"), today=TODAY)
    assert [lt.id for lt in first] == [lt.id for lt in again]
    with Session(bank.engine) as s:
        assert len(s.exec(select(Letter)).all()) == len(first)
        assert s.exec(select(DocSequence)).one().last_seq == len(first)


def test_a_correction_is_version_two_naming_version_one_and_both_remain(bank):
    case_id = drive(bank, "in_publicity")
    with Session(bank.engine) as s:
        v1 = s.exec(select(Letter).where(Letter.kind == "determination")).first()
        v1_sha, v1_pdf = v1.sha256, v1.pdf
    with unit_of_work(bank.engine) as s:
        v2 = letters.correct_letter(s, v1.id, bank.user(s, "chair"), "更正被评议人所在机构名称")
    with Session(bank.engine) as s:
        v2 = s.get(Letter, v2.id)
        old = s.get(Letter, v1.id)
        assert v2.version == 2 and v2.supersedes_id == v1.id and v2.doc_number != v1.doc_number
        assert v2.data["supersedes"] == v1.doc_number
        assert old.sha256 == v1_sha and old.pdf == v1_pdf
        assert v1.doc_number in _text(v2.pdf).replace(" ", "")
    assert case_id


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
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    case_id = drive(bank, "determined")
    with Session(bank.engine) as s:
        chair = s.exec(select(User).where(User.username == "chair")).one()
        branch_id = s.get(Case, case_id).branch_id
    first = letters.issue_batch(bank.engine, branch_id, chair.id, workers=2)
    assert first == {"cases": 1, "letters_issued": 3, "cases_already_complete": 0}
    again = letters.issue_batch(bank.engine, branch_id, chair.id, workers=2)
    assert again == {"cases": 1, "letters_issued": 0, "cases_already_complete": 1}
    with Session(bank.engine) as s:
        numbers = sorted(lt.seq for lt in s.exec(select(Letter)))
        assert numbers == [1, 2, 3]


def test_batch_issuing_groups_cases_and_a_failed_group_gives_its_numbers_back(sqlite_engine, monkeypatch):
    """Groups of cases share one transaction and one busy pool; a failure loses only the failing group."""
    from tests.factories import make_bank

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
    try:
        letters.issue_batch(bank.engine, branch_id, bank.users["chair"], workers=2, group_letters=6,
                            progress=progress.append)
        raise AssertionError("the failure must reach the caller")
    except RuntimeError as exc:
        assert str(exc) == "disk full"
    # The first group (two cases, six letters) was stored; the failing case's group was rolled back.
    assert progress == [3, 3]
    with Session(bank.engine) as s:
        assert sorted((lt.case_id, lt.seq) for lt in s.exec(select(Letter))) == \
            [(case_ids[0], 1), (case_ids[0], 2), (case_ids[0], 3), (case_ids[1], 4), (case_ids[1], 5),
             (case_ids[1], 6)]
        assert s.exec(select(DocSequence).where(DocSequence.branch_id == branch_id)).one().last_seq == 6

    monkeypatch.setattr(letters, "persist", real_persist)
    progress.clear()
    rerun = letters.issue_batch(bank.engine, branch_id, bank.users["chair"], workers=2, group_letters=6,
                                progress=progress.append)
    assert rerun == {"cases": 3, "letters_issued": 3, "cases_already_complete": 2}
    assert progress == [0, 0, 3]
    with Session(bank.engine) as s:
        assert sorted(lt.seq for lt in s.exec(select(Letter))) == list(range(1, 10))  # gap-free
        assert {lt.case_id for lt in s.exec(select(Letter).where(Letter.seq > 6))} == {case_ids[2]}
        from workflow.services import audit

        audit.verify(s)
