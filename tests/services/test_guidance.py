"""The precedent library: proposed by one curator, approved by another, anonymised, found by its codes."""

from __future__ import annotations

import pytest
from sqlmodel import select

from tests.factories import drive, liable_officer, make_bank
from workflow.db import unit_of_work
from workflow.domain.errors import PermissionDenied, ValidationFailed
from workflow.models import AuditEvent, Case, Enterprise, Loan, Precedent, Respondent, User
from workflow.services import guidance


def _final_case_with_named_findings(engine):
    bank = make_bank(engine)

    def facts(r, a):
        f = liable_officer(r, a)
        if a.stage == "pre_loan":
            f["findings"] = ("经查，客户经理张三（工号E1000，身份证号110101198001011000）未核实示范小微制造有限公司"
                             "（统一社会信用代码91110000MA0000001X）法定代表人刘老板提供的流水，贷款L2024-0001资金被挪用；"
                             "一网点未复核。")
        return f

    case_id = drive(bank, "final", facts_for=facts)
    return bank, case_id


def _officer_respondent(s, bank, case_id):
    return s.exec(select(Respondent).where(Respondent.case_id == case_id,
                                           Respondent.user_id == bank.users["officer"])).one()


def test_an_approved_precedent_holds_no_identifier_of_the_case_and_is_found_by_its_rule_code(engine):
    bank, case_id = _final_case_with_named_findings(engine)
    with unit_of_work(engine) as s:
        case = s.get(Case, case_id)
        p = guidance.propose(s, case, bank.user(s, "chair"), _officer_respondent(s, bank, case_id).id)
        pid = p.id
    with unit_of_work(engine) as s:
        guidance.approve(s, pid, bank.user(s, "admin"))
    with unit_of_work(engine) as s:
        p = s.get(Precedent, pid)
        case = s.get(Case, case_id)
        ent = s.get(Enterprise, case.enterprise_id)
        forbidden = {case.number, ent.name, ent.uscc, ent.owner_name}
        forbidden |= {lo.loan_no for lo in s.exec(select(Loan))}
        for u in s.exec(select(User)):
            forbidden |= {u.name, u.employee_no, u.username} | ({u.id_number, u.phone} - {None})
        forbidden |= {"一网点", "一支行"}
        fields = [str(v) for k, v in p.model_dump().items() if k not in ("id", "case_id", "respondent_id",
                                                                            "branch_id", "proposed_by_id",
                                                                            "decided_by_id", "edited_by_id")]
        blob = "\n".join(fields)
        assert [f for f in forbidden if f and f in blob] == []
        assert p.status == "approved" and p.outcome == "liable" and p.amount_band == "1m_3m"
        pre = next(st for st in p.stages if st["stage"] == "pre_loan")
        assert pre["unperformed"][0]["code"] == "PL03" and pre["unperformed"][0]["zh"]
        assert "某企业" in pre["findings"] and pre["violation"] is True and pre["decided_by"]["rule"]
        assert [x.id for x in guidance.search(s, bank.user(s, "officer"), code="PL03")] == [pid]
        assert guidance.search(s, bank.user(s, "officer"), code="P02") == []
        assert [x.id for x in guidance.search(s, bank.user(s, "officer"), stage="pre_loan", outcome="liable",
                                              product="inclusive_sme", text="流水")] == [pid]
        events = [e.event for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id))]
        assert events[-2:] == ["propose_precedent", "approve_precedent"]
        shown = guidance.similar(s, "pre_loan", {"PL03", "PL01"})
        assert [m.precedent.id for m in shown] == [pid] and shown[0].shared == ("PL03",)
        assert guidance.similar(s, "review", {"PL03"}) == []


def test_the_proposer_may_not_approve_their_own_proposal_and_an_officer_may_not_propose(engine):
    bank, case_id = _final_case_with_named_findings(engine)
    with unit_of_work(engine) as s:
        r = _officer_respondent(s, bank, case_id)
        with pytest.raises(PermissionDenied) as refused:
            guidance.propose(s, s.get(Case, case_id), bank.user(s, "auditor"), r.id)
        assert refused.value.details["reason"] == "not_curator"
        pid = guidance.propose(s, s.get(Case, case_id), bank.user(s, "chair"), r.id).id
    with unit_of_work(engine) as s:
        with pytest.raises(PermissionDenied) as refused:
            guidance.approve(s, pid, bank.user(s, "chair"))
        assert refused.value.details["reason"] == "self_approval"


def test_an_edit_that_names_the_enterprise_again_is_refused_and_a_clean_one_is_kept(engine):
    bank, case_id = _final_case_with_named_findings(engine)
    with unit_of_work(engine) as s:
        pid = guidance.propose(s, s.get(Case, case_id), bank.user(s, "chair"),
                               _officer_respondent(s, bank, case_id).id).id
    with unit_of_work(engine) as s:
        with pytest.raises(ValidationFailed):
            guidance.edit(s, pid, bank.user(s, "admin"), title="挪用案例", reasoning="",
                          findings={0: "示范小微制造有限公司挪用贷款"})
    with unit_of_work(engine) as s:
        guidance.edit(s, pid, bank.user(s, "admin"), title="贷款资金被挪用", reasoning="未核实用途",
                      findings={0: "经办人未核实借款用途。"})
        guidance.reject(s, pid, bank.user(s, "admin"), "情节不典型")
    with unit_of_work(engine) as s:
        p = s.get(Precedent, pid)
        assert (p.status, p.title, p.stages[0]["findings"]) == ("rejected", "贷款资金被挪用", "经办人未核实借款用途。")
        assert guidance.search(s, bank.user(s, "officer"), code="PL03") == []
