"""Retention: processed command ids past the idempotency window, published outbox rows
past their retention, deleted in small batches by the scheduler.

Neither table has an index on its age column (no migration here: the schema is being
changed elsewhere), so each batch takes the oldest rows by primary key order (outbox)
or by a scan that finds old rows first (processed commands are inserted in time
order), a few thousand at a time, and several schedulers may prune at once: on
PostgreSQL a batch skips rows another one has locked.

What stays: unpublished outbox rows, always; customers' contact data, which erasure
(not here: it needs schema) is for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Engine, Table, delete, select

from workers.settings import Settings
from workers.storage import tables as t

#: Rows deleted per statement: short transactions that never hold many locks.
PRUNE_BATCH = 5000
#: Batches per table and run, so a first run on a large backlog does not hog the database.
MAX_BATCHES = 200


def _prune(
    engine: Engine,
    table: Table,
    key: Column[Any],
    *where: ColumnElement[bool],
    oldest_first: bool = False,
) -> int:
    """Delete rows of ``table`` matching ``where``, a batch per transaction
    (``oldest_first``: in ``key`` order, when ``key`` grows with age)."""
    postgresql = engine.dialect.name == "postgresql"
    deleted = 0
    for _ in range(MAX_BATCHES):
        batch = select(key).where(*where).limit(PRUNE_BATCH)
        if oldest_first:
            batch = batch.order_by(key)
        if postgresql:
            batch = batch.with_for_update(skip_locked=True)
        with engine.begin() as conn:
            count = conn.execute(delete(table).where(key.in_(batch.scalar_subquery()))).rowcount
        deleted += count
        if count < PRUNE_BATCH:
            break
    return deleted


def prune_processed_commands(engine: Engine, now: datetime, window: timedelta) -> int:
    """Forget command ids processed before the idempotency window."""
    c = t.processed_commands.c
    return _prune(engine, t.processed_commands, c.command_id, c.processed_at < now - window)


def prune_outbox(engine: Engine, now: datetime, retention: timedelta) -> int:
    """Delete outbox rows published before ``retention``; never an unpublished one."""
    c = t.outbox.c
    return _prune(
        engine,
        t.outbox,
        c.id,
        c.sent_at.is_not(None),
        c.sent_at < now - retention,
        oldest_first=True,
    )


def prune(engine: Engine, settings: Settings, now: datetime) -> dict[str, int]:
    """One retention run: rows deleted per table."""
    pruned = {
        "processed_commands": prune_processed_commands(
            engine, now, timedelta(days=settings.idempotency_window_days)
        )
    }
    if settings.outbox_retention is not None:
        pruned["outbox"] = prune_outbox(engine, now, settings.outbox_retention)
    return pruned
