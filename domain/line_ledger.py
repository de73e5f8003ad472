"""The ledger per order line: what of each line is captured and refunded, and the
exact share of a line that a capture or refund naming it moves.

A line's ``total_amount`` (and ``total_tax_amount``) is spread over its units by
cumulative floor: the first ``n`` of ``q`` units are worth ``⌊total × n / q⌋``
(towards zero for negative lines), and the units that finish a line take exactly
what is left. So shares never depend on how a line was split into captures, they sum
to the line exactly, and the remainder lands deterministically on the last units.

How lines and amounts combine (DESIGN §1, written down in docs/architecture.md):

- A capture or refund that names lines moves each named line's share; any amounts
  the command gives must equal the computed ones.
- An amount-only capture or refund is accounted against the order total and names no
  line, except when it moves *everything* that is left and nothing earlier was
  amount-only: then it is the rest of every line (auto-capture, "capture the rest",
  "refund everything"), recorded per line like a line capture.
- A line is captured up to its quantity and refunded up to what was captured of it
  (by lines). A line with anything captured by lines cannot be edited; every other
  line counts as uncaptured for edits, and the order amount after an edit stays at
  or above everything captured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from domain.errors import AmountError, ValidationFailed
from domain.ledger import EntryKind, LedgerEntry, LineShare
from domain.lines import TAX_TOLERANCE, OrderLine
from messages.common import LineType


@dataclass(frozen=True, slots=True)
class LineRequest:
    """A line as a capture or refund command names it. Everything but ``reference``
    and ``quantity`` is optional and, when given, checked against the order's line."""

    reference: str
    quantity: int
    type: LineType | None = None
    unit_price: int | None = None
    tax_rate: int | None = None
    total_amount: int | None = None
    total_discount_amount: int | None = None
    total_tax_amount: int | None = None


@dataclass(frozen=True, slots=True)
class Moved:
    """What has moved of one line so far, in one direction (captured or refunded)."""

    quantity: int = 0
    amount: int = 0
    tax_amount: int = 0

    def plus(self, share: LineShare) -> Moved:
        return Moved(
            self.quantity + share.quantity,
            self.amount + share.amount,
            self.tax_amount + share.tax_amount,
        )

    @property
    def touched(self) -> bool:
        return self.quantity > 0 or self.amount != 0


@dataclass(frozen=True, slots=True)
class LinePosition:
    captured: Moved = Moved()
    refunded: Moved = Moved()


def positions(entries: Iterable[LedgerEntry]) -> dict[str, LinePosition]:
    """Per line reference: what line captures and line refunds moved so far."""
    out: dict[str, LinePosition] = {}
    for e in entries:
        if e.kind not in (EntryKind.CAPTURE, EntryKind.REFUND):
            continue
        for share in e.lines:
            pos = out.get(share.reference, LinePosition())
            if e.kind is EntryKind.CAPTURE:
                pos = LinePosition(pos.captured.plus(share), pos.refunded)
            else:
                pos = LinePosition(pos.captured, pos.refunded.plus(share))
            out[share.reference] = pos
    return out


def _prorata(total: int, units: int, quantity: int) -> int:
    """The first ``units`` of ``quantity`` units' part of ``total``, rounded towards zero."""
    part = abs(total) * units // quantity
    return part if total >= 0 else -part


def _upto(line: OrderLine, units: int, end: int, end_value: Moved) -> Moved:
    """What the first ``units`` units are worth, where ``end`` units are worth
    ``end_value`` exactly (the whole line, or everything captured of it)."""
    if units == end:
        return end_value
    return Moved(
        units,
        _prorata(line.total_amount, units, line.quantity),
        _prorata(line.total_tax_amount, units, line.quantity),
    )


def _share(line: OrderLine, done: Moved, units: int, end: int, end_value: Moved) -> LineShare:
    target = _upto(line, done.quantity + units, end, end_value)
    return LineShare(
        line.reference, units, target.amount - done.amount, target.tax_amount - done.tax_amount
    )


def whole(line: OrderLine) -> Moved:
    return Moved(line.quantity, line.total_amount, line.total_tax_amount)


def capture_share(line: OrderLine, pos: LinePosition, units: int) -> LineShare:
    """``units`` more units of ``line`` captured; the last ones take what is left."""
    open_units = line.quantity - pos.captured.quantity
    _ensure_units(line, units, open_units, nothing_open=pos.captured == whole(line))
    if units > open_units:
        raise AmountError(
            f"line {line.reference!r}: capturing {units} exceeds the {open_units} of "
            f"{line.quantity} units not yet captured",
            code="LINE_CAPTURE_EXCEEDS_QUANTITY",
        )
    return _share(line, pos.captured, units, line.quantity, whole(line))


def refund_share(line: OrderLine, pos: LinePosition, units: int) -> LineShare:
    """``units`` more units of ``line`` refunded, out of what was captured of it."""
    open_units = pos.captured.quantity - pos.refunded.quantity
    _ensure_units(line, units, open_units, nothing_open=pos.refunded == pos.captured)
    if units > open_units:
        raise AmountError(
            f"line {line.reference!r}: refunding {units} exceeds the {open_units} units "
            "captured by lines and not yet refunded",
            code="LINE_REFUND_EXCEEDS_CAPTURED",
        )
    return _share(line, pos.refunded, units, pos.captured.quantity, pos.captured)


def _ensure_units(line: OrderLine, units: int, open_units: int, *, nothing_open: bool) -> None:
    """Zero units name a line only where units cannot (a zero-quantity line's amount)."""
    if units == 0 and (open_units > 0 or nothing_open):
        raise ValidationFailed(
            f"line {line.reference!r}: name at least one unit", code="LINE_QUANTITY_INVALID"
        )


def rest_of_lines(
    lines: Sequence[OrderLine], pos: dict[str, LinePosition], *, refund: bool
) -> tuple[LineShare, ...]:
    """Every line's open rest: all that is not yet captured (or captured and not yet
    refunded). Lines with nothing open are left out."""
    shares = []
    for line in lines:
        p = pos.get(line.reference, LinePosition())
        done, end = (p.refunded, p.captured) if refund else (p.captured, whole(line))
        if done != end:
            units = end.quantity - done.quantity
            shares.append(_share(line, done, units, end.quantity, end))
    return tuple(shares)


def shares_for(
    requests: Sequence[LineRequest],
    lines: Sequence[OrderLine],
    pos: dict[str, LinePosition],
    *,
    refund: bool,
) -> tuple[LineShare, ...]:
    """The shares the requested lines move, each checked against the order's line."""
    by_ref = {line.reference: line for line in lines}
    ensure_unique_references(r.reference for r in requests)
    shares = []
    for req in requests:
        line = by_ref.get(req.reference)
        if line is None:
            raise ValidationFailed(
                f"order has no line with reference {req.reference!r}", code="LINE_NOT_IN_ORDER"
            )
        _check_same_line(req, line)
        p = pos.get(line.reference, LinePosition())
        share = (
            refund_share(line, p, req.quantity) if refund else capture_share(line, p, req.quantity)
        )
        _check_given_amounts(req, line, share)
        shares.append(share)
    return tuple(shares)


def ensure_unique_references(references: Iterable[str]) -> None:
    seen: set[str] = set()
    for ref in references:
        if ref in seen:
            raise ValidationFailed(
                f"line reference {ref!r} appears more than once; every line of an order "
                "(return fees included) has its own reference",
                code="LINE_REFERENCE_DUPLICATE",
            )
        seen.add(ref)


def _check_same_line(req: LineRequest, line: OrderLine) -> None:
    for name, given, own in (
        ("type", req.type, line.type),
        ("unit_price", req.unit_price, line.unit_price),
        ("tax_rate", req.tax_rate, line.tax_rate),
    ):
        if given is not None and given != own:
            raise ValidationFailed(
                f"line {line.reference!r}: {name} {given} differs from the order's {own}",
                code="LINE_DIFFERS_FROM_ORDER",
            )


def _check_given_amounts(req: LineRequest, line: OrderLine, share: LineShare) -> None:
    discount = share.quantity * line.unit_price - share.amount
    for name, given, computed, tolerance in (
        ("total_amount", req.total_amount, share.amount, 0),
        ("total_discount_amount", req.total_discount_amount, discount, 0),
        ("total_tax_amount", req.total_tax_amount, share.tax_amount, TAX_TOLERANCE),
    ):
        if given is not None and abs(given - computed) > tolerance:
            raise AmountError(
                f"line {line.reference!r}: {name} {given} differs from the {computed} that "
                f"{share.quantity} of its {line.quantity} units come to",
                code="LINE_AMOUNT_MISMATCH",
            )
