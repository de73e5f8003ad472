"""Delivery reports: notifications.report and report_reason (what the provider said
became of a sent link); stores.sms_fallback (a bounced email link goes out by SMS)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("report", sa.String(16), nullable=True))
    op.add_column("notifications", sa.Column("report_reason", sa.String(500), nullable=True))
    op.add_column(
        "stores",
        sa.Column("sms_fallback", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("sms_fallback")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("report_reason")
        batch.drop_column("report")
