"""ledger_entries.lines: each named line's share (reference, quantity, amount, tax)
instead of bare references

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 07:00:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _shares(entry: Any, lines: dict[str, Any]) -> list[dict[str, Any]]:
    """What the old model recorded, as shares: a named line was taken whole. Where that
    does not add up to the entry (the old model took amounts from the command), the
    entry stays amount-only rather than carry shares nobody computed."""
    refs = entry.line_references
    refs = json.loads(refs) if isinstance(refs, str) else refs or []
    if entry.kind == "return_fee":
        tax = lines[refs[0]].total_tax_amount if refs and refs[0] in lines else 0
        ref = refs[0] if refs else "return-fee"
        return [{"reference": ref, "quantity": 1, "amount": entry.amount, "tax_amount": tax}]
    if not refs or any(r not in lines for r in refs) or len(set(refs)) != len(refs):
        return []
    shares = [
        {
            "reference": r,
            "quantity": lines[r].quantity,
            "amount": lines[r].total_amount,
            "tax_amount": lines[r].total_tax_amount,
        }
        for r in refs
    ]
    return shares if sum(s["amount"] for s in shares) == entry.amount else []


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("lines", sa.JSON(), nullable=True))
    bind = op.get_bind()
    entries = sa.table(
        "ledger_entries",
        sa.column("entry_id", sa.Uuid()),
        sa.column("order_id", sa.Uuid()),
        sa.column("kind", sa.String()),
        sa.column("amount", sa.BigInteger()),
        sa.column("line_references", sa.JSON()),
        sa.column("lines", sa.JSON()),
    )
    order_lines = sa.table(
        "order_lines",
        sa.column("order_id", sa.Uuid()),
        sa.column("reference", sa.String()),
        sa.column("quantity", sa.Integer()),
        sa.column("total_amount", sa.BigInteger()),
        sa.column("total_tax_amount", sa.BigInteger()),
    )
    # Only entries that named lines need work; the rest get an empty list in one UPDATE.
    named = bind.execute(
        sa.select(entries).where(
            sa.func.coalesce(sa.cast(entries.c.line_references, sa.Text), "[]") != "[]"
        )
    ).all()
    for entry in named:
        lines = {
            row.reference: row
            for row in bind.execute(
                sa.select(order_lines).where(order_lines.c.order_id == entry.order_id)
            )
        }
        bind.execute(
            entries.update()
            .where(entries.c.entry_id == entry.entry_id)
            .values(lines=_shares(entry, lines))
        )
    bind.execute(entries.update().where(entries.c.lines.is_(None)).values(lines=[]))
    with op.batch_alter_table("ledger_entries") as batch:
        batch.alter_column("lines", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("line_references")


def downgrade() -> None:
    op.add_column("ledger_entries", sa.Column("line_references", sa.JSON(), nullable=True))
    bind = op.get_bind()
    entries = sa.table(
        "ledger_entries",
        sa.column("entry_id", sa.Uuid()),
        sa.column("lines", sa.JSON()),
        sa.column("line_references", sa.JSON()),
    )
    for entry in bind.execute(sa.select(entries)).all():
        shares = json.loads(entry.lines) if isinstance(entry.lines, str) else entry.lines
        refs = [s["reference"] for s in shares or []]
        bind.execute(
            entries.update()
            .where(entries.c.entry_id == entry.entry_id)
            .values(line_references=refs)
        )
    with op.batch_alter_table("ledger_entries") as batch:
        batch.alter_column("line_references", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("lines")
