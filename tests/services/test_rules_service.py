"""Rules in the service layer: versions by stage date, re-evaluation, scope, stale facts, deviations, CLI."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from tests.factories import drive, hear_all, open_case, record_all_facts
from workflow import create_app, engine_of
from workflow.db import unit_of_work
from workflow.domain.errors import GuardFailed, OutOfScope, ValidationFailed
from workflow.domain.states import TransitionNotAllowed
from workflow.models import AuditEvent, Case, Loan, Notification, Respondent, RuleSetVersion, StageFact, Vote
from workflow.services import cases, investigation, rulesets


def _publish_v2(bank, effective: date) -> RuleSetVersion:
    """Version 2 adds a post-loan duty PO04 that version 1 does not know."""
    with unit_of_work(bank.engine) as s:
        data = dict(rulesets.parsed(rulesets.version_in_force(s, date(2024, 8, 2))).model_dump(mode="json"))
        data["version"] = "bank-2024.2"
        data["duties"] = data["duties"] + [{"code": "PO04", "stage": "post_loan", "zh": "按月核查抵押物状态",
                                            "en": "checked the collateral monthly", "source": "本行2024年制度",
                                            "verified": False}]
        return rulesets.publish(s, bank.user(s, "admin"), data, effective, note="adds PO04")


def test_each_stage_is_judged_by_the_rule_version_in_force_on_its_date(bank):
    _publish_v2(bank, date(2024, 9, 1))  # pre_loan was 2024-08-11 (v1); post_loan 2024-09-30 (v2)
    case_id = drive(bank, "investigating")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).first()
        inv = bank.user(s, "investigator")
        loan = bank.loans[0]
        post = investigation.record_facts(s, case, inv, officer.id, loan, "post_loan",
                                          {"unperformed": [{"duty": "PO04", "causal": False}]})
        assert s.get(RuleSetVersion, post.rule_set_version_id).version == 2
    with pytest.raises(ValidationFailed, match="PO04"):
        with unit_of_work(bank.engine) as s:
            officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).first()
            # PO04 is unknown to version 1, which governs the earlier pre-loan stage
            investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), officer.id,
                                       bank.loans[0], "pre_loan", {"unperformed": [{"duty": "PO04", "causal": False}]})
    with Session(bank.engine) as s:
        row = s.exec(select(StageFact).where(StageFact.stage == "post_loan")).first()
        assert row.facts["unperformed"][0]["duty"] == "PO04"


def test_re_evaluation_waits_for_a_return_and_is_audited(bank):
    _publish_v2(bank, date(2030, 1, 1))
    case_id = drive(bank, "under_review")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        r = s.exec(select(Respondent).where(Respondent.case_id == case_id)).first()
        cases.record_vote(s, case, bank.user(s, "member1"), r.id, "exempt")
    with pytest.raises(TransitionNotAllowed, match="facts lock"):
        with unit_of_work(bank.engine) as s:
            cases.reevaluate(s, s.get(Case, case_id), bank.user(s, "chair"), 2, "更正后的清单适用")
    with unit_of_work(bank.engine) as s:
        cases.return_for_investigation(s, s.get(Case, case_id), bank.user(s, "chair"), "适用版本待复核")
    with pytest.raises(ValidationFailed, match="why"):
        with unit_of_work(bank.engine) as s:
            cases.reevaluate(s, s.get(Case, case_id), bank.user(s, "chair"), 2, "")
    with unit_of_work(bank.engine) as s:
        cases.reevaluate(s, s.get(Case, case_id), bank.user(s, "chair"), 2, "更正后的清单适用")
    with Session(bank.engine) as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.event == "reevaluate")).one()
        assert ev.payload["version"] == 2 and ev.payload["reason"] == "更正后的清单适用"
        assert all(f.rule_set_version_id == 2 for f in s.exec(select(StageFact)))
        assert all(v.invalidated_at is not None for v in s.exec(select(Vote)))


def test_a_loan_outside_the_inclusive_scope_is_refused_with_the_reason(bank):
    with unit_of_work(bank.engine) as s:
        loan = s.get(Loan, bank.loans[0])
        loan.credit_total = Decimal("12000000")
        s.add(loan)
    with pytest.raises(OutOfScope, match="10,000,000"):
        open_case(bank)
    with Session(bank.engine) as s:
        assert s.exec(select(Case)).first() is None


def test_a_batch_report_is_refused_for_loans_above_the_threshold(bank):
    with pytest.raises(ValidationFailed, match="batch"):
        with unit_of_work(bank.engine) as s:
            cases.open_case(s, bank.user(s, "admin"), bank.loans, batch_report=True)


def test_facts_lock_under_review_and_a_return_announces_the_voided_votes(bank):
    case_id = drive(bank, "under_review")
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).first()
        assert officer.recommended_outcome == "exempt"
        cases.record_vote(s, case, bank.user(s, "member1"), officer.id, "exempt")
    with pytest.raises(TransitionNotAllowed, match="return for investigation"):
        with unit_of_work(bank.engine) as s:
            officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).first()
            investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), officer.id,
                                       bank.loans[0], "pre_loan", {"negative": ["N05"]})
    with Session(bank.engine) as s:
        assert all(v.invalidated_at is None for v in s.exec(select(Vote)))
        assert s.exec(select(Notification).where(Notification.kind == "votes_voided")).first() is None
    with unit_of_work(bank.engine) as s:
        cases.return_for_investigation(s, s.get(Case, case_id), bank.user(s, "chair"), "贷前调查事实需补充")
    with unit_of_work(bank.engine) as s:
        officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).first()
        investigation.record_facts(s, s.get(Case, case_id), bank.user(s, "investigator"), officer.id,
                                   bank.loans[0], "pre_loan", {"negative": ["N05"]})
    with Session(bank.engine) as s:
        assert all(v.invalidated_at is not None for v in s.exec(select(Vote)))
        told = {n.user_id: n.message for n in s.exec(select(Notification).where(Notification.kind == "votes_voided"))}
        assert bank.users["member1"] in told and bank.users["officer"] in told and bank.users["chair"] in told
        assert "已退回补充调查" in told[bank.users["member1"]]
        events = [e.event for e in cases.audit_events(s, case_id)]
        assert events[-3:] == ["return_for_investigation", "votes_invalidated", "record_facts"]


def test_a_committee_deviation_needs_a_reason_and_is_shown_in_the_letter(bank):
    def facts(r, a):
        f = {"unperformed": []}
        if a.stage == "pre_loan":
            f = {"violation": True, "unperformed": [{"duty": "PL03", "causal": True}]}
        return f

    case_id = open_case(bank)
    with unit_of_work(bank.engine) as s:
        cases.assign_investigator(s, s.get(Case, case_id), bank.user(s, "chair"), bank.users["investigator"])
    record_all_facts(bank, case_id, facts)
    hear_all(bank, case_id)
    with unit_of_work(bank.engine) as s:
        cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"))
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
            for m in ("member1", "member2", "chair"):
                cases.record_vote(s, case, bank.user(s, m), r.id, "reduced" if r.recommended_outcome == "liable"
                                  else r.recommended_outcome)
    with Session(bank.engine) as s:
        officer = s.exec(select(Respondent).where(Respondent.user_id == bank.users["officer"])).first()
        assert officer.recommended_outcome == "liable"
    with pytest.raises(GuardFailed, match="differs from the recommendation"):
        with unit_of_work(bank.engine) as s:
            cases.determine(s, s.get(Case, case_id), bank.user(s, "chair"))
    with unit_of_work(bank.engine) as s:
        cases.determine(s, s.get(Case, case_id), bank.user(s, "chair"), {officer.id: "借款人突发重大疾病，损失与违规无直接关系"})
    from workflow.services import letters

    with unit_of_work(bank.engine) as s:
        issued = letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"))
        mine = next(lt for lt in issued if lt.respondent_id == officer.id)
        assert mine.data["deviation"] == {"recommended": "liable", "decided": "reduced",
                                          "reason": "借款人突发重大疾病，损失与违规无直接关系"}


def test_rules_evaluate_prints_the_answer_and_fails_clearly_on_bad_input(sqlite_url, tmp_path):
    from workflow.migrate import upgrade

    upgrade(sqlite_url)
    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True})
    with unit_of_work(engine_of(app)) as s:
        rulesets.ensure_default(s)
    request = {"rule_set": "current", "tolerance": {"sme_npl_ratio": "0.0501", "all_npl_ratio": "0.0200"},
               "respondents": [{"id": "E1001", "stages": [{"stage": "pre_loan", "positive": ["P02"],
                                                          "mitigating": [], "negative": [], "violation": False,
                                                          "unperformed": [{"duty": "PL03", "causal": True}],
                                                          "dissented": False}]}]}
    path = tmp_path / "whatif.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["rules", "evaluate", str(path)])
    assert ok.exit_code == 0, ok.output
    answer = json.loads(ok.output)
    assert answer["respondents"][0]["outcome"] == "exempt"
    assert answer["tolerance"]["within"] is False
    request["respondents"][0]["stages"][0]["negative"] = ["N99"]
    bad = runner.invoke(args=["rules", "evaluate", "-"], input=json.dumps(request))
    assert bad.exit_code == 2 and "N99" in bad.output
    engine_of(app).dispose()


def test_an_enterprise_has_one_open_case_so_its_loans_are_considered_together(bank):
    with unit_of_work(bank.engine) as s:
        first = cases.open_case(s, bank.user(s, "admin"), [bank.loans[0]]).id
    with pytest.raises(ValidationFailed, match="统一合并考量"):
        with unit_of_work(bank.engine) as s:
            cases.open_case(s, bank.user(s, "admin"), [bank.loans[1]])
    with unit_of_work(bank.engine) as s:
        cases.withdraw(s, s.get(Case, first), bank.user(s, "admin"), "并入覆盖全部不良贷款的案件")
    with unit_of_work(bank.engine) as s:
        merged = cases.open_case(s, bank.user(s, "admin"), bank.loans)
        assert len(cases.case_loans(s, merged.id)) == 2
        assert len(cases.respondents_of(s, merged.id)) == 3  # each person once, across both loans
