"""Properties of the recommendation that must hold for any facts (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.domain.rules import (
    OUTCOMES,
    SEVERITY,
    appeal_outcome_allowed,
    load_default_rule_set,
    recommend_respondent,
    recommend_stage,
)

RULES = load_default_rule_set()
POSITIVE = [i.code for i in RULES.positive]
MITIGATING = [i.code for i in RULES.mitigating]
NEGATIVE = [i.code for i in RULES.negative]
FAST = settings(max_examples=60, deadline=None)

tolerances = st.sampled_from([True, False, None])


@st.composite
def stage_facts(draw, stage=None):
    """Any valid facts of one stage of the default rule set."""
    stage = stage or draw(st.sampled_from(RULES.stage_codes))
    duties = [d.code for d in RULES.duties_for(stage)]
    unperformed = draw(st.lists(st.sampled_from(duties), unique=True)) if duties else []
    return {
        "stage": stage,
        "positive": draw(st.lists(st.sampled_from(POSITIVE), unique=True, max_size=3)),
        "mitigating": draw(st.lists(st.sampled_from(MITIGATING), unique=True, max_size=2)),
        "negative": draw(st.lists(st.sampled_from(NEGATIVE), unique=True, max_size=2)),
        "violation": draw(st.booleans()),
        "unperformed": [{"duty": d, "causal": draw(st.booleans())} for d in unperformed],
        "dissented": draw(st.booleans()),
    }


def outcome(facts, within):
    return recommend_stage(facts, RULES, within).outcome


def no_worse(after, before):
    return SEVERITY[after] <= SEVERITY[before]


@FAST
@given(facts=stage_facts(), code=st.sampled_from(NEGATIVE), within=tolerances)
def test_a_negative_item_always_makes_the_stage_liable(facts, code, within):
    facts["negative"] = sorted({*facts["negative"], code})
    assert outcome(facts, within) == "liable"


@FAST
@given(facts=stage_facts(), code=st.sampled_from(POSITIVE), within=tolerances)
def test_adding_a_positive_item_never_worsens_the_outcome(facts, code, within):
    before = outcome(facts, within)
    facts["positive"] = sorted({*facts["positive"], code})
    assert no_worse(outcome(facts, within), before)


@FAST
@given(facts=stage_facts(), code=st.sampled_from(MITIGATING), within=tolerances)
def test_adding_a_mitigating_item_never_worsens_the_outcome(facts, code, within):
    before = outcome(facts, within)
    facts["mitigating"] = sorted({*facts["mitigating"], code})
    assert no_worse(outcome(facts, within), before)


@FAST
@given(facts=stage_facts(), data=st.data(), within=tolerances)
def test_removing_an_unperformed_duty_never_worsens_the_outcome(facts, data, within):
    if not facts["unperformed"]:
        return
    before = outcome(facts, within)
    drop = data.draw(st.integers(min_value=0, max_value=len(facts["unperformed"]) - 1))
    del facts["unperformed"][drop]
    assert no_worse(outcome(facts, within), before)


@FAST
@given(facts=stage_facts())
def test_being_within_tolerance_never_worsens_the_outcome(facts):
    assert no_worse(outcome(facts, True), outcome(facts, False))
    assert outcome(facts, None) == outcome(facts, False)


@FAST
@given(facts=stage_facts(), within=tolerances, data=st.data())
def test_the_result_does_not_depend_on_the_order_of_the_facts(facts, within, data):
    shuffled = dict(facts)
    for key in ("positive", "mitigating", "negative", "unperformed"):
        shuffled[key] = data.draw(st.permutations(facts[key]))
    a = recommend_stage(facts, RULES, within)
    b = recommend_stage(shuffled, RULES, within)
    assert (a.outcome, a.explanation) == (b.outcome, b.explanation)


@FAST
@given(facts=stage_facts(), within=tolerances)
def test_the_explanation_ends_with_the_one_step_that_fired_and_gave_the_outcome(facts, within):
    result = recommend_stage(facts, RULES, within)
    assert [e["fired"] for e in result.explanation].count(True) == 1
    assert result.explanation[-1]["fired"] is True
    assert RULES.step(result.explanation[-1]["rule"]).yields == result.outcome


@settings(max_examples=40, deadline=None)
@given(stages=st.lists(stage_facts(), min_size=1, max_size=4, unique_by=lambda f: f["stage"]), within=tolerances,
       data=st.data())
def test_a_respondent_outcome_is_the_most_severe_stage_whatever_the_stage_order(stages, within, data):
    result = recommend_respondent(stages, RULES, within)
    assert result.outcome == max((s.outcome for s in result.stages), key=SEVERITY.__getitem__)
    reordered = recommend_respondent(data.draw(st.permutations(stages)), RULES, within)
    assert reordered.outcome == result.outcome


@given(appealed=st.sampled_from(OUTCOMES), new=st.sampled_from(OUTCOMES))
def test_an_allowed_appeal_outcome_is_never_more_severe(appealed, new):
    if appeal_outcome_allowed(appealed, new):
        assert SEVERITY[new] <= SEVERITY[appealed]
    else:
        assert SEVERITY[new] > SEVERITY[appealed]
