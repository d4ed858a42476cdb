"""NPL tolerance (domain.md §7): exact Decimal ratios, the inclusive 3 pp margin, targets, snapshots."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.domain.errors import ValidationFailed
from workflow.domain.tolerance import ToleranceResult, compute_tolerance, from_ratios, parse_decimal, percent

MARGIN = Decimal("0.03")


# The worked examples of §7: (all bal., all NPL, SME bal., SME NPL, all ratio, SME ratio, gap pp, within, basis)
WORKED_EXAMPLES = [
    ("1000000000", "20000000", "200000000", "10000000", "2.00%", "5.00%", "3.00", True, "gap"),
    ("1000000000", "20000000", "200000000", "10020000", "2.00%", "5.01%", "3.01", False, "gap"),
    ("500000000", "4000000", "0", "0", "0.80%", "—", "—", True, "no_sme_loans"),
]


@pytest.mark.parametrize(
    "all_bal, all_npl, sme_bal, sme_npl, all_pct, sme_pct, gap_pp, within, basis", WORKED_EXAMPLES
)
def test_the_worked_examples_of_section_7_come_out_as_the_table_says(
    all_bal, all_npl, sme_bal, sme_npl, all_pct, sme_pct, gap_pp, within, basis
):
    result = compute_tolerance(all_bal, all_npl, sme_bal, sme_npl, MARGIN)
    assert result.display["all_ratio"] == all_pct
    assert result.display["sme_ratio"] == sme_pct
    assert result.display["gap_pp"] == gap_pp
    assert result.within is within
    assert result.basis == basis


def test_a_gap_of_exactly_three_points_is_within_tolerance():
    assert from_ratios("0.0500", "0.0200", MARGIN).within is True


def test_a_gap_of_three_point_zero_one_points_is_outside_tolerance():
    assert from_ratios("0.0501", "0.0200", MARGIN).within is False


def test_the_comparison_uses_the_unrounded_ratios_not_the_displayed_ones():
    # SME ratio 5.0001 % shows as 5.00 % but the gap 3.0001 pp is above the margin.
    result = compute_tolerance(1_000_000_000, 20_000_000, 200_000_000, 10_000_200, MARGIN)
    assert result.display["gap_pp"] == "3.00"
    assert result.within is False


def test_the_boundary_holds_exactly_even_for_ratios_with_no_finite_decimal():
    # all ratio 1/3, SME ratio 1/3 + 3/100 = 109/300: exactly on the boundary.
    assert compute_tolerance(600, 200, 300, 109, MARGIN).within is True
    assert compute_tolerance(600, 200, 300, 110, MARGIN).within is False


def test_a_branch_with_no_loans_has_no_ratio_and_is_within_tolerance():
    result = compute_tolerance(0, 0, 0, 0, MARGIN)
    assert result.within is True
    assert result.basis == "no_loans"
    assert result.all_ratio is None and result.sme_ratio is None and result.gap is None
    assert result.display["all_ratio"] == "—"


def test_ratios_are_computed_from_balances_as_unrounded_decimals():
    result = compute_tolerance(3, 1, 3, 1, MARGIN)
    assert isinstance(result.all_ratio, Decimal)
    assert result.all_ratio == result.sme_ratio
    assert str(result.all_ratio).startswith("0.3333333333333333333333333")
    assert result.display["all_ratio"] == "33.33%"


def test_a_branch_target_replaces_the_gap_test():
    # Gap 3.01 pp is outside the margin, but the SME ratio 5.01 % is within a 5.5 % target.
    result = compute_tolerance(1_000_000_000, 20_000_000, 200_000_000, 10_020_000, MARGIN, target="0.055")
    assert result.within is True
    assert result.basis == "target"
    assert result.display["target"] == "5.50%"


def test_a_branch_target_is_inclusive_and_binding():
    assert from_ratios("0.05", "0.01", MARGIN, target="0.05").within is True
    assert from_ratios("0.0501", "0.049", MARGIN, target="0.05").within is False


def test_a_branch_with_a_target_and_no_sme_loans_is_within_tolerance():
    result = compute_tolerance(100, 10, 0, 0, MARGIN, target="0.01")
    assert (result.within, result.basis) == (True, "no_sme_loans")


def test_from_ratios_without_an_sme_ratio_means_no_sme_loans_and_without_both_means_no_loans():
    assert from_ratios(None, "0.02", MARGIN).basis == "no_sme_loans"
    assert from_ratios(None, None, MARGIN).basis == "no_loans"


def test_a_snapshot_survives_a_round_trip_through_its_dict():
    result = compute_tolerance(
        "1000000000.00", "20000000.00", "200000000.00", "10020000.00", MARGIN,
        options={"period_basis": "annual", "add_back_written_off": False},
    )
    data = result.to_dict()
    assert all(isinstance(data[k], str) for k in ("all_ratio", "sme_ratio", "gap", "margin", "all_balance"))
    assert ToleranceResult.from_dict(data) == result


@pytest.mark.parametrize(
    "args, message",
    [
        (("-1", "0", "0", "0"), "all_balance must not be negative"),
        (("100", "200", "0", "0"), "all_npl_balance is larger than all_balance"),
        (("100", "10", "200", "0"), "sme_balance is larger than all_balance"),
        (("100", "10", "50", "60"), "sme_npl_balance is larger than sme_balance"),
        (("100", "10", "50", "20"), "sme_npl_balance is larger than all_npl_balance"),
        (("abc", "0", "0", "0"), "all_balance is not a number"),
        ((True, "0", "0", "0"), "all_balance must be a number, not a boolean"),
        (("NaN", "0", "0", "0"), "all_balance must be a finite number"),
    ],
)
def test_inconsistent_or_malformed_balances_are_rejected_with_a_reason(args, message):
    with pytest.raises(ValidationFailed, match=message):
        compute_tolerance(*args, MARGIN)


@pytest.mark.parametrize("margin", ["-0.01", "1.5", "3"])
def test_a_margin_outside_zero_to_one_is_rejected_since_it_is_a_fraction(margin):
    with pytest.raises(ValidationFailed, match="margin must be a fraction"):
        from_ratios("0.05", "0.02", margin)


def test_an_sme_ratio_without_an_all_loans_ratio_is_rejected():
    with pytest.raises(ValidationFailed, match="all-loans NPL ratio"):
        from_ratios("0.05", None, MARGIN)


def test_floats_are_read_by_their_shortest_decimal_form():
    assert parse_decimal(0.0501, "x") == Decimal("0.0501")


def test_percent_rounds_half_up_to_two_decimals():
    assert percent(Decimal("0.050050")) == "5.01%"
    assert percent(Decimal("0.05")) == "5.00%"


balances = st.integers(min_value=1, max_value=10**12)


@settings(max_examples=80, deadline=None)
@given(all_bal=balances, data=st.data())
def test_within_is_exactly_the_rational_gap_test(all_bal, data):
    sme_bal = data.draw(st.integers(min_value=1, max_value=all_bal))
    all_npl = data.draw(st.integers(min_value=0, max_value=all_bal))
    sme_npl = data.draw(st.integers(min_value=0, max_value=min(sme_bal, all_npl)))
    result = compute_tolerance(all_bal, all_npl, sme_bal, sme_npl, MARGIN)
    expected = Fraction(sme_npl, sme_bal) - Fraction(all_npl, all_bal) <= Fraction(3, 100)
    assert result.within is expected


@settings(max_examples=40, deadline=None)
@given(
    sme=st.decimals(min_value=0, max_value=1, places=4),
    all_=st.decimals(min_value=0, max_value=1, places=4),
    factor=st.integers(min_value=1, max_value=10**6),
)
def test_scaling_every_balance_by_the_same_factor_never_changes_the_verdict(sme, all_, factor):
    base = compute_tolerance(10**4, all_ * 10**4, 10**4, min(sme, all_) * 10**4, MARGIN)
    scaled = compute_tolerance(10**4 * factor, all_ * 10**4 * factor, 10**4 * factor,
                               min(sme, all_) * 10**4 * factor, MARGIN)
    assert (base.within, base.basis, base.sme_ratio, base.all_ratio) == (
        scaled.within, scaled.basis, scaled.sme_ratio, scaled.all_ratio)
