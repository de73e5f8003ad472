"""Order lines and order totals, validated the way Klarna validates them (DESIGN §2).

An :class:`OrderLine` cannot exist in an invalid state: ``__post_init__`` checks every
rule, so a line rebuilt from storage is held to the same rules as one built from a
command. :meth:`OrderLine.create` is the front door for commands: it computes the
totals the caller left out and checks the ones it supplied.

Error messages name the line by its merchant ``reference`` (never by customer data),
and each rule has its own stable ``code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import ValidationFailed
from domain.money import (
    MAX_AMOUNT,
    MAX_LINES,
    MAX_ORDER_AMOUNT,
    MAX_TAX_RATE,
    line_tax_amount,
    line_total_amount,
)
from messages.common import LineType

#: Names and references are 1..255 characters (DESIGN §2).
MAX_TEXT_LENGTH = 255
#: A supplied ``total_tax_amount`` may differ from ours by one minor unit (Klarna rule).
TAX_TOLERANCE = 1


#: Lines that reduce what the customer pays carry negative amounts, as in Klarna.
NEGATIVE_LINE_TYPES: frozenset[LineType] = frozenset(
    {LineType.DISCOUNT, LineType.GIFT_CARD, LineType.STORE_CREDIT}
)


@dataclass(frozen=True, slots=True)
class OrderLine:
    name: str
    reference: str
    type: LineType
    quantity: int
    #: Minor units, tax included; negative for :data:`NEGATIVE_LINE_TYPES`.
    unit_price: int
    #: Basis points: 2500 is 25 %.
    tax_rate: int
    total_discount_amount: int
    total_amount: int
    total_tax_amount: int

    def __post_init__(self) -> None:
        _check_text(self.name, self.reference)
        if not isinstance(self.type, LineType):
            # Rows and JSON hand us plain strings; hold them to the same rules.
            object.__setattr__(self, "type", _parse_type(self.type, self.reference))
        _check_numbers(self)
        _check_totals(self)

    @classmethod
    def create(
        cls,
        *,
        name: str,
        reference: str,
        type: LineType | str,
        quantity: int,
        unit_price: int,
        tax_rate: int,
        total_discount_amount: int = 0,
        total_amount: int | None = None,
        total_tax_amount: int | None = None,
    ) -> OrderLine:
        """Build a line from command input; surrounding whitespace in texts is dropped.

        A supplied ``total_amount`` must match exactly; a supplied ``total_tax_amount``
        within one minor unit is kept as given, because the merchant's books use it.
        """
        name, reference = name.strip(), reference.strip()
        _check_text(name, reference)
        line_type = _parse_type(type, reference)
        if total_amount is None:
            total_amount = line_total_amount(quantity, unit_price, total_discount_amount)
        if total_tax_amount is None and 0 <= tax_rate <= MAX_TAX_RATE:
            total_tax_amount = line_tax_amount(total_amount, tax_rate)
        return cls(
            name=name,
            reference=reference,
            type=line_type,
            quantity=quantity,
            unit_price=unit_price,
            tax_rate=tax_rate,
            total_discount_amount=total_discount_amount,
            total_amount=total_amount,
            # An out-of-range tax rate leaves nothing to compute; __post_init__ rejects it.
            total_tax_amount=0 if total_tax_amount is None else total_tax_amount,
        )


@dataclass(frozen=True, slots=True)
class OrderTotals:
    order_amount: int
    order_tax_amount: int


def order_totals(lines: Sequence[OrderLine]) -> OrderTotals:
    """Sum the lines of an order, which must hold 1..1000 lines and a positive amount."""
    if not 1 <= len(lines) <= MAX_LINES:
        raise ValidationFailed(
            f"An order has 1..{MAX_LINES} lines; got {len(lines)}",
            code="LINE_COUNT_INVALID",
        )
    order_amount = sum(line.total_amount for line in lines)
    if not 0 < order_amount <= MAX_ORDER_AMOUNT:
        raise ValidationFailed(
            f"Order amount must be between 1 and {MAX_ORDER_AMOUNT} minor units; "
            f"the lines sum to {order_amount}",
            code="ORDER_AMOUNT_INVALID",
        )
    return OrderTotals(
        order_amount=order_amount,
        order_tax_amount=sum(line.total_tax_amount for line in lines),
    )


def _fail(line: OrderLine, problem: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"Order line {line.reference!r}: {problem}", code=code)


def _parse_type(value: LineType | str, reference: str) -> LineType:
    try:
        return LineType(value)
    except ValueError:
        raise ValidationFailed(
            f"Order line {reference!r}: type {str(value)[:40]!r} is not one of "
            f"{', '.join(line_type.value for line_type in LineType)}",
            code="LINE_TYPE_INVALID",
        ) from None


def _check_text(name: str, reference: str) -> None:
    if not 1 <= len(reference.strip()) <= len(reference) <= MAX_TEXT_LENGTH:
        # The reference is unusable, so it is not quoted back.
        raise ValidationFailed(
            f"An order line reference must be 1..{MAX_TEXT_LENGTH} characters, not blank; "
            f"got {len(reference)} characters",
            code="LINE_FIELD_INVALID",
        )
    if not 1 <= len(name.strip()) <= len(name) <= MAX_TEXT_LENGTH:
        raise ValidationFailed(
            f"Order line {reference!r}: name must be 1..{MAX_TEXT_LENGTH} characters, "
            f"not blank; got {len(name)} characters",
            code="LINE_FIELD_INVALID",
        )


def _check_numbers(line: OrderLine) -> None:
    if line.quantity < 0:
        raise _fail(
            line, f"quantity must be 0 or more; got {line.quantity}", "LINE_QUANTITY_INVALID"
        )
    if not 0 <= line.tax_rate <= MAX_TAX_RATE:
        raise _fail(
            line,
            f"tax_rate must be 0..{MAX_TAX_RATE} basis points; got {line.tax_rate}",
            "TAX_RATE_OUT_OF_RANGE",
        )
    _check_amount(line, "unit_price", line.unit_price)
    # On a negative line a discount only deepens the credit; the ±MAX_AMOUNT limit on
    # its total bounds it. On any other line it cannot exceed what the line costs.
    ceiling = None if line.type in NEGATIVE_LINE_TYPES else line.quantity * line.unit_price
    if line.total_discount_amount < 0 or (
        ceiling is not None and line.total_discount_amount > ceiling
    ):
        raise _fail(
            line,
            f"total_discount_amount must be between 0 and quantity × unit_price; "
            f"got {line.total_discount_amount}",
            "DISCOUNT_INVALID",
        )


def _check_totals(line: OrderLine) -> None:
    expected_total = line_total_amount(line.quantity, line.unit_price, line.total_discount_amount)
    if line.total_amount != expected_total:
        raise _fail(
            line,
            f"total_amount {line.total_amount} differs from quantity × unit_price − "
            f"total_discount_amount = {expected_total}",
            "LINE_TOTAL_MISMATCH",
        )
    _check_amount(line, "total_amount", line.total_amount)
    expected_tax = line_tax_amount(line.total_amount, line.tax_rate)
    if abs(line.total_tax_amount - expected_tax) > TAX_TOLERANCE:
        raise _fail(
            line,
            f"total_tax_amount {line.total_tax_amount} differs from the computed "
            f"{expected_tax} by more than {TAX_TOLERANCE}",
            "LINE_TAX_MISMATCH",
        )


def _check_amount(line: OrderLine, field: str, amount: int) -> None:
    """The DESIGN limit and the Klarna sign rule, shared by unit_price and total_amount."""
    if abs(amount) > MAX_AMOUNT:
        raise _fail(
            line,
            f"{field} must be within ±{MAX_AMOUNT} minor units; got {amount}",
            "AMOUNT_OUT_OF_RANGE",
        )
    negative = line.type in NEGATIVE_LINE_TYPES
    if negative != (amount < 0):
        wanted = "negative" if negative else "zero or positive"
        raise _fail(
            line,
            f"a {line.type.value} line has a {wanted} {field}; got {amount}",
            "LINE_SIGN_INVALID",
        )
