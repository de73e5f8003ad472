"""ledger_entries.lines: each named line's share (reference, quantity, amount, tax)
instead of bare references; legacy money history mapped onto the per-line model

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 07:00:00

Deploy with the workers stopped: the old code writes ``line_references``, which this
revision drops. What the old model allowed and the new one does not is mapped so that
every order keeps its money and stays movable (``_replay``):

- a line capture or refund becomes the whole lines it named, when that adds up to the
  entry and stays within each line (captured once, refunded up to its capture);
  otherwise it stays amount-only;
- an edit that lowered the amount (no ledger entry then) becomes a ``release`` with
  reason ``edit`` of ``authorized − order_amount``;
- a return fee was an extra charge on a ``return_fee`` order line: it becomes an
  authorization and a capture of that line (what the customer was in fact charged);
- ``orders.status`` is derived again from the mapped ledger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_entries = sa.table(
    "ledger_entries",
    sa.column("entry_id", sa.Uuid()),
    sa.column("order_id", sa.Uuid()),
    sa.column("seq", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("amount", sa.BigInteger()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("reason", sa.String()),
    sa.column("line_references", sa.JSON()),
    sa.column("lines", sa.JSON()),
)
_order_lines = sa.table(
    "order_lines",
    sa.column("order_id", sa.Uuid()),
    sa.column("reference", sa.String()),
    sa.column("type", sa.String()),
    sa.column("quantity", sa.Integer()),
    sa.column("total_amount", sa.BigInteger()),
    sa.column("total_tax_amount", sa.BigInteger()),
)
_orders = sa.table(
    "orders",
    sa.column("order_id", sa.Uuid()),
    sa.column("link_status", sa.String()),
    sa.column("status", sa.String()),
    sa.column("order_amount", sa.BigInteger()),
)


def _refs(value: object) -> list[str]:
    refs = json.loads(value) if isinstance(value, str) else value
    return [str(ref) for ref in refs] if isinstance(refs, list) else []


class _LineRow(Protocol):
    reference: str
    quantity: int
    total_amount: int
    total_tax_amount: int


class _Share(TypedDict):
    reference: str
    quantity: int
    amount: int
    tax_amount: int


def _whole(line: _LineRow) -> _Share:
    return {
        "reference": line.reference,
        "quantity": line.quantity,
        "amount": line.total_amount,
        "tax_amount": line.total_tax_amount,
    }


def _status(totals: dict[str, int], order_amount: int, expired: bool) -> str:
    """``domain.ledger.payment_status`` as of this revision (frozen here on purpose)."""
    captured, refunded, released = totals["capture"], totals["refund"], totals["release"]
    remaining = order_amount - captured - released
    if expired and captured == 0:
        return "EXPIRED"
    if refunded > 0:
        return "REFUNDED" if refunded >= captured and remaining == 0 else "PART_REFUNDED"
    if captured == 0:
        return "CANCELLED" if released > 0 else "AUTHORIZED"
    return "CAPTURED" if remaining == 0 else "PART_CAPTURED"


def _replay(
    entries: Sequence[Any], lines: dict[str, Any]
) -> tuple[dict[Any, tuple[str, list[_Share]]], list[tuple[str, int, Any]], dict[str, int]]:
    """For one order: each entry's (kind, shares), the entries to add (kind, amount,
    reason) before the edit release, and the money totals by kind."""
    mapped: dict[Any, tuple[str, list[_Share]]] = {}
    added: list[tuple[str, int, Any]] = []
    captured: set[str] = set()
    refunded: set[str] = set()
    for e in entries:
        refs = _refs(e.line_references)
        kind, shares = e.kind, []
        if e.kind == "return_fee":
            fee = lines.get(refs[0]) if refs else None
            share = (
                _whole(fee)
                if fee is not None
                else _Share(
                    reference=refs[0] if refs else "return-fee",
                    quantity=1,
                    amount=e.amount,
                    tax_amount=0,
                )
            )
            kind, shares = "capture", [share] if share["amount"] == e.amount else []
            captured.update(s["reference"] for s in shares)
            added.append(("authorization", e.amount, None))
        elif e.kind in ("capture", "refund") and refs and len(set(refs)) == len(refs):
            known = all(r in lines for r in refs)
            if e.kind == "capture":
                ok = known and not captured.intersection(refs)
            else:
                ok = known and set(refs) <= captured and not refunded.intersection(refs)
            candidate = [_whole(lines[r]) for r in refs] if known else []
            if ok and sum(s["amount"] for s in candidate) == e.amount:
                shares = candidate
                (captured if e.kind == "capture" else refunded).update(refs)
        mapped[e.entry_id] = (kind, shares)
    totals = dict.fromkeys(("authorization", "capture", "refund", "release"), 0)
    for e in entries:
        totals[mapped[e.entry_id][0]] += e.amount
    for kind, amount, _ in added:
        totals[kind] += amount
    return mapped, added, totals


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("lines", sa.JSON(), nullable=True))
    bind = op.get_bind()
    order_ids = bind.execute(sa.select(_entries.c.order_id).distinct()).scalars().all()
    for order_id in order_ids:
        order = bind.execute(sa.select(_orders).where(_orders.c.order_id == order_id)).one()
        lines = {
            row.reference: row
            for row in bind.execute(
                sa.select(_order_lines).where(_order_lines.c.order_id == order_id)
            )
        }
        entries = bind.execute(
            sa.select(_entries).where(_entries.c.order_id == order_id).order_by(_entries.c.seq)
        ).all()
        mapped, added, totals = _replay(entries, lines)
        for e in entries:
            kind, shares = mapped[e.entry_id]
            bind.execute(
                _entries.update()
                .where(_entries.c.entry_id == e.entry_id)
                .values(kind=kind, lines=shares)
            )
        if order.link_status == "COMPLETED" and totals["authorization"] > order.order_amount:
            added.append(("release", totals["authorization"] - order.order_amount, "edit"))
        seq = max(e.seq for e in entries)
        now = datetime.now(UTC)
        for kind, amount, reason in added:
            seq += 1
            bind.execute(
                sa.insert(_entries).values(
                    entry_id=uuid.uuid4(),
                    order_id=order_id,
                    seq=seq,
                    kind=kind,
                    amount=amount,
                    at=now,
                    reason=reason,
                    line_references=[],
                    lines=[],
                )
            )
        if order.link_status == "COMPLETED":
            expired = any(e.reason == "expiry" for e in entries)
            status = _status(totals, order.order_amount, expired)
            bind.execute(
                _orders.update().where(_orders.c.order_id == order_id).values(status=status)
            )
    with op.batch_alter_table("ledger_entries") as batch:
        batch.alter_column("lines", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("line_references")


def downgrade() -> None:
    raise NotImplementedError(
        "0004 cannot be undone without losing money history: the old model has no edit "
        "releases, no return fees withheld from refunds and no partial line shares"
    )
