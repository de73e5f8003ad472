"""upstream_grants: which stores each upstream system may act for, with which roles

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_grants",
        sa.Column("upstream", sa.String(128), primary_key=True),
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("roles", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upstream_grants")
