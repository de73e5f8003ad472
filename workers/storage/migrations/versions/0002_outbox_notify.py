"""outbox insert notifies the relay (PostgreSQL LISTEN/NOTIFY)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: The channel the relay listens on (``workers.processes.relay.OUTBOX_CHANNEL``).
CHANNEL = "outbox_committed"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: the relay polls
    # One notification per INSERT statement; PostgreSQL folds identical ones of a
    # transaction into one and delivers it at commit (never for a rollback).
    op.execute(
        f"""
        CREATE FUNCTION outbox_notify_relay() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_relay()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify_relay()")
