from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import ValidationFailed
from domain.lines import LineType, OrderLine, order_totals
from domain.money import (
    MAX_AMOUNT,
    MAX_TAX_RATE,
    line_tax_amount,
    line_total_amount,
    round_half_up,
)

amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)
tax_rates = st.integers(min_value=0, max_value=MAX_TAX_RATE)


def fraction_half_up(value: Fraction) -> int:
    """Independent oracle: round a Fraction half away from zero."""
    magnitude = abs(value)
    rounded = int(magnitude + Fraction(1, 2))  # int() truncates; magnitude is >= 0
    return rounded if value >= 0 else -rounded


def test_klarna_example_line_has_tax_2000_of_10000_at_25_percent() -> None:
    # Given Klarna's documented line: 1 × 100.00 at 25 %
    total = line_total_amount(quantity=1, unit_price=10_000)

    # When
    tax = line_tax_amount(total, tax_rate=2500)

    # Then
    assert total == 10_000
    assert tax == 2000


def test_line_total_subtracts_discount_from_quantity_times_price() -> None:
    assert line_total_amount(quantity=3, unit_price=1500, total_discount_amount=500) == 4000


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 10, 1),  # exactly half rounds up
        (4, 10, 0),
        (6, 10, 1),
        (15, 10, 2),
        (25, 10, 3),  # not banker's rounding
        (-5, 10, -1),  # half away from zero, symmetric
        (-15, 10, -2),
        (-4, 10, 0),
        (5, -10, -1),
        (0, 7, 0),
        (1, 3, 0),
        (2, 3, 1),
    ],
)
def test_round_half_up_rounds_halves_away_from_zero(
    numerator: int, denominator: int, expected: int
) -> None:
    assert round_half_up(numerator, denominator) == expected


def test_round_half_up_with_zero_denominator_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        round_half_up(1, 0)


def test_tax_exactly_half_a_minor_unit_rounds_up() -> None:
    # Given a total whose exact tax is half a unit: 1 at 100 % → 1 × 10000 / 20000 = 0.5
    total, rate = 1, 10_000

    # When
    tax = line_tax_amount(total, rate)

    # Then
    assert tax == 1
    assert line_tax_amount(-total, rate) == -1


def test_tax_just_below_half_a_minor_unit_rounds_down() -> None:
    # Given 2 at 3333 bp: 2 × 3333 / 13333 = 0.49996…
    assert line_tax_amount(2, 3333) == 0
    # And just above half: 3 at 2500 bp → 3 × 2500 / 12500 = 0.6
    assert line_tax_amount(3, 2500) == 1


def test_tax_rate_outside_basis_point_range_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as raised:
        line_tax_amount(10_000, MAX_TAX_RATE + 1)
    assert raised.value.code == "TAX_RATE_OUT_OF_RANGE"


@given(total=amounts, rate=tax_rates)
def test_tax_of_positive_total_lies_between_zero_and_total(total: int, rate: int) -> None:
    assert 0 <= line_tax_amount(total, rate) <= total


@given(total=amounts, rate=tax_rates)
def test_tax_of_negative_total_is_exact_negation(total: int, rate: int) -> None:
    assert line_tax_amount(-total, rate) == -line_tax_amount(total, rate)


@given(total=st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT), rate=tax_rates)
def test_tax_equals_exact_fraction_rounded_half_up(total: int, rate: int) -> None:
    # Given the DESIGN formula evaluated with exact rationals
    exact = total - Fraction(total * 10_000, 10_000 + rate)

    # When / Then
    assert line_tax_amount(total, rate) == fraction_half_up(exact)


@given(
    numerator=st.integers(min_value=-(10**12), max_value=10**12),
    denominator=st.integers(min_value=1, max_value=10**6),
)
def test_round_half_up_matches_fraction_oracle(numerator: int, denominator: int) -> None:
    assert round_half_up(numerator, denominator) == fraction_half_up(
        Fraction(numerator, denominator)
    )


line_inputs = st.tuples(
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=2, max_value=1_000_000),
    tax_rates,
)


@given(inputs=st.lists(line_inputs, min_size=1, max_size=30), discount_rate=tax_rates)
def test_order_totals_equal_sums_of_line_totals(
    inputs: list[tuple[int, int, int]], discount_rate: int
) -> None:
    # Given lines built from arbitrary quantities, prices and rates, and a discount line
    lines = [
        OrderLine.create(
            name=f"Item {index}",
            reference=f"sku-{index}",
            type=LineType.PHYSICAL,
            quantity=quantity,
            unit_price=unit_price,
            tax_rate=rate,
        )
        for index, (quantity, unit_price, rate) in enumerate(inputs)
    ]
    discount = OrderLine.create(
        name="Welcome",
        reference="promo",
        type=LineType.DISCOUNT,
        quantity=1,
        unit_price=-1,
        tax_rate=discount_rate,
    )

    # When
    totals = order_totals([*lines, discount])

    # Then
    gross = sum(quantity * unit_price for quantity, unit_price, _ in inputs)
    assert totals.order_amount == gross - 1
    assert totals.order_tax_amount == sum(
        line_tax_amount(quantity * unit_price, rate) for quantity, unit_price, rate in inputs
    ) + line_tax_amount(-1, discount_rate)
