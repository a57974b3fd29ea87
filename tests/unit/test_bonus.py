"""The bonus estimate against the programme's table (seed 000_…): pinned values and properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.bonus import (
    CATEGORIES,
    MAX_ACTIVITY,
    WINDOWS,
    BonusError,
    category_of,
    d1_amount,
    estimate,
    format_euros,
    window_named,
)

# Straight from the table "Répartition du financement à l'usage", Volet 1 Domaine 1, and the
# window rates and targets of "Indicateurs d'usage volets 1 et 2".
SEED_BOUNDARIES = {0: 18_000, 7_000: 24_000, 22_500: 48_000, 230_000: 150_000, 1_600_000: 320_000}
SEED_WINDOWS = {
    "S1-2022": (100, 49, 40, None),
    "S2-2022": (90, 59, 48, 50),
    "S1-2023": (85, 64, 59, 50),
    "S2-2023": (80, 69, 63, 50),
}


@pytest.mark.parametrize(("activity", "amount"), sorted(SEED_BOUNDARIES.items()))
def test_exact_at_the_table_boundaries(activity: int, amount: int) -> None:
    assert d1_amount(activity) == amount


@pytest.mark.parametrize(
    ("activity", "amount"),
    [(3_500, 21_000), (14_750, 36_000), (126_250, 99_000), (915_000, 235_000), (45_000, None)],
)
def test_linear_inside_a_category(activity: int, amount: int | None) -> None:
    if amount is None:  # 48 000 + 102 000 × 22 500 / 207 500
        assert format_euros(d1_amount(activity)) == "59 060,24 €"
    else:
        assert d1_amount(activity) == amount


@pytest.mark.parametrize("name", sorted(SEED_WINDOWS))
def test_window_rates_and_targets_are_the_seeds(name: str) -> None:
    rate, ds11, ds12, ds14 = SEED_WINDOWS[name]
    w = window_named(name)
    assert (w.d1_rate, w.ds11_target, w.ds12_target) == (
        Fraction(rate, 100),
        Fraction(ds11, 100),
        Fraction(ds12, 100),
    )
    assert w.ds14_target == (None if ds14 is None else Fraction(ds14, 100))


def test_pinned_estimate_with_conditions() -> None:
    est = estimate(
        7_000,
        window_named("s2 2022"),
        ds11=Fraction(60, 100),
        ds12=Fraction(47, 100),
        ds14=Fraction(55, 100),
    )
    assert (est.category.name, est.d1_full, est.d1, est.history_bonus) == (
        "A",
        24_000,
        21_600,
        2_160,
    )
    assert [(c.indicator, c.met) for c in est.conditions] == [
        ("DS1.1", True),
        ("DS1.2", False),
        ("DS1.4", True),
    ]
    assert est.bonus_payable is False


def test_no_history_bonus_in_the_first_window() -> None:
    est = estimate(100_000, window_named("S1-2022"), ds11=Fraction(1), ds12=Fraction(1))
    assert est.history_bonus is None
    assert est.bonus_payable is False
    assert [c.indicator for c in est.conditions] == ["DS1.1", "DS1.2"]


def test_unmeasured_conditions_leave_the_verdict_open() -> None:
    est = estimate(100_000, window_named("S2-2023"), ds11=Fraction(1), ds12=Fraction(1))
    assert est.bonus_payable is None


@pytest.mark.parametrize("activity", [-1, MAX_ACTIVITY + 1, 10**9])
def test_out_of_range_activity_names_the_range(activity: int) -> None:
    with pytest.raises(BonusError, match="between 0 and 1 600 000") as exc:
        d1_amount(activity)
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("name", ["S3-2023", "2023", "", "S1-2021"])
def test_unknown_window_names_the_accepted_ones(name: str) -> None:
    with pytest.raises(BonusError, match="S1-2022, S2-2022, S1-2023, S2-2023"):
        window_named(name)


activities = st.integers(min_value=0, max_value=MAX_ACTIVITY)


@given(activities, activities)
def test_monotone_in_activity(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert d1_amount(low) <= d1_amount(high)
    for w in WINDOWS:
        assert estimate(low, w).d1 <= estimate(high, w).d1


@given(
    st.sampled_from(CATEGORIES[1:]), st.fractions(min_value=0, max_value=1, max_denominator=10**6)
)
def test_continuous_at_each_category_boundary(category: object, step: Fraction) -> None:
    # Approaching the boundary from below and from above gives amounts that close in on the
    # table's value there: the slope on each side bounds the gap.
    boundary = category.low  # type: ignore[attr-defined]
    epsilon = step / 1000
    below, above = d1_amount(boundary - epsilon), d1_amount(boundary + epsilon)
    at = d1_amount(boundary)
    assert below <= at <= above
    steepest = max((c.amount_max - c.amount_min) / Fraction(c.high - c.low) for c in CATEGORIES)
    assert above - below <= 2 * epsilon * steepest


@given(activities)
def test_within_the_category_bounds_and_bonus_is_a_tenth(activity: int) -> None:
    c = category_of(activity)
    assert c.low <= activity <= c.high
    assert c.amount_min <= d1_amount(activity) <= c.amount_max
    for w in WINDOWS[1:]:
        est = estimate(activity, w)
        assert est.history_bonus == est.d1 / 10
