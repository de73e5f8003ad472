"""link_reminders: the reminder before expiry, a durable deadline per link; the store's
reminder setting (stores.reminder_hours_before)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stores", sa.Column("reminder_hours_before", sa.Integer(), nullable=True))
    op.create_table(
        "link_reminders",
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("link_id", name=op.f("pk_link_reminders")),
    )
    op.create_index(
        "ix_link_reminders_due",
        "link_reminders",
        ["due_at"],
        postgresql_where=sa.text("due_at IS NOT NULL"),
        sqlite_where=sa.text("due_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_link_reminders_due", table_name="link_reminders")
    op.drop_table("link_reminders")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("reminder_hours_before")
