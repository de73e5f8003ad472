"""Retention: processed command ids after the idempotency window, published outbox rows
after their retention; never an unpublished row, never a command still in the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import Table, func, select, update

from tests.ops.support import Shop
from workers.cli.orders import load_order
from workers.devtools.commands import create_order
from workers.processes import retention
from workers.processes.scheduler import Scheduler
from workers.settings import Settings
from workers.storage import tables as t

DAY = timedelta(days=1)


def _count(shop: Shop, table: Table) -> int:
    with shop.app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_command_ids_are_forgotten_after_the_window_and_kept_within_it(shop: Shop) -> None:
    # Given a command processed 20 days ago and one processed today
    old, recent = create_order(), create_order()
    shop.ok(old)
    with shop.app.engine.begin() as conn:
        conn.execute(
            update(t.processed_commands)
            .where(t.processed_commands.c.command_id == old.command_id)
            .values(processed_at=datetime.now(UTC) - 20 * DAY)
        )
    shop.ok(recent)
    # When retention runs with a 14-day window
    deleted = retention.prune_processed_commands(shop.app.engine, datetime.now(UTC), 14 * DAY)
    # Then only the old id is forgotten, and the recent one is still a duplicate if re-sent
    assert deleted == 1
    with shop.app.engine.connect() as conn:
        left = set(conn.execute(select(t.processed_commands.c.command_id)).scalars())
    assert old.command_id not in left
    assert recent.command_id in left
    assert shop.run(recent).status == "duplicate"


def test_published_outbox_rows_go_after_their_retention_unpublished_ones_never(
    shop: Shop,
) -> None:
    # Given one order whose rows were published 40 days ago, one whose rows are 40 days
    # old and still unpublished, and one published today
    published, stuck, fresh = create_order(), create_order(), create_order()
    for command in (published, stuck, fresh):
        shop.ok(command)
    then = datetime.now(UTC) - 40 * DAY
    with shop.app.engine.begin() as conn:
        for command, sent in ((published, then), (stuck, None)):
            conn.execute(
                update(t.outbox)
                .where(t.outbox.c.order_id == command.order_id)
                .values(created_at=then, sent_at=sent)
            )
        conn.execute(
            update(t.outbox)
            .where(t.outbox.c.order_id == fresh.order_id)
            .values(sent_at=datetime.now(UTC))
        )
    # When retention runs with 30 days of outbox retention
    deleted = retention.prune_outbox(shop.app.engine, datetime.now(UTC), 30 * DAY)
    # Then only the rows published 40 days ago are gone
    with shop.app.engine.connect() as conn:
        orders = set(conn.execute(select(t.outbox.c.order_id)).scalars())
    assert deleted > 0
    assert published.order_id not in orders
    assert {stuck.order_id, fresh.order_id} <= orders


def test_batches_delete_everything_due(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "PRUNE_BATCH", 2)
    commands = [create_order() for _ in range(5)]
    for command in commands:
        shop.ok(command)
    with shop.app.engine.begin() as conn:
        conn.execute(update(t.processed_commands).values(processed_at=datetime.now(UTC) - 30 * DAY))

    deleted = retention.prune_processed_commands(shop.app.engine, datetime.now(UTC), 14 * DAY)

    assert deleted == 5 + 1  # the orders and the store's configuration
    assert _count(shop, t.processed_commands) == 0


def test_by_default_published_outbox_rows_and_command_ids_live_14_days_history_stays(
    shop: Shop,
) -> None:
    settings = Settings(DATABASE_URL=str(shop.app.engine.url))
    old = create_order()
    shop.ok(old)
    with shop.app.engine.begin() as conn:
        conn.execute(update(t.outbox).values(sent_at=datetime.now(UTC) - 400 * DAY))
        conn.execute(update(t.processed_commands).values(processed_at=datetime.now(UTC) - 13 * DAY))
    outbox, history = _count(shop, t.outbox), _count(shop, t.event_history)

    assert retention.prune(shop.app.engine, settings, datetime.now(UTC)) == {
        "processed_commands": 0,
        "outbox": outbox,
    }
    assert (_count(shop, t.outbox), _count(shop, t.event_history)) == (0, history)
    assert retention.prune(shop.app.engine, settings, datetime.now(UTC) + 2 * DAY) == {
        "processed_commands": 2,
        "outbox": 0,
    }


def test_outbox_retention_0_keeps_published_rows(shop: Shop) -> None:
    settings = Settings(DATABASE_URL=str(shop.app.engine.url), PAYLINK_OUTBOX_RETENTION_DAYS=0)
    shop.ok(create_order())
    with shop.app.engine.begin() as conn:
        conn.execute(update(t.outbox).values(sent_at=datetime.now(UTC) - 400 * DAY))
    outbox = _count(shop, t.outbox)
    assert "outbox" not in retention.prune(shop.app.engine, settings, datetime.now(UTC))
    assert _count(shop, t.outbox) == outbox


@pytest.mark.parametrize("shop", ["sqlite"], indirect=True)
def test_the_scheduler_prunes_at_once_then_hourly(shop: Shop) -> None:
    scheduler = Scheduler(Settings(DATABASE_URL=str(shop.app.engine.url)))
    try:
        first = scheduler.maybe_prune(datetime.now(UTC) + 30 * DAY)
        again = scheduler.maybe_prune(datetime.now(UTC) + 30 * DAY)
    finally:
        scheduler.engine.dispose()

    # the store's configuration; its event was never published (no relay), so it stays
    assert first == {"processed_commands": 1, "outbox": 0}
    assert again is None


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"PAYLINK_IDEMPOTENCY_WINDOW_DAYS": 7}, "greater than or equal to 8"),
        ({"PAYLINK_OUTBOX_RETENTION_DAYS": 10}, "shorter than PAYLINK_IDEMPOTENCY_WINDOW_DAYS"),
    ],
)
def test_retention_that_would_break_idempotency_is_refused(
    settings: dict[str, int], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Settings.model_validate(settings)


def test_an_orders_timeline_outlives_its_pruned_outbox_rows(shop: Shop) -> None:
    # Given an order whose outbox rows were published long ago and pruned
    command = create_order()
    shop.ok(command)
    with shop.app.engine.begin() as conn:
        conn.execute(update(t.outbox).values(sent_at=datetime.now(UTC) - 400 * DAY))
    retention.prune_outbox(shop.app.engine, datetime.now(UTC), 14 * DAY)
    # When the operator looks at the order
    data = load_order(shop.app.engine, command.order_id)
    # Then its events are all there, shown as published
    assert data is not None
    assert [(e["destination"], e["in_outbox"]) for e in data["timeline"]] == [
        ("order.created", False)
    ]
