"""Money arithmetic in integer minor units, the Klarna way (DESIGN §2).

Every amount is an ``int`` of minor units and every division is exact (integer
numerator and denominator) followed by one explicit rounding, so the same order gives
the same totals on every host and in every language that re-implements these rules.
Floats never appear: ``0.1 + 0.2`` is not a price.
"""

from __future__ import annotations

from domain.errors import ValidationFailed

#: The limits are the wire contract's (DESIGN §2): one definition, in messages/.
from messages.common import MAX_AMOUNT as MAX_AMOUNT
from messages.common import MAX_LINES as MAX_LINES

#: Tax rates are basis points: 2500 is 25 %, 10000 is 100 %.
MAX_TAX_RATE = 10_000
#: Upper bound of ``order_amount``: every line at its limit.
MAX_ORDER_AMOUNT = MAX_AMOUNT * MAX_LINES

_BASIS_POINTS = 10_000


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero.

    Symmetric, so ``round_half_up(-n, d) == -round_half_up(n, d)``: a discount line's
    tax is exactly the negation of the same positive line's tax.
    """
    if denominator == 0:
        raise ZeroDivisionError("round_half_up: denominator is zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def line_total_amount(quantity: int, unit_price: int, total_discount_amount: int = 0) -> int:
    """``quantity × unit_price − total_discount_amount``; validation lives in ``domain.lines``."""
    return quantity * unit_price - total_discount_amount


def line_tax_amount(total_amount: int, tax_rate: int) -> int:
    """Tax included in a tax-inclusive ``total_amount`` at ``tax_rate`` basis points.

    ``total − total × 10000 / (10000 + rate)`` equals ``total × rate / (10000 + rate)``
    exactly; that single fraction is rounded half away from zero, so the result lies in
    ``[0, total]`` for positive totals and ``tax(−x) == −tax(x)``.
    """
    if not 0 <= tax_rate <= MAX_TAX_RATE:
        raise ValidationFailed(
            f"Tax rate {tax_rate} is outside 0..{MAX_TAX_RATE} basis points",
            code="TAX_RATE_OUT_OF_RANGE",
        )
    return round_half_up(total_amount * tax_rate, _BASIS_POINTS + tax_rate)
