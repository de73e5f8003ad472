"""The order aggregate and its rows, both ways, in one place.

An order is one ``orders`` row and its children: ``order_lines`` by position,
``ledger_entries`` and ``links`` by seq. Reading builds the aggregate from them;
writing turns it back into the same columns. The column types (``tables.py``) hand
back what the domain holds (aware UTC datetimes, UUIDs, JSON as lists), on SQLite as
on PostgreSQL, so the mapping is names only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping

from domain.ledger import EntryKind, LedgerEntry, LineShare, ReleaseReason
from domain.lines import OrderLine
from domain.links import Delivery, Link
from domain.order import CustomerContact, Order
from domain.status import LinkStatus
from messages.common import LineType

#: A row as read: ``Result.mappings()``, or an object of a JSON array of rows.
Row = RowMapping | Mapping[str, Any]  # Any: a column's value, typed by tables.py
#: Statement parameters for one row.
Values = dict[str, object]


# ---- rows -> aggregate ----------------------------------------------------------------


def order_from_rows(
    row: Row,
    lines: Sequence[Row],
    entries: Sequence[Row],
    links: Sequence[Row],
) -> Order:
    return Order(
        order_id=row["order_id"],
        store_id=row["store_id"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        customer=CustomerContact(
            row["customer_email"], row["customer_phone"], row["customer_name"], row["channel"]
        ),
        purchase_country=row["purchase_country"],
        currency=row["currency"],
        merchant_reference1=row["merchant_reference1"],
        merchant_reference2=row["merchant_reference2"],
        lines=tuple(_line(r) for r in lines),
        auto_capture=row["auto_capture"],
        link_status=LinkStatus(row["link_status"]),
        links=[_link(r) for r in links],
        authorization_id=row["authorization_id"],
        completed_at=row["completed_at"],
        reservation_expires_at=row["reservation_expires_at"],
        ledger=[_entry(r) for r in entries],
    )


def _line(r: Row) -> OrderLine:
    return OrderLine(
        name=r["name"],
        reference=r["reference"],
        type=LineType(r["type"]),
        quantity=r["quantity"],
        unit_price=r["unit_price"],
        tax_rate=r["tax_rate"],
        total_discount_amount=r["total_discount_amount"],
        total_amount=r["total_amount"],
        total_tax_amount=r["total_tax_amount"],
    )


def _entry(r: Row) -> LedgerEntry:
    return LedgerEntry(
        entry_id=r["entry_id"],
        kind=EntryKind(r["kind"]),
        amount=r["amount"],
        at=r["at"],
        command_id=r["command_id"],
        reason=ReleaseReason(r["reason"]) if r["reason"] else None,
        lines=tuple(
            LineShare(s["reference"], s["quantity"], s["amount"], s["tax_amount"])
            for s in r["lines"]
        ),
        description=r["description"],
    )


def _link(r: Row) -> Link:
    return Link(
        link_id=r["link_id"],
        token_hash=r["token_hash"],
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        delivery=Delivery(r["delivery"]),
        superseded=r["superseded"],
    )


# ---- aggregate -> rows ----------------------------------------------------------------


def order_values(order: Order) -> Values:
    """The ``orders`` columns the repository owns: all but the key, ``version``,
    ``updated_at`` and the scheduler's ``*_released_at`` stamps. The derived ones
    (status, amounts, deadlines) are the domain's answers, stored for the scans."""
    link = order.current_link
    return {
        "store_id": order.store_id,
        "created_by": order.created_by,
        "created_at": order.created_at,
        "customer_email": order.customer.email,
        "customer_phone": order.customer.phone,
        "customer_name": order.customer.name,
        "channel": order.channel,
        "purchase_country": order.purchase_country,
        "currency": order.currency,
        "merchant_reference1": order.merchant_reference1,
        "merchant_reference2": order.merchant_reference2,
        "auto_capture": order.auto_capture,
        "link_status": order.link_status.value,
        "status": order.status,
        "order_amount": order.order_amount,
        "order_tax_amount": order.order_tax_amount,
        "authorization_id": order.authorization_id,
        "completed_at": order.completed_at,
        "link_expires_at": order.link_expires_at,
        "current_link_id": link.link_id if link is not None else None,
        "reservation_expires_at": order.reservation_expires_at,
        "link_due_at": order.link_due_at,
        "reservation_due_at": order.reservation_due_at,
    }


def line_rows(order: Order) -> list[Values]:
    return [
        {
            "order_id": order.order_id,
            "position": position,
            "name": line.name,
            "reference": line.reference,
            "type": line.type.value,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "tax_rate": line.tax_rate,
            "total_discount_amount": line.total_discount_amount,
            "total_amount": line.total_amount,
            "total_tax_amount": line.total_tax_amount,
        }
        for position, line in enumerate(order.lines)
    ]


def entry_row(order_id: UUID, seq: int, e: LedgerEntry) -> Values:
    return {
        "entry_id": e.entry_id,
        "order_id": order_id,
        "seq": seq,
        "kind": e.kind.value,
        "amount": e.amount,
        "at": e.at,
        "command_id": e.command_id,
        "reason": e.reason.value if e.reason else None,
        "lines": [
            {
                "reference": s.reference,
                "quantity": s.quantity,
                "amount": s.amount,
                "tax_amount": s.tax_amount,
            }
            for s in e.lines
        ],
        "description": e.description,
    }


def link_row(order_id: UUID, seq: int, link: Link) -> Values:
    return {
        "link_id": link.link_id,
        "order_id": order_id,
        "seq": seq,
        "token_hash": link.token_hash,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "delivery": link.delivery.value,
        "superseded": link.superseded,
    }
