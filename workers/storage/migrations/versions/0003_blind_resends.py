"""notifications.blind_resends: links sent again when the provider could not tell
whether an earlier attempt had gone out; an index of the uncertain rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows: every uncertain attempt before this column was sent again blind.
    op.add_column(
        "notifications",
        sa.Column("blind_resends", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute("UPDATE notifications SET blind_resends = uncertain_attempts")
    # Only the rows a killed worker left uncertain: what the exporter sums.
    op.create_index(
        "ix_notifications_uncertain",
        "notifications",
        ["uncertain_attempts", "blind_resends"],
        postgresql_where=sa.text("uncertain_attempts > 0"),
        sqlite_where=sa.text("uncertain_attempts > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_uncertain", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("blind_resends")
