"""event_history: every event, kept after its outbox row is pruned (timelines, counters);
outbox events routed by store (``<store>.<event type>``)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_history")),
    )
    op.create_index("ix_event_history_order", "event_history", ["order_id"])
    # The history so far is the outbox's events, in the order they were recorded.
    op.execute(
        "INSERT INTO event_history (destination, message_id, order_id, payload, created_at) "
        "SELECT destination, message_id, order_id, payload, created_at FROM outbox "
        "WHERE kind = 'event' ORDER BY id"
    )
    # Events are now published with routing key <store>.<type>: room for the store, and
    # the events still waiting for the relay get their store word.
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column(
            "destination", existing_type=sa.String(64), type_=sa.String(160), nullable=False
        )
    op.execute(
        "UPDATE outbox SET destination = COALESCE((SELECT REPLACE(o.store_id, '.', '%2E') "
        "FROM orders AS o WHERE o.order_id = outbox.order_id), '~') || '.' || destination "
        "WHERE kind = 'event' AND sent_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_event_history_order", table_name="event_history")
    op.drop_table("event_history")
