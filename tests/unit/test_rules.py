"""The rule set and the recommendation engine (domain.md §6, §8, §9), table-driven."""

import copy
import json
from datetime import date
from decimal import Decimal

import pytest

from workflow.domain.errors import OutOfScope, ValidationFailed
from workflow.domain.rules import (
    DEFAULT_RULE_SET_PATH,
    SEVERITY,
    STEPS,
    RuleSet,
    StageFacts,
    appeal_outcome_allowed,
    check_scope,
    decide_by_votes,
    evaluate,
    is_batch_eligible,
    load_default_rule_set,
    parse_rule_set,
    quorum_reached,
    recommend_respondent,
    recommend_stage,
    rule_set_for,
    validate_facts,
)
from workflow.domain.tolerance import compute_tolerance


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_default_rule_set()


@pytest.fixture
def raw() -> dict:
    with DEFAULT_RULE_SET_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def facts(stage="pre_loan", **kw) -> dict:
    return {"stage": stage, **kw}


def duty(code, causal=True, evidence=None) -> dict:
    return {"duty": code, "causal": causal, "evidence": evidence}


# ---------------------------------------------------------------------------------------------------------
# The default rule set
# ---------------------------------------------------------------------------------------------------------


def test_the_default_rule_set_holds_every_item_of_section_8(rules):
    assert [i.code for i in rules.positive] == [f"P0{n}" for n in range(1, 8)]
    assert [i.code for i in rules.mitigating] == ["M01", "M02", "M03", "M04"]
    assert [i.code for i in rules.negative] == [f"N0{n}" for n in range(1, 8)]
    codes = {d.code: d.stage for d in rules.duties}
    for code in ["PL01", "PL02", "PL03", "PL04", "RV01", "RV02", "AP01", "AP02", "DS01", "DS02",
                 "PO01", "PO02", "PO03"]:
        assert code in codes
    assert codes["PL03"] == "pre_loan" and codes["DS02"] == "disbursement"


def test_only_the_items_confirmed_from_official_texts_are_marked_verified(rules):
    verified = {i.code for i in (*rules.positive, *rules.mitigating, *rules.negative, *rules.duties) if i.verified}
    assert verified == {"P01", "P02", "P03", "P04", "P05"}
    assert {i.source for i in rules.positive if i.code in {"P02", "P03", "P04", "P05"}} == {"银监发〔2016〕56号"}


def test_every_item_has_texts_in_both_languages_and_a_source(rules):
    for item in (*rules.positive, *rules.mitigating, *rules.negative, *rules.duties, *rules.steps):
        assert item.zh and item.en and item.source


def test_marketing_and_acceptance_are_optional_stages_with_small_checklists(rules):
    optional = {s.code for s in rules.stages if s.optional}
    assert optional == {"marketing", "acceptance"}
    assert len(rules.duties_for("marketing")) <= 2 and len(rules.duties_for("acceptance")) <= 2


def test_the_default_numbers_are_those_of_section_8(rules):
    assert rules.tolerance.margin == Decimal("0.03")
    assert rules.tolerance.options == {"period_basis": "annual", "add_back_written_off": False}
    assert rules.scope.product_classes["inclusive_sme"].credit_limit == Decimal(10_000_000)
    assert rules.scope.product_classes["farmer_business"].credit_limit == Decimal(5_000_000)
    assert set(rules.scope.borrower_kinds) == {"small", "micro", "owner", "individual_business", "farmer"}
    limits = {k: (v.days, v.unit, v.basis) for k, v in rules.time_limits.items()}
    assert limits == {
        "statement": (10, "working_days", "bank_policy"),
        "investigation": (20, "working_days", "bank_policy"),
        "determination": (15, "working_days", "bank_policy"),
        "publicity": (5, "working_days", "bank_policy"),
        "appeal_window": (5, "working_days", "bank_policy"),
        "appeal_decision": (20, "working_days", "bank_policy"),
        "total_case": (365, "calendar_days", "regulatory"),
    }
    assert "金规〔2024〕11号" in rules.time_limits["total_case"].source
    assert (rules.committee.quorum, rules.committee.majority, rules.committee.majority_strict) == ("2/3", "1/2", True)
    assert rules.batch.threshold_amount == Decimal(300_000)
    assert rules.sanction_for("exempt")["referred"] is False
    assert rules.sanction_for("reduced")["assessment_points_factor"] == "0.5"
    assert rules.sanction_for("liable")["referred"] is True


def test_a_rule_set_survives_a_round_trip_through_json(rules):
    data = json.loads(json.dumps(rules.model_dump(mode="json")))
    assert RuleSet.model_validate(data) == rules


def _break(raw, change):
    change(raw)
    return raw


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["negative"].append(dict(r["positive"][0])), "code 'P01' is used twice"),
        (lambda r: r["duties"][0].update(stage="collection"), "names stage 'collection'"),
        (lambda r: r["stages"].append({"code": "collection", "zh": "催收", "en": "Collection"}),
         "unknown stage 'collection'"),
        (lambda r: r["steps"].reverse(), "steps must be exactly"),
        (lambda r: r["steps"][0].update(yields="exempt"), "yields 'liable'"),
        (lambda r: r["sanctions"].pop("reduced"), "sanctions lacks reduced"),
        (lambda r: r["time_limits"].pop("publicity"), "time_limits lacks publicity"),
        (lambda r: r["committee"].update(quorum="two thirds"), "is not a fraction"),
        (lambda r: r["committee"].update(majority="3/2"), "at most 1"),
        (lambda r: r["tolerance"]["texts"]["gap"].update(en="{nonsense}"), "unknown placeholder"),
        (lambda r: r["tolerance"].update(margin="3"), "margin"),
        (lambda r: r.update(surprise=True), "surprise"),
        (lambda r: r["positive"][0].update(verified="maybe"), "verified"),
        (lambda r: r["positive"][0].update(stages=["nowhere"]), "names stage 'nowhere'"),
    ],
)
def test_a_broken_rule_set_is_rejected_with_what_is_wrong(raw, change, message):
    with pytest.raises(ValidationFailed, match=message):
        parse_rule_set(_break(raw, change))


# ---------------------------------------------------------------------------------------------------------
# Precedence, step by step (§6)
# ---------------------------------------------------------------------------------------------------------


PRECEDENCE = [
    # (what, stage facts, within tolerance, expected outcome, deciding step)
    ("a negative item makes the stage liable",
     facts(negative=["N05"]), None, "liable", "negative_list"),
    ("a negative item wins over a positive item and tolerance",
     facts(negative=["N01"], positive=["P02"], dissented=True), True, "liable", "negative_list"),
    ("a positive item exempts despite a causal unperformed duty and a violation",
     facts(positive=["P07"], violation=True, unperformed=[duty("PL03")]), False, "exempt", "positive_list"),
    ("a qualifying dissent exempts",
     facts(stage="approval", dissented=True, unperformed=[duty("AP01")]), None, "exempt", "positive_list"),
    ("no duty shown unperformed and no violation exempts",
     facts(), None, "exempt", "no_evidence_of_fault"),
    ("a mitigating item alone does not stop the no-evidence exemption",
     facts(mitigating=["M01"]), False, "exempt", "no_evidence_of_fault"),
    ("being within tolerance without a violation exempts a causal failure",
     facts(unperformed=[duty("PL03")]), True, "exempt", "tolerance_presumption"),
    ("being within tolerance does not help a violation",
     facts(violation=True), True, "liable", "otherwise"),
    ("only non-causal unperformed duties reduce",
     facts(unperformed=[duty("PL01", False), duty("PL02", False)]), False, "reduced", "minor_fault"),
    ("a mitigating item reduces a causal failure",
     facts(unperformed=[duty("PL03")], mitigating=["M04"]), False, "reduced", "minor_fault"),
    ("unknown tolerance is not within tolerance",
     facts(unperformed=[duty("PL03")]), None, "liable", "otherwise"),
    ("a causal unperformed duty outside tolerance is liable",
     facts(unperformed=[duty("PL03"), duty("PL01", False)]), False, "liable", "otherwise"),
    ("a violation without unperformed duties is liable even with a mitigating item",
     facts(violation=True, mitigating=["M01"]), False, "liable", "otherwise"),
]


@pytest.mark.parametrize("what, stage_facts, within, outcome, step", PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_each_precedence_step_decides_as_section_6_says(rules, what, stage_facts, within, outcome, step):
    result = recommend_stage(stage_facts, rules, within)
    assert result.outcome == outcome
    assert result.explanation[-1]["rule"] == step


@pytest.mark.parametrize("what, stage_facts, within, outcome, step", PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_the_explanation_lists_the_steps_consulted_in_order_up_to_the_one_that_fired(
    rules, what, stage_facts, within, outcome, step
):
    explanation = recommend_stage(stage_facts, rules, within).explanation
    n = STEPS.index(step) + 1
    assert [e["rule"] for e in explanation] == list(STEPS[:n])
    assert [e["step"] for e in explanation] == list(range(1, n + 1))
    assert [e["fired"] for e in explanation] == [False] * (n - 1) + [True]
    for entry in explanation:
        assert set(entry) >= {"rule", "fired", "fact", "source"}
        assert entry["source"] == rules.step(entry["rule"]).source


def test_the_explanation_carries_the_fact_that_fired_and_its_items(rules):
    result = recommend_stage(facts(negative=["N05", "N01"]), rules)
    entry = result.explanation[0]
    assert entry["fact"] == {"negative": ["N01", "N05"]}
    assert [i["code"] for i in entry["items"]] == ["N01", "N05"]
    assert entry["items"][1]["zh"] == "违规向借款人收取费用"


def test_the_minor_fault_step_names_causal_and_non_causal_duties(rules):
    result = recommend_stage(facts(unperformed=[duty("PL02", False), duty("PL01", False)]), rules, False)
    assert result.explanation[-1]["fact"] == {
        "violation": False, "causal": [], "non_causal": ["PL01", "PL02"], "mitigating": [],
    }


def test_explanation_texts_come_from_the_rule_set_data(raw):
    raw["steps"][2]["en"] = "Edited by an administrator"
    raw["steps"][2]["source"] = "Edited source"
    edited = parse_rule_set(raw)
    entry = recommend_stage(facts(), edited).explanation[-1]
    assert entry["text"]["en"] == "Edited by an administrator"
    assert entry["source"] == "Edited source"


def test_within_tolerance_must_be_a_boolean_or_none(rules):
    with pytest.raises(ValidationFailed, match="within_tolerance"):
        recommend_stage(facts(), rules, "yes")


# ---------------------------------------------------------------------------------------------------------
# Validation of facts
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage_facts, message",
    [
        (facts(stage="collection"), "unknown stage 'collection'"),
        (facts(positive=["P99"]), r"positive\[0\]: unknown positive-list item 'P99'"),
        (facts(positive=["N05"]), "'N05' is a negative-list item, not a positive-list item"),
        (facts(mitigating=["P01"]), "'P01' is a positive-list item, not a mitigating item"),
        (facts(negative=["PL01"]), "'PL01' is a duty, not a negative-list item"),
        (facts(unperformed=[duty("XX01")]), "unknown duty 'XX01'"),
        (facts(unperformed=[duty("RV01")]), "duty 'RV01' belongs to stage 'review', not 'pre_loan'"),
        (facts(unperformed=[duty("M01")]), "'M01' is a mitigating item, not a duty"),
        (facts(positive=["P02", "P02"]), "'P02' is listed twice"),
        (facts(unperformed=[duty("PL01"), duty("PL01", False)]), "duty 'PL01' is listed twice"),
        (facts(violation="false"), "violation: Input should be a valid boolean"),
        (facts(unperformed=[{"duty": "PL01"}]), r"unperformed\[0\].causal: Field required"),
        (facts(unperformed=[duty("PL01", evidence=["a"])]), "evidence"),
        (facts(surprise=1), "surprise: Extra inputs are not permitted"),
        ({"positive": []}, "stage: Field required"),
    ],
)
def test_facts_the_rule_set_does_not_know_are_rejected_naming_the_value(rules, stage_facts, message):
    with pytest.raises(ValidationFailed, match=message):
        validate_facts(stage_facts, rules)


def test_an_item_limited_to_some_stages_is_rejected_elsewhere(raw):
    raw["positive"][4]["stages"] = ["approval"]  # P05, the dissent item, only for collective approval
    limited = parse_rule_set(raw)
    assert validate_facts(facts(stage="approval", positive=["P05"]), limited).positive == ["P05"]
    with pytest.raises(ValidationFailed, match="'P05' does not apply to stage 'pre_loan'"):
        validate_facts(facts(positive=["P05"]), limited)


def test_valid_facts_come_back_as_stage_facts(rules):
    result = validate_facts(facts(unperformed=[duty("PL01", evidence=[3, 4])]), rules)
    assert isinstance(result, StageFacts)
    assert result.unperformed[0].evidence == [3, 4]


# ---------------------------------------------------------------------------------------------------------
# Respondents, versions, sanctions
# ---------------------------------------------------------------------------------------------------------


def test_a_respondent_gets_the_most_severe_outcome_of_their_stages(rules):
    result = recommend_respondent(
        [facts(), facts(stage="post_loan", unperformed=[duty("PO01", False)])], rules, False
    )
    assert [s.outcome for s in result.stages] == ["exempt", "reduced"]
    assert result.outcome == "reduced"
    assert result.sanctions == rules.sanction_for("reduced")


def test_a_respondent_with_one_liable_stage_is_liable(rules):
    result = recommend_respondent([facts(positive=["P01"]), facts(stage="review", negative=["N03"])], rules)
    assert result.outcome == "liable"
    assert result.sanctions["referred"] is True


def test_the_same_stage_of_two_loans_may_be_judged_together_but_not_twice_for_one_loan(rules):
    both = recommend_respondent([facts(loan="L1"), facts(loan="L2", negative=["N07"])], rules)
    assert both.outcome == "liable"
    assert both.stages[1].to_dict()["loan"] == "L2"
    with pytest.raises(ValidationFailed, match=r"stages\[1\]: stage 'pre_loan' is given twice"):
        recommend_respondent([facts(), facts()], rules)


def test_a_respondent_needs_at_least_one_stage(rules):
    with pytest.raises(ValidationFailed, match="at least one stage"):
        recommend_respondent([], rules)


def _version(raw, version, effective_from, **changes):
    data = copy.deepcopy(raw)
    data.update(version=version, effective_from=effective_from, **changes)
    return parse_rule_set(data)


def test_rule_set_for_chooses_the_version_in_force_on_the_date(raw):
    v2016 = _version(raw, "2016", "2016-12-01")
    v2024 = _version(raw, "2024", "2024-08-02")
    versions = [v2024, v2016]
    assert rule_set_for(date(2020, 1, 1), versions) is v2016
    assert rule_set_for(date(2024, 8, 2), versions) is v2024
    assert rule_set_for(date(2010, 1, 1), versions) is v2016  # before every version: the earliest
    with pytest.raises(ValidationFailed):
        rule_set_for(date(2020, 1, 1), [])


def test_each_stage_may_be_judged_by_the_version_in_force_when_it_was_handled(raw):
    old = copy.deepcopy(raw)
    old["duties"] = [d for d in old["duties"] if d["code"] != "PL04"]  # an old checklist without PL04
    v_old = _version(old, "old", "2016-01-01")
    v_new = _version(raw, "new", "2024-08-02")
    stages = [facts(unperformed=[duty("PL04")]), facts(stage="post_loan")]
    by_stage = {"pre_loan": v_new, "post_loan": v_old}
    result = recommend_respondent(stages, by_stage, False)
    assert result.outcome == "liable"
    assert result.rule_set_versions == ["new", "old"]
    with pytest.raises(ValidationFailed, match="unknown duty 'PL04'"):
        recommend_respondent(stages, {"pre_loan": v_old, "post_loan": v_old}, False)
    handled = {"pre_loan": date(2015, 6, 1), "post_loan": date(2025, 1, 1)}
    by_date = recommend_respondent(
        [facts(), facts(stage="post_loan")], lambda f: rule_set_for(handled[f.stage], [v_old, v_new])
    )
    assert by_date.rule_set_versions == ["old", "new"]
    with pytest.raises(ValidationFailed, match="no rule set given for stage 'post_loan'"):
        recommend_respondent(stages, {"pre_loan": v_new}, False)


def test_sanctions_come_from_the_newest_stage_version_unless_named(raw):
    old_raw = copy.deepcopy(raw)
    old_raw["sanctions"]["liable"]["en"] = "Old wording"
    v_old = _version(old_raw, "old", "2016-01-01")
    v_new = _version(raw, "new", "2024-08-02")
    result = recommend_respondent([facts(negative=["N01"])], {"pre_loan": v_old}, sanctions_from=v_new)
    assert result.sanctions["en"] == v_new.sanctions["liable"].en
    result = recommend_respondent([facts(negative=["N01"])], {"pre_loan": v_old})
    assert result.sanctions["en"] == "Old wording"


# ---------------------------------------------------------------------------------------------------------
# The what-if evaluation (§9)
# ---------------------------------------------------------------------------------------------------------


def section_9_request(**stage_changes) -> dict:
    stage = {
        "stage": "pre_loan",
        "positive": ["P02"], "mitigating": [], "negative": [],
        "violation": False,
        "unperformed": [{"duty": "PL03", "causal": True}],
        "dissented": False,
    }
    stage.update(stage_changes)
    return {
        "rule_set": "current",
        "tolerance": {"sme_npl_ratio": "0.0501", "all_npl_ratio": "0.0200"},
        "respondents": [{"id": "E1001", "stages": [stage]}],
    }


SECTION_9 = [
    # (what, changes to the example's stage, tolerance override, outcome, deciding step)
    ("the example outside tolerance: P02 fires", {}, None, "exempt", "positive_list"),
    ("add N05", {"negative": ["N05"]}, None, "liable", "negative_list"),
    ("remove P02: a causal unperformed duty outside tolerance", {"positive": []}, None, "liable", "otherwise"),
    ("make that duty non-causal", {"positive": [], "unperformed": [{"duty": "PL03", "causal": False}]}, None,
     "reduced", "minor_fault"),
    ("drop it: no evidence of fault", {"positive": [], "unperformed": []}, None, "exempt", "no_evidence_of_fault"),
    ("keep it causal, branch within tolerance", {"positive": []},
     {"sme_npl_ratio": "0.0500", "all_npl_ratio": "0.0200"}, "exempt", "tolerance_presumption"),
]


@pytest.mark.parametrize("what, changes, tolerance, outcome, step", SECTION_9, ids=[s[0] for s in SECTION_9])
def test_the_worked_examples_of_section_9_come_out_as_described(rules, what, changes, tolerance, outcome, step):
    request = section_9_request(**changes)
    if tolerance is not None:
        request["tolerance"] = tolerance
    answer = evaluate(request, rules)
    respondent = answer["respondents"][0]
    assert respondent["outcome"] == outcome
    assert respondent["stages"][0]["outcome"] == outcome
    assert respondent["stages"][0]["explanation"][-1]["rule"] == step
    assert respondent["sanctions"] == rules.sanction_for(outcome)


def test_the_answer_has_the_stable_shape_of_section_9(rules):
    answer = evaluate(section_9_request(), rules)
    assert set(answer) == {"rule_set", "tolerance", "respondents"}
    assert answer["rule_set"] == rules.version
    tolerance = answer["tolerance"]
    assert (tolerance["within"], tolerance["gap"], tolerance["display"]["gap_pp"]) == (False, "0.0301", "3.01")
    assert tolerance["explanation"]["en"].endswith("outside tolerance")
    (respondent,) = answer["respondents"]
    assert set(respondent) == {"id", "outcome", "sanctions", "stages"}
    assert respondent["id"] == "E1001"
    (stage,) = respondent["stages"]
    assert set(stage) == {"stage", "outcome", "explanation"}
    json.dumps(answer)  # plain JSON all the way down


def test_the_tolerance_boundary_of_exactly_three_points_is_within_in_an_evaluation(rules):
    request = section_9_request(positive=[])
    request["tolerance"] = {"sme_npl_ratio": "0.0500", "all_npl_ratio": "0.0200"}
    assert evaluate(request, rules)["tolerance"]["within"] is True


def test_tolerance_may_be_given_as_a_plain_verdict(rules):
    request = section_9_request(positive=[])
    request["tolerance"] = {"within": True}
    answer = evaluate(request, rules)
    assert answer["tolerance"]["within"] is True and answer["tolerance"]["gap"] is None
    assert answer["respondents"][0]["outcome"] == "exempt"


def test_tolerance_may_be_given_as_balances(rules):
    request = section_9_request(positive=[])
    request["tolerance"] = {"all_balance": "1000000000", "all_npl_balance": "20000000",
                            "sme_balance": "200000000", "sme_npl_balance": "10020000"}
    answer = evaluate(request, rules)
    assert answer["tolerance"]["within"] is False and answer["tolerance"]["display"]["sme_ratio"] == "5.01%"


def test_without_tolerance_the_presumption_does_not_apply(rules):
    request = section_9_request(positive=[])
    del request["tolerance"]
    answer = evaluate(request, rules)
    assert answer["tolerance"]["within"] is None
    assert answer["respondents"][0]["outcome"] == "liable"


def test_the_branch_form_asks_the_resolver_for_the_branch_and_period(rules):
    asked = []

    def resolver(branch, period):
        asked.append((branch, period))
        return compute_tolerance(1_000_000_000, 20_000_000, 200_000_000, 10_000_000, rules.tolerance.margin)

    request = section_9_request(positive=[])
    request["tolerance"] = {"branch": "JY01", "period": "2026-09-30"}
    answer = evaluate(request, rules, resolver)
    assert asked == [("JY01", date(2026, 9, 30))]
    assert answer["tolerance"]["within"] is True
    assert (answer["tolerance"]["branch"], answer["tolerance"]["period"]) == ("JY01", "2026-09-30")
    assert answer["respondents"][0]["outcome"] == "exempt"
    assert evaluate(request, rules, lambda b, p: False)["respondents"][0]["outcome"] == "liable"


def test_the_branch_form_without_a_loan_book_is_rejected(rules):
    request = section_9_request()
    request["tolerance"] = {"branch": "JY01", "period": "2026-09-30"}
    with pytest.raises(ValidationFailed, match="branch form"):
        evaluate(request, rules)


def test_a_loader_may_resolve_the_rule_set_the_request_names(rules):
    asked = []

    def loader(name):
        asked.append(name)
        return rules

    request = section_9_request()
    request["rule_set"] = "2024.1"
    assert evaluate(request, loader)["rule_set"] == rules.version
    assert asked == ["2024.1"]


def _set(path, value):
    def change(request):
        target = request
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


STAGE = ("respondents", 0, "stages", 0)
MALFORMED = [
    ("an unknown top-level field", _set(("extra",), 1), "extra: Extra inputs are not permitted"),
    ("no respondents", _set(("respondents",), []), "respondents: List should have at least 1 item"),
    ("a respondent without stages", _set(("respondents", 0, "stages"), []), "stages: List should have at least 1"),
    ("a respondent id of the wrong type", _set(("respondents", 0, "id"), 1001), r"respondents\[0\].id"),
    ("an unknown stage", _set((*STAGE, "stage"), "collection"),
     r"respondents\[0\].stages\[0\].stage: unknown stage 'collection'"),
    ("an unknown code", _set((*STAGE, "positive"), ["P42"]), "unknown positive-list item 'P42'"),
    ("a code of the wrong list", _set((*STAGE, "mitigating"), ["N05"]), "'N05' is a negative-list item"),
    ("a duty of another stage", _set((*STAGE, "unperformed"), [{"duty": "PO01", "causal": True}]),
     "belongs to stage 'post_loan'"),
    ("a string for a boolean", _set((*STAGE, "dissented"), "no"), "dissented: Input should be a valid boolean"),
    ("an unknown stage field", _set((*STAGE, "notes"), "x"), "notes: Extra inputs are not permitted"),
    ("an unknown rule set", _set(("rule_set",), "1999"), "unknown rule set '1999'"),
    ("unexpected tolerance keys", _set(("tolerance",), {"ratio": "0.05"}), "tolerance: unexpected keys"),
    ("a tolerance verdict that is not a boolean", _set(("tolerance",), {"within": "yes"}), "tolerance.within"),
    ("a non-numeric ratio", _set(("tolerance", "sme_npl_ratio"), "five"), "tolerance.sme_npl_ratio is not a number"),
    ("a malformed period", _set(("tolerance",), {"branch": "JY01", "period": "30/09/2026"}), "YYYY-MM-DD"),
    ("a tolerance that is not an object", _set(("tolerance",), "within"), "tolerance"),
]


@pytest.mark.parametrize("what, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_evaluation_requests_are_rejected_saying_what_is_wrong(rules, what, change, message):
    request = section_9_request()
    change(request)
    with pytest.raises(ValidationFailed, match=message):
        evaluate(request, rules, lambda b, p: True)


def test_a_request_that_is_not_an_object_is_rejected(rules):
    with pytest.raises(ValidationFailed, match="JSON object"):
        evaluate([1, 2], rules)


def test_two_respondents_with_the_same_id_are_rejected(rules):
    request = section_9_request()
    request["respondents"].append(copy.deepcopy(request["respondents"][0]))
    with pytest.raises(ValidationFailed, match=r"respondents\[1\].id: 'E1001' is given twice"):
        evaluate(request, rules)


# ---------------------------------------------------------------------------------------------------------
# Scope, votes, appeals, batch
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loan",
    [
        {"product_class": "inclusive_sme", "credit_total": "10000000", "borrower_kind": "micro"},
        {"product_class": "inclusive_sme", "credit_total": 2_500_000, "borrower_kind": "individual_business"},
        {"product_class": "farmer_business", "credit_total": "5000000", "borrower_kind": "farmer"},
        {"product_class": "inclusive_sme", "credit_total": "800000"},
    ],
)
def test_a_loan_within_the_inclusive_credit_scope_passes(rules, loan):
    assert check_scope(loan, rules) is None


@pytest.mark.parametrize(
    "loan, reason, message",
    [
        ({"product_class": "mortgage", "credit_total": 1}, "product_class", "'mortgage' is not inclusive credit"),
        ({"product_class": "inclusive_sme", "credit_total": "10000000.01"}, "credit_total",
         "above the 10,000,000 yuan limit"),
        ({"product_class": "farmer_business", "credit_total": "5000001", "borrower_kind": "farmer"}, "credit_total",
         "above the 5,000,000 yuan limit for farmer_business"),
        ({"product_class": "inclusive_sme", "credit_total": 1, "borrower_kind": "large"}, "borrower_kind",
         "'large' is not eligible"),
        ({"product_class": "farmer_business", "credit_total": 1, "borrower_kind": "micro"}, "borrower_kind",
         "'micro' is not eligible for farmer_business"),
    ],
)
def test_a_loan_outside_the_scope_is_refused_with_the_reason(rules, loan, reason, message):
    with pytest.raises(OutOfScope, match=message) as caught:
        check_scope(loan, rules)
    assert caught.value.details["reason"] == reason


def test_a_loan_without_its_credit_total_cannot_be_scoped(rules):
    with pytest.raises(ValidationFailed, match="credit_total"):
        check_scope({"product_class": "inclusive_sme"}, rules)


@pytest.mark.parametrize(
    "appealed, new, allowed",
    [("liable", "liable", True), ("liable", "reduced", True), ("liable", "exempt", True),
     ("reduced", "exempt", True), ("reduced", "liable", False), ("exempt", "reduced", False),
     ("exempt", "liable", False), ("exempt", "exempt", True)],
)
def test_an_appeal_may_confirm_or_improve_but_never_worsen(appealed, new, allowed):
    assert appeal_outcome_allowed(appealed, new) is allowed


def test_an_appeal_to_an_unknown_outcome_is_rejected():
    with pytest.raises(ValidationFailed, match="unknown outcome 'pardoned'"):
        appeal_outcome_allowed("liable", "pardoned")


def test_severity_orders_exempt_below_reduced_below_liable():
    assert SEVERITY["exempt"] < SEVERITY["reduced"] < SEVERITY["liable"]


@pytest.mark.parametrize(
    "votes, cast, outcome",
    [
        (["exempt", "exempt", "reduced"], None, "exempt"),
        (["exempt", "reduced"], None, None),  # exactly half is not more than half
        (["liable", "liable", "exempt", "reduced"], None, None),
        (["liable", "liable", "liable", "exempt"], None, "liable"),
        (["reduced", "reduced"], 5, None),  # abstentions count among the votes cast
        (["reduced", "reduced", "reduced"], 5, "reduced"),
        ([], None, None),
    ],
)
def test_an_outcome_needs_more_than_half_of_the_votes_cast(rules, votes, cast, outcome):
    assert decide_by_votes(votes, cast, rules) == outcome


def test_a_two_thirds_majority_can_be_configured(raw):
    raw["committee"].update(majority="2/3", majority_strict=False)
    two_thirds = parse_rule_set(raw)
    assert decide_by_votes(["exempt", "exempt", "liable"], None, two_thirds) == "exempt"
    assert decide_by_votes(["exempt", "exempt", "exempt", "liable", "liable"], None, two_thirds) is None


def test_votes_for_unknown_outcomes_or_too_few_cast_are_rejected(rules):
    with pytest.raises(ValidationFailed, match="unknown outcome"):
        decide_by_votes(["yes"], None, rules)
    with pytest.raises(ValidationFailed, match="cast"):
        decide_by_votes(["exempt", "exempt"], 1, rules)


@pytest.mark.parametrize("present, eligible, reached", [(4, 6, True), (3, 6, False), (2, 3, True), (0, 0, False)])
def test_the_quorum_is_two_thirds_of_the_members_not_recused(rules, present, eligible, reached):
    assert quorum_reached(present, eligible, rules) is reached


@pytest.mark.parametrize("amount, eligible", [("299999.99", True), ("300000", False), (500_000, False)])
def test_loans_under_the_batch_threshold_may_share_a_report(rules, amount, eligible):
    assert is_batch_eligible(amount, rules) is eligible
