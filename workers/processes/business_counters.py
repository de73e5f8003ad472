"""The business counters (paylink_orders_created_total, ..._captured_minor_units_total
and the rest): which events they count, and their totals summed in the database.

Summed over ``event_history`` (which outlives the outbox's published rows) with one
grouped query per scrape, incrementally: see :class:`EventTotals`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    case,
    cast,
    exists,
    func,
    literal_column,
    select,
)

from domain.currency import COUNTRY_CURRENCY
from workers.providers.failures import AUTH_REFUSED
from workers.storage import tables as t
from workers.storage.json_text import json_text

#: The SQL that gives a counted event's label value from its payload column.
Label = Callable[[ColumnElement[object]], ColumnElement[str]]

#: Outbox rows older than this are final (every transaction that could still commit a
#: lower id is long over: actors are limited to 60 s), so their counts are added up once.
SETTLED_AFTER = timedelta(minutes=5)


def _field(name: str) -> Label:
    return lambda payload: json_text(payload, name)


def _failure_label(payload: ColumnElement[object]) -> ColumnElement[str]:
    """``channel|reason`` of a link.delivery_failed: ``auth`` when the provider refused
    paylink's own credentials (``workers.providers.failures``), else ``rejected``."""
    reason = case(
        (json_text(payload, "reason").like(f"{AUTH_REFUSED}%"), literal_column("'auth'")),
        else_=literal_column("'rejected'"),
    )
    return json_text(payload, "channel") + literal_column("'|'") + reason


def _report_label(outcome: str) -> Label:
    """``channel|outcome`` of a provider's delivery report (the outcome is its type)."""
    return lambda payload: json_text(payload, "channel") + literal_column(f"'|{outcome}'")


#: Event type -> the SQL giving its counter's label value(s, joined by "|") from the payload.
COUNTED_EVENTS: dict[str, Label | None] = {
    "order.created": _field("currency"),
    "order.rejected": _field("code"),
    "link.sent": _field("channel"),
    "link.delivery_failed": _failure_label,
    "link.delivered": _report_label("delivered"),
    "link.bounced": _report_label("bounced"),
    "link.undelivered": _report_label("undelivered"),
    "link.expired": None,
    "payment.captured": _field("currency"),
    "payment.refunded": _field("currency"),
}
_AMOUNT_EVENTS = ("payment.captured", "payment.refunded")

#: (event type, label value) -> (events, summed minor units)
Totals = Counter[tuple[str, str, str]]


def _event_totals_query(after_id: int, up_to_id: int | None) -> Any:
    o = t.event_history
    earlier = o.alias("earlier")
    label = case(
        *[
            (o.c.destination == event, spec(o.c.payload))
            for event, spec in COUNTED_EVENTS.items()
            if spec is not None
        ],
        else_=literal_column("''"),
    )
    amount = case(
        (o.c.destination.in_(_AMOUNT_EVENTS), cast(json_text(o.c.payload, "amount"), BigInteger)),
        else_=literal_column("0"),
    )
    # A replayed command writes its events again with the same ids: count the first copy.
    first_copy = o.c.order_id.is_(None) | ~exists().where(
        earlier.c.order_id == o.c.order_id,
        earlier.c.message_id == o.c.message_id,
        earlier.c.id < o.c.id,
    )
    rows = (
        select(o.c.destination, label.label("label"), amount.label("amount"))
        .where(o.c.destination.in_(COUNTED_EVENTS), o.c.id > after_id)
        .where(first_copy)
    )
    if up_to_id is not None:
        rows = rows.where(o.c.id <= up_to_id)
    sub = rows.subquery()
    return select(sub.c.destination, sub.c.label, func.count(), func.sum(sub.c.amount)).group_by(
        sub.c.destination, sub.c.label
    )


class EventTotals:
    """Business counters summed over ``event_history`` (which outlives the outbox's
    published rows), incrementally.

    Rows older than ``SETTLED_AFTER`` are added up once and remembered (up to a
    watermark id); newer rows are counted afresh at every scrape. A new exporter
    process starts by adding up the whole history once.
    """

    def __init__(self) -> None:
        self.watermark = 0
        self.settled: Totals = Counter()

    @staticmethod
    def _run(conn: Connection, after_id: int, up_to_id: int | None) -> Totals:
        totals: Totals = Counter()
        for destination, label, count, amount in conn.execute(
            _event_totals_query(after_id, up_to_id)
        ):
            key = str(label) if label is not None else "unknown"
            totals[(destination, key, "count")] += int(count)
            totals[(destination, key, "amount")] += int(amount or 0)
        return totals

    def current(self, conn: Connection, now: datetime) -> Totals:
        o = t.event_history
        settled_id = conn.execute(
            select(func.max(o.c.id)).where(o.c.created_at < now - SETTLED_AFTER)
        ).scalar()
        if settled_id is not None and settled_id > self.watermark:
            self.settled.update(self._run(conn, self.watermark, settled_id))
            self.watermark = settled_id
        return self.settled + self._run(conn, self.watermark, None)


#: Label values whose series exist from the first scrape, at 0: an alert comparing
#: channels (failures against deliveries) must see a channel that never succeeded.
CHANNELS = ("email", "sms")
FAILURE_REASONS = ("auth", "rejected")
#: What providers report of a sent link (``link.delivered``, ``.bounced``, ``.undelivered``).
REPORTED = {
    "link.delivered": "delivered",
    "link.bounced": "bounced",
    "link.undelivered": "undelivered",
}
CURRENCIES = tuple(sorted(set(COUNTRY_CURRENCY.values())))


@dataclass(frozen=True, slots=True)
class BusinessCounter:
    name: str
    doc: str
    labels: tuple[str, ...]
    #: The event type counted, or several (their labels tell them apart).
    event: str | tuple[str, ...]
    measure: str  # "count" or "amount"
    initial: tuple[tuple[str, ...], ...] = ()

    @property
    def events(self) -> tuple[str, ...]:
        return self.event if isinstance(self.event, tuple) else (self.event,)


def _each(*axes: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(itertools.product(*axes))


COUNTERS: tuple[BusinessCounter, ...] = (
    BusinessCounter(
        "paylink_orders_created_total",
        "Orders created.",
        ("currency",),
        "order.created",
        "count",
        _each(CURRENCIES),
    ),
    BusinessCounter(
        "paylink_orders_rejected_total",
        "Commands refused.",
        ("code",),
        "order.rejected",
        "count",
        # The codes are many and open-ended; one that any command can get makes the
        # family exist from the first scrape.
        (("VALIDATION_FAILED",),),
    ),
    BusinessCounter(
        "paylink_links_sent_total",
        "Payment links delivered.",
        ("channel",),
        "link.sent",
        "count",
        _each(CHANNELS),
    ),
    BusinessCounter(
        "paylink_link_delivery_failures_total",
        "Payment links that could not be delivered; reason auth: the provider refused "
        "paylink's credentials (401/403), rejected: it refused the message.",
        ("channel", "reason"),
        "link.delivery_failed",
        "count",
        _each(CHANNELS, FAILURE_REASONS),
    ),
    BusinessCounter(
        "paylink_link_deliveries_total",
        "What providers reported of sent links: delivered, bounced (email) or undelivered (SMS).",
        ("channel", "outcome"),
        tuple(REPORTED),
        "count",
        (
            ("email", "bounced"),
            ("email", "delivered"),
            ("sms", "delivered"),
            ("sms", "undelivered"),
        ),
    ),
    BusinessCounter(
        "paylink_links_expired_total", "Payment links expired.", (), "link.expired", "count", ((),)
    ),
    BusinessCounter(
        "paylink_captured_minor_units_total",
        "Captured amount in minor units.",
        ("currency",),
        "payment.captured",
        "amount",
        _each(CURRENCIES),
    ),
    BusinessCounter(
        "paylink_refunded_minor_units_total",
        "Refunded amount in minor units.",
        ("currency",),
        "payment.refunded",
        "amount",
        _each(CURRENCIES),
    ),
    BusinessCounter(
        "paylink_captures_total",
        "Captures.",
        ("currency",),
        "payment.captured",
        "count",
        _each(CURRENCIES),
    ),
    BusinessCounter(
        "paylink_refunds_total",
        "Refunds.",
        ("currency",),
        "payment.refunded",
        "count",
        _each(CURRENCIES),
    ),
)


def counter_families(totals: Totals) -> list[Metric]:
    """Every business counter's family; the initial label values at 0 from the first scrape."""
    families: list[Metric] = []
    for counter in COUNTERS:
        values: Counter[tuple[str, ...]] = Counter({labels: 0 for labels in counter.initial})
        for (destination, value, what), amount in totals.items():
            if destination in counter.events and what == counter.measure:
                labels = tuple(value.split("|")) if counter.labels else ()
                values[labels] += amount
        family = CounterMetricFamily(counter.name, counter.doc, labels=list(counter.labels))
        for labels, amount in sorted(values.items()):
            family.add_metric(list(labels), amount)
        families.append(family)
    return families
