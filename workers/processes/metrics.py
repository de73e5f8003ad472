"""The relay's and the scheduler's own metrics, served on their /metrics (9300, 9301).

Each process says what it did itself: the exporter's outbox backlog shows that rows
wait, these show which relay holds which share and when each process last worked.
Registered in prometheus_client's global registry, which ``start_health_server`` serves.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter(
    "paylink_relay_published", "Outbox rows this relay published, confirmed by RabbitMQ."
)
BATCH_SIZE = Histogram(
    "paylink_relay_batch_size",
    "Rows per batch this relay published.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000),
)
LAG = Gauge(
    "paylink_relay_lag_seconds",
    "Commit-to-publish delay of the oldest row in this relay's last batch.",
)
HELD = Gauge(
    "paylink_relay_partitions_held",
    "Outbox partitions this relay publishes (all of them for a relay without partitions, "
    "0 while it stands by).",
)
PARTITIONS = Gauge(
    "paylink_relay_partitions",
    "The outbox partitions this relay counts with (PAYLINK_RELAY_PARTITIONS).",
)
LAST_POLL = Gauge(
    "paylink_relay_last_poll_timestamp_seconds",
    "When this relay last read the outbox for a batch.",
)

RELEASED = Counter(
    "paylink_scheduler_released",
    "Due deadlines this scheduler released or applied, by kind (link, reservation, reminder).",
    ["kind"],
)
LAST_TICK = Gauge(
    "paylink_scheduler_last_tick_timestamp_seconds",
    "When this scheduler last completed a tick (read the due deadlines).",
)
PRUNED = Counter(
    "paylink_scheduler_pruned",
    "Rows the retention runs deleted, by table (processed_commands, outbox).",
    ["table"],
)
for _kind in ("link", "reservation", "reminder"):
    RELEASED.labels(kind=_kind)
for _table in ("processed_commands", "outbox"):
    PRUNED.labels(table=_table)


def published(rows: int, now: datetime, oldest: datetime | None) -> None:
    """Count a confirmed batch of ``rows`` whose oldest row was committed at ``oldest``."""
    PUBLISHED.inc(rows)
    BATCH_SIZE.observe(rows)
    if oldest is not None:
        if oldest.tzinfo is None:  # SQLite hands back naive UTC
            oldest = oldest.replace(tzinfo=UTC)
        LAG.set(max(0.0, (now - oldest).total_seconds()))


def ticked(links: int, reservations: int, reminders: int) -> None:
    RELEASED.labels(kind="link").inc(links)
    RELEASED.labels(kind="reservation").inc(reservations)
    RELEASED.labels(kind="reminder").inc(reminders)
    LAST_TICK.set_to_current_time()


def pruned(rows: dict[str, int]) -> None:
    for table, count in rows.items():
        PRUNED.labels(table=table).inc(count)
