"""Order repository: loads the aggregate from its rows, locks it, writes back changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from domain.ledger import EntryKind, LedgerEntry, ReleaseReason
from domain.lines import OrderLine
from domain.links import Delivery, Link
from domain.order import CustomerContact, Order
from domain.status import LinkStatus
from messages.common import LineType
from workers.storage import tables as t


@dataclass(slots=True)
class _Snapshot:
    """What was loaded, so that commit writes only what changed."""

    lines: tuple[OrderLine, ...]
    ledger_len: int
    links: list[tuple[UUID, Delivery, bool]]
    is_new: bool


class SqlOrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.loaded: dict[UUID, tuple[Order, _Snapshot]] = {}

    # ---- reads -------------------------------------------------------------------

    def add(self, order: Order) -> None:
        self.loaded[order.order_id] = (order, _Snapshot((), 0, [], is_new=True))

    def get(self, order_id: UUID) -> Order | None:
        return self._load(order_id, lock=False)

    def get_for_update(self, order_id: UUID) -> Order | None:
        return self._load(order_id, lock=True)

    def get_by_token_for_update(self, token_hash: str) -> Order | None:
        order_id = self.session.execute(
            select(t.links.c.order_id).where(t.links.c.token_hash == token_hash)
        ).scalar_one_or_none()
        return None if order_id is None else self._load(order_id, lock=True)

    def _load(self, order_id: UUID, *, lock: bool) -> Order | None:
        if order_id in self.loaded:
            return self.loaded[order_id][0]
        query = select(t.orders).where(t.orders.c.order_id == order_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).mappings().one_or_none()
        if row is None:
            return None
        order = self._build(row)
        if lock:
            snapshot = _Snapshot(
                order.lines,
                len(order.ledger),
                [(lk.link_id, lk.delivery, lk.superseded) for lk in order.links],
                is_new=False,
            )
            self.loaded[order_id] = (order, snapshot)
        return order

    def _build(self, row: Any) -> Order:
        oid = row["order_id"]
        lines = tuple(
            OrderLine(
                name=r.name,
                reference=r.reference,
                type=LineType(r.type),
                quantity=r.quantity,
                unit_price=r.unit_price,
                tax_rate=r.tax_rate,
                total_discount_amount=r.total_discount_amount,
                total_amount=r.total_amount,
                total_tax_amount=r.total_tax_amount,
            )
            for r in self.session.execute(
                select(t.order_lines)
                .where(t.order_lines.c.order_id == oid)
                .order_by(t.order_lines.c.position)
            )
        )
        ledger = [
            LedgerEntry(
                entry_id=r.entry_id,
                kind=EntryKind(r.kind),
                amount=r.amount,
                at=r.at,
                command_id=r.command_id,
                reason=ReleaseReason(r.reason) if r.reason else None,
                line_references=tuple(r.line_references),
                description=r.description,
            )
            for r in self.session.execute(
                select(t.ledger_entries)
                .where(t.ledger_entries.c.order_id == oid)
                .order_by(t.ledger_entries.c.seq)
            )
        ]
        link_rows = [
            Link(
                link_id=r.link_id,
                token_hash=r.token_hash,
                created_at=r.created_at,
                expires_at=r.expires_at,
                delivery=Delivery(r.delivery),
                superseded=r.superseded,
            )
            for r in self.session.execute(
                select(t.links).where(t.links.c.order_id == oid).order_by(t.links.c.seq)
            )
        ]
        return Order(
            order_id=oid,
            store_id=row["store_id"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            customer=CustomerContact(
                row["customer_email"], row["customer_phone"], row["customer_name"]
            ),
            purchase_country=row["purchase_country"],
            currency=row["currency"],
            merchant_reference1=row["merchant_reference1"],
            merchant_reference2=row["merchant_reference2"],
            lines=lines,
            auto_capture=row["auto_capture"],
            link_status=LinkStatus(row["link_status"]),
            links=link_rows,
            authorization_id=row["authorization_id"],
            completed_at=row["completed_at"],
            reservation_expires_at=row["reservation_expires_at"],
            ledger=ledger,
        )

    # ---- writes ------------------------------------------------------------------

    def flush(self, now: datetime) -> None:
        for order, snap in self.loaded.values():
            order.check_invariants()
            self._write(order, snap, now)
            order.events.clear()
        self.loaded.clear()

    def _write(self, order: Order, snap: _Snapshot, now: datetime) -> None:
        values = {
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
            "current_link_id": order.current_link.link_id if order.current_link else None,
            "reservation_expires_at": order.reservation_expires_at,
            "link_due_at": order.link_due_at,
            "reservation_due_at": order.reservation_due_at,
            "updated_at": now,
        }
        s = self.session
        oid = order.order_id
        if snap.is_new:
            s.execute(insert(t.orders).values(order_id=oid, **values))
        else:
            s.execute(
                update(t.orders)
                .where(t.orders.c.order_id == oid)
                .values(version=t.orders.c.version + 1, **values)
            )
        if order.lines != snap.lines:
            if not snap.is_new:
                s.execute(delete(t.order_lines).where(t.order_lines.c.order_id == oid))
            s.execute(
                insert(t.order_lines),
                [
                    {
                        "order_id": oid,
                        "position": i,
                        "name": ln.name,
                        "reference": ln.reference,
                        "type": ln.type.value,
                        "quantity": ln.quantity,
                        "unit_price": ln.unit_price,
                        "tax_rate": ln.tax_rate,
                        "total_discount_amount": ln.total_discount_amount,
                        "total_amount": ln.total_amount,
                        "total_tax_amount": ln.total_tax_amount,
                    }
                    for i, ln in enumerate(order.lines)
                ],
            )
        new_entries = order.ledger[snap.ledger_len :]
        if new_entries:
            s.execute(
                insert(t.ledger_entries),
                [
                    {
                        "entry_id": e.entry_id,
                        "order_id": oid,
                        "seq": snap.ledger_len + i,
                        "kind": e.kind.value,
                        "amount": e.amount,
                        "at": e.at,
                        "command_id": e.command_id,
                        "reason": e.reason.value if e.reason else None,
                        "line_references": list(e.line_references),
                        "description": e.description,
                    }
                    for i, e in enumerate(new_entries)
                ],
            )
        self._write_links(order, snap)

    def _write_links(self, order: Order, snap: _Snapshot) -> None:
        known = {link_id: (delivery, superseded) for link_id, delivery, superseded in snap.links}
        fresh = []
        for seq, link in enumerate(order.links):
            before = known.get(link.link_id)
            if before is None:
                fresh.append(
                    {
                        "link_id": link.link_id,
                        "order_id": order.order_id,
                        "seq": seq,
                        "token_hash": link.token_hash,
                        "created_at": link.created_at,
                        "expires_at": link.expires_at,
                        "delivery": link.delivery.value,
                        "superseded": link.superseded,
                    }
                )
            elif before != (link.delivery, link.superseded):
                self.session.execute(
                    update(t.links)
                    .where(t.links.c.link_id == link.link_id)
                    .values(delivery=link.delivery.value, superseded=link.superseded)
                )
        if fresh:
            self.session.execute(insert(t.links), fresh)
