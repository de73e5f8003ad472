from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from domain.errors import ValidationFailed
from domain.lines import LineType, OrderLine, OrderTotals, order_totals
from domain.money import MAX_AMOUNT, MAX_LINES


def make_line(**overrides: Any) -> OrderLine:
    """A valid 1 × 100.00 physical line at 25 % unless told otherwise."""
    fields: dict[str, Any] = {
        "name": "Running shoe",
        "reference": "sku-1",
        "type": LineType.PHYSICAL,
        "quantity": 1,
        "unit_price": 10_000,
        "tax_rate": 2500,
    }
    fields.update(overrides)
    return OrderLine.create(**fields)


def rejection_code(**overrides: Any) -> str:
    with pytest.raises(ValidationFailed) as raised:
        make_line(**overrides)
    return raised.value.code


# --- building lines ------------------------------------------------------------------


def test_line_totals_are_computed_when_left_out() -> None:
    # When
    line = make_line(quantity=2, unit_price=5000, total_discount_amount=1000)

    # Then
    assert line.total_amount == 9000
    assert line.total_tax_amount == 1800
    assert line.type is LineType.PHYSICAL


def test_supplied_total_equal_to_computed_is_accepted() -> None:
    assert make_line(total_amount=10_000).total_amount == 10_000


def test_supplied_total_differing_from_computed_is_rejected() -> None:
    assert rejection_code(total_amount=9_999) == "LINE_TOTAL_MISMATCH"


@pytest.mark.parametrize("supplied_tax", [1999, 2000, 2001])
def test_supplied_tax_within_one_unit_is_accepted_and_kept(supplied_tax: int) -> None:
    # When
    line = make_line(total_tax_amount=supplied_tax)

    # Then
    assert line.total_tax_amount == supplied_tax


@pytest.mark.parametrize("supplied_tax", [1998, 2002])
def test_supplied_tax_two_units_off_is_rejected(supplied_tax: int) -> None:
    assert rejection_code(total_tax_amount=supplied_tax) == "LINE_TAX_MISMATCH"


def test_line_type_given_as_string_is_parsed() -> None:
    assert make_line(type="shipping_fee").type is LineType.SHIPPING_FEE


def test_unknown_line_type_is_rejected() -> None:
    assert rejection_code(type="voucher") == "LINE_TYPE_INVALID"


def test_surrounding_whitespace_in_name_and_reference_is_dropped() -> None:
    line = make_line(name="  Running shoe ", reference=" sku-1\n")
    assert (line.name, line.reference) == ("Running shoe", "sku-1")


def test_line_is_immutable() -> None:
    line = make_line()
    with pytest.raises(FrozenInstanceError):
        line.quantity = 2  # type: ignore[misc]


def test_directly_constructed_inconsistent_line_is_rejected() -> None:
    # Given a row whose stored total no longer matches its price (corrupt storage)
    # When / Then
    with pytest.raises(ValidationFailed) as raised:
        OrderLine("Shoe", "sku-1", LineType.PHYSICAL, 1, 10_000, 2500, 0, 9_000, 1800)
    assert raised.value.code == "LINE_TOTAL_MISMATCH"


# --- field rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 256},
        {"reference": ""},
        {"reference": "x" * 256},
    ],
)
def test_blank_or_overlong_name_or_reference_is_rejected(overrides: dict[str, str]) -> None:
    assert rejection_code(**overrides) == "LINE_FIELD_INVALID"


def test_name_and_reference_of_255_characters_are_accepted() -> None:
    line = make_line(name="n" * 255, reference="r" * 255)
    assert len(line.name) == len(line.reference) == 255


def test_negative_quantity_is_rejected() -> None:
    assert rejection_code(quantity=-1) == "LINE_QUANTITY_INVALID"


def test_zero_quantity_line_is_accepted_with_zero_totals() -> None:
    line = make_line(quantity=0)
    assert (line.total_amount, line.total_tax_amount) == (0, 0)


@pytest.mark.parametrize("tax_rate", [-1, 10_001])
def test_tax_rate_outside_0_to_10000_is_rejected(tax_rate: int) -> None:
    assert rejection_code(tax_rate=tax_rate) == "TAX_RATE_OUT_OF_RANGE"


@pytest.mark.parametrize("tax_rate", [0, 10_000])
def test_tax_rate_at_the_bounds_is_accepted(tax_rate: int) -> None:
    assert make_line(tax_rate=tax_rate).tax_rate == tax_rate


# --- limits --------------------------------------------------------------------------


def test_unit_price_and_total_of_exactly_100_000_000_are_accepted() -> None:
    line = make_line(unit_price=MAX_AMOUNT)
    assert line.total_amount == MAX_AMOUNT == 100_000_000


def test_unit_price_of_100_000_001_is_rejected() -> None:
    assert rejection_code(unit_price=MAX_AMOUNT + 1) == "AMOUNT_OUT_OF_RANGE"


def test_total_of_100_000_001_is_rejected_even_with_small_unit_price() -> None:
    # Given 100 000 001 × 1
    assert rejection_code(quantity=MAX_AMOUNT + 1, unit_price=1) == "AMOUNT_OUT_OF_RANGE"


def test_discount_line_beyond_minus_100_000_000_is_rejected() -> None:
    code = rejection_code(type=LineType.DISCOUNT, unit_price=-(MAX_AMOUNT + 1))
    assert code == "AMOUNT_OUT_OF_RANGE"


# --- discounts and signs -------------------------------------------------------------


def test_discount_line_with_negative_amount_is_accepted() -> None:
    # When
    line = make_line(type=LineType.DISCOUNT, reference="promo", unit_price=-1000)

    # Then
    assert line.total_amount == -1000
    assert line.total_tax_amount == -200


def test_discount_line_with_positive_amount_is_rejected() -> None:
    assert rejection_code(type=LineType.DISCOUNT, unit_price=1000) == "LINE_SIGN_INVALID"


@pytest.mark.parametrize("line_type", [LineType.GIFT_CARD, LineType.STORE_CREDIT])
def test_gift_card_and_store_credit_lines_must_be_negative(line_type: LineType) -> None:
    assert make_line(type=line_type, unit_price=-500).total_amount == -500
    assert rejection_code(type=line_type, unit_price=500) == "LINE_SIGN_INVALID"


def test_discount_line_with_zero_quantity_is_rejected() -> None:
    assert rejection_code(type=LineType.DISCOUNT, quantity=0, unit_price=-1000) == (
        "LINE_SIGN_INVALID"
    )


@pytest.mark.parametrize(
    "line_type", [t for t in LineType if t not in {"discount", "gift_card", "store_credit"}]
)
def test_charge_line_with_negative_price_is_rejected(line_type: LineType) -> None:
    assert rejection_code(type=line_type, unit_price=-1) == "LINE_SIGN_INVALID"


def test_negative_total_discount_amount_is_rejected() -> None:
    assert rejection_code(total_discount_amount=-1) == "DISCOUNT_INVALID"


def test_discount_larger_than_line_price_is_rejected() -> None:
    assert rejection_code(total_discount_amount=10_001) == "DISCOUNT_INVALID"


def test_discount_equal_to_line_price_gives_a_free_line() -> None:
    assert make_line(total_discount_amount=10_000).total_amount == 0


def test_rejection_names_the_line_reference() -> None:
    with pytest.raises(ValidationFailed) as raised:
        make_line(reference="sku-42", quantity=-3)
    assert "sku-42" in raised.value.message


# --- order totals --------------------------------------------------------------------


def test_order_totals_sum_line_amounts_and_taxes() -> None:
    # Given a shoe, shipping and a discount
    lines = [
        make_line(),
        make_line(reference="ship", type=LineType.SHIPPING_FEE, unit_price=4900),
        make_line(reference="promo", type=LineType.DISCOUNT, unit_price=-1000),
    ]

    # When
    totals = order_totals(lines)

    # Then
    assert totals == OrderTotals(order_amount=13_900, order_tax_amount=2000 + 980 - 200)


def test_order_with_1000_lines_is_accepted() -> None:
    lines = [make_line(reference=f"sku-{index}", unit_price=1) for index in range(MAX_LINES)]
    assert order_totals(lines).order_amount == 1000


def test_order_with_1001_lines_is_rejected() -> None:
    lines = [make_line(reference=f"sku-{index}", unit_price=1) for index in range(MAX_LINES + 1)]
    with pytest.raises(ValidationFailed) as raised:
        order_totals(lines)
    assert raised.value.code == "LINE_COUNT_INVALID"


def test_order_without_lines_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as raised:
        order_totals([])
    assert raised.value.code == "LINE_COUNT_INVALID"


@pytest.mark.parametrize("discount", [-10_000, -20_000])
def test_order_whose_discounts_cancel_its_amount_is_rejected(discount: int) -> None:
    # Given a discount as large as, or larger than, the goods
    lines = [
        make_line(),
        make_line(reference="promo", type=LineType.DISCOUNT, unit_price=discount),
    ]

    # When / Then
    with pytest.raises(ValidationFailed) as raised:
        order_totals(lines)
    assert raised.value.code == "ORDER_AMOUNT_INVALID"
