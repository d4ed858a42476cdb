"""Investigation: evidence files and facts linked to them."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from tests.factories import drive
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, ValidationFailed
from workflow.models import AuditEvent, Case, Evidence, Respondent, StageFact
from workflow.services import investigation

PDF = b"%PDF-1.4\n% evidence\n"


def _officer(s: Session, bank) -> Respondent:
    return s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).one()


def test_evidence_is_stored_by_hash_and_facts_link_to_it(bank, tmp_path):
    case_id = drive(bank, "investigating")
    with unit_of_work(bank.engine) as s:
        ev = investigation.add_evidence(s, s.get(Case, case_id), bank.user(s, "investigator"),
                                        filename="现场调查记录.pdf", content_type="application/pdf", data=PDF,
                                        storage_dir=str(tmp_path))
        investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), _officer(s, bank).id,
                                   bank.loans[0], "pre_loan",
                                   {"positive": ["P07"], "evidence": {"P07": [ev.id]},
                                    "unperformed": [{"duty": "PL03", "causal": False, "evidence": [ev.id]}]})
    with Session(bank.engine) as s:
        ev = s.exec(select(Evidence)).one()
        assert investigation.evidence_path(str(tmp_path), ev).read_bytes() == PDF
        fact = s.exec(select(StageFact)).one()
        assert fact.facts["evidence"] == {"P07": [ev.id]}
        assert {e.event for e in s.exec(select(AuditEvent))} >= {"add_evidence", "record_facts"}


@pytest.mark.parametrize(("content_type", "data", "message"), [
    ("application/x-msdownload", b"MZ", "not accepted"),
    ("application/pdf", b"", "empty"),
    ("application/pdf", b"GIF89a", "does not match"),
    ("application/pdf", b"%PDF" + b"0" * 2048, "larger than"),
])
def test_bad_evidence_files_are_refused_with_a_clear_reason_and_nothing_is_saved(bank, tmp_path, content_type, data,
                                                                                 message):
    case_id = drive(bank, "investigating")
    with pytest.raises(ValidationFailed, match=message):
        with unit_of_work(bank.engine) as s:
            investigation.add_evidence(s, s.get(Case, case_id), bank.user(s, "investigator"), filename="x",
                                       content_type=content_type, data=data, storage_dir=str(tmp_path),
                                       max_bytes=1024 * 1024 if len(data) < 1024 else 1024)
    with Session(bank.engine) as s:
        assert s.exec(select(Evidence)).first() is None


def test_facts_may_not_cite_evidence_of_another_case_or_for_an_item_not_established(bank, tmp_path):
    case_id = drive(bank, "investigating")
    with pytest.raises(ValidationFailed, match="does not belong"):
        with unit_of_work(bank.engine) as s:
            investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), _officer(s, bank).id,
                                       bank.loans[0], "pre_loan",
                                       {"unperformed": [{"duty": "PL01", "causal": True, "evidence": [999]}]})
    with pytest.raises(ValidationFailed, match="not established"):
        with unit_of_work(bank.engine) as s:
            investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), _officer(s, bank).id,
                                       bank.loans[0], "pre_loan", {"evidence": {"P02": [1]}})


def test_only_the_cases_investigator_records_facts_and_only_for_stages_the_person_held(bank):
    case_id = drive(bank, "investigating")
    with pytest.raises(PermissionDenied):
        with unit_of_work(bank.engine) as s:
            investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "chair"), _officer(s, bank).id,
                                       bank.loans[0], "pre_loan", {})
    with pytest.raises(ValidationFailed, match="did not hold"):
        with unit_of_work(bank.engine) as s:
            investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), _officer(s, bank).id,
                                       bank.loans[0], "approval", {})
