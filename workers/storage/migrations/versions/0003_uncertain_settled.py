"""notifications.uncertain_settled: uncertain attempts the provider settled; an index
of the uncertain rows

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
    # Existing rows: no uncertain attempt was ever settled (every one was re-sent).
    op.add_column(
        "notifications",
        sa.Column("uncertain_settled", sa.Integer(), nullable=False, server_default="0"),
    )
    # Only the rows a killed worker left uncertain: what the exporter sums.
    op.create_index(
        "ix_notifications_uncertain",
        "notifications",
        ["uncertain_attempts", "uncertain_settled"],
        postgresql_where=sa.text("uncertain_attempts > 0"),
        sqlite_where=sa.text("uncertain_attempts > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_uncertain", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("uncertain_settled")
