"""`paylink exporter`: the paylink_* metrics of docs/architecture.md, computed at scrape time.

Only what the broker cannot know: queue depths, consumers and dead letters come from
RabbitMQ's own prometheus plugin (deploy/prometheus scrapes it), which the exporter
once re-implemented with passive declares, a management-API call and a fresh AMQP
connection per scrape. Everything here comes from the database, so every number is
the same whichever process or replica is scraped: outbox backlog and age, pending and
overdue expiries, and business counters aggregated from `event_history`.

A source that does not answer is reported, never shown as zero:
``paylink_exporter_up{source}`` is 0 and its series are absent, and
``paylink_exporter_scrape_errors_total{source}`` counts the failed scrapes.
"""

from __future__ import annotations

import itertools
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import BigInteger, Engine, case, cast, exists, func, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from domain.currency import COUNTRY_CURRENCY
from workers.cli.rabbitmq import connect as connect  # moved there; kept for older imports
from workers.providers.failures import AUTH_REFUSED
from workers.settings import Settings
from workers.storage import tables as t

log = structlog.get_logger("paylink.exporter")

#: The exporter's port (docs/architecture.md, "Processes").
EXPORTER_PORT = 9302
#: An expiry this far past its deadline counts as overdue: the scheduler polls every
#: second, so a minute behind means it is stuck or far behind.
OVERDUE_AFTER = timedelta(seconds=60)
#: Outbox rows older than this are final (every transaction that could still commit a
#: lower id is long over: actors are limited to 60 s), so their counts are added up once.
SETTLED_AFTER = timedelta(minutes=5)
# ---- database ----------------------------------------------------------------------


class JsonText(FunctionElement[str]):
    """``payload ->> key`` on PostgreSQL, ``json_extract(payload, '$.key')`` on SQLite."""

    type = String()
    inherit_cache = True
    name = "json_text"


def _json_text(column: Any, key: str) -> JsonText:
    if not key.isidentifier():
        raise ValueError(f"not a JSON key paylink uses: {key!r}")
    return JsonText(column, literal_column(key))


def _parts(element: JsonText, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, key = list(element.clauses)
    return compiler.process(column, **kw), key.name


@compiles(JsonText, "postgresql")
def _json_text_postgresql(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _parts(element, compiler, **kw)
    return f"(CAST({column} AS json) ->> '{key}')"


@compiles(JsonText)
def _json_text_sqlite(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _parts(element, compiler, **kw)
    return f"json_extract({column}, '$.{key}')"


def _field(name: str) -> Callable[[Any], Any]:
    return lambda payload: _json_text(payload, name)


def _failure_label(payload: Any) -> Any:
    """``channel|reason`` of a link.delivery_failed: ``auth`` when the provider refused
    paylink's own credentials (``workers.providers.failures``), else ``rejected``."""
    reason = case(
        (_json_text(payload, "reason").like(f"{AUTH_REFUSED}%"), literal_column("'auth'")),
        else_=literal_column("'rejected'"),
    )
    return _json_text(payload, "channel") + literal_column("'|'") + reason


def _report_label(outcome: str) -> Callable[[Any], Any]:
    """``channel|outcome`` of a provider's delivery report (the outcome is its type)."""
    return lambda payload: _json_text(payload, "channel") + literal_column(f"'|{outcome}'")


#: Event type -> the SQL giving its counter's label value(s, joined by "|") from the payload.
COUNTED_EVENTS: dict[str, Callable[[Any], Any] | None] = {
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
        (o.c.destination.in_(_AMOUNT_EVENTS), cast(_json_text(o.c.payload, "amount"), BigInteger)),
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
    def _run(conn: Any, after_id: int, up_to_id: int | None) -> Totals:
        totals: Totals = Counter()
        for destination, label, count, amount in conn.execute(
            _event_totals_query(after_id, up_to_id)
        ):
            key = str(label) if label is not None else "unknown"
            totals[(destination, key, "count")] += int(count)
            totals[(destination, key, "amount")] += int(amount or 0)
        return totals

    def current(self, conn: Any, now: datetime) -> Totals:
        o = t.event_history
        settled_id = conn.execute(
            select(func.max(o.c.id)).where(o.c.created_at < now - SETTLED_AFTER)
        ).scalar()
        if settled_id is not None and settled_id > self.watermark:
            self.settled.update(self._run(conn, self.watermark, settled_id))
            self.watermark = settled_id
        return self.settled + self._run(conn, self.watermark, None)


# ---- the collector ---------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PaylinkCollector(Collector):
    """Computes every paylink_* metric when Prometheus scrapes, never in between."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self.events = EventTotals()
        self.errors: Counter[str] = Counter({source: 0 for source in SOURCES})
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            database = self._database_metrics()
            up = GaugeMetricFamily(
                "paylink_exporter_up",
                "1 if the exporter read this source at this scrape; 0: its series are absent.",
                labels=["source"],
            )
            up.add_metric(["database"], 0 if database is None else 1)
            errors = CounterMetricFamily(
                "paylink_exporter_scrape_errors",
                "Scrapes at which the exporter could not read this source.",
                labels=["source"],
            )
            for source, count in sorted(self.errors.items()):
                errors.add_metric([source], count)
            return [up, errors, *(database or [])]

    def ready(self) -> bool:
        """Ready while the database answers: it is the source of every metric."""
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True

    def _database_metrics(self) -> list[Metric] | None:
        now = self.clock()
        try:
            with self.engine.connect() as conn:
                gauges = self._gauges(conn, now)
                totals = self.events.current(conn, now)
        except Exception as exc:
            self.errors["database"] += 1
            log.warning("database metrics unavailable", error=f"{type(exc).__name__}: {exc}")
            return None
        return [*gauges, *_counters(totals)]

    def _gauges(self, conn: Any, now: datetime) -> list[Metric]:
        o = t.outbox
        backlog, oldest = conn.execute(
            select(func.count(), func.min(o.c.created_at)).where(o.c.sent_at.is_(None))
        ).one()
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        pending = GaugeMetricFamily(
            "paylink_expiries_pending", "Deadlines the scheduler still watches.", labels=["kind"]
        )
        overdue = GaugeMetricFamily(
            "paylink_expiries_overdue",
            "Deadlines passed more than a minute ago and not yet expired.",
            labels=["kind"],
        )
        for kind, column in (
            ("link", t.orders.c.link_due_at),
            ("reservation", t.orders.c.reservation_due_at),
        ):
            total, late = conn.execute(
                select(func.count(), func.count(case((column <= now - OVERDUE_AFTER, 1)))).where(
                    column.is_not(None)
                )
            ).one()
            pending.add_metric([kind], total)
            overdue.add_metric([kind], late)
        return [
            GaugeMetricFamily(
                "paylink_outbox_backlog", "Outbox rows not yet published.", value=backlog
            ),
            GaugeMetricFamily(
                "paylink_outbox_oldest_unsent_age_seconds",
                "Age of the oldest unpublished outbox row (0 when none).",
                value=age,
            ),
            pending,
            overdue,
            _uncertain_sends(conn),
        ]


def _uncertain_sends(conn: Any) -> Metric:
    """Send attempts a killed worker left uncertain, by what became of them (a partial
    index holds just those rows). ``resent``: sent again although the provider could
    not tell (possible duplicate notifications); ``settled``: no second message (the
    provider had it, or had none, or the attempt died before sending)."""
    n = t.notifications.c
    uncertain, blind = conn.execute(
        select(
            func.coalesce(func.sum(n.uncertain_attempts), 0),
            func.coalesce(func.sum(n.blind_resends), 0),
        ).where(n.uncertain_attempts > 0)
    ).one()
    family = CounterMetricFamily(
        "paylink_uncertain_sends_total",
        "Link send attempts a killed worker left uncertain: settled (no second message) "
        "or resent although the provider could not tell (possible duplicates).",
        labels=["outcome"],
    )
    family.add_metric(["settled"], int(uncertain) - int(blind))
    family.add_metric(["resent"], int(blind))
    return family


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
#: Where a scrape reads from (``paylink_exporter_up{source}``).
SOURCES = ("database",)
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


def _counters(totals: Totals) -> list[Metric]:
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


# ---- the process -------------------------------------------------------------------


def build_registry(collector: PaylinkCollector) -> CollectorRegistry:
    """A registry holding only the paylink_* metrics (no process or Python metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def run_exporter(
    settings: Settings,
    *,
    port: int = EXPORTER_PORT,
    stop: threading.Event | None = None,
) -> None:
    """Serve /metrics, /healthz and /readyz on ``port`` until SIGTERM/SIGINT (or ``stop``)."""
    from workers.observability.logs import configure_logging, start_health_server
    from workers.storage.engine import make_engine

    configure_logging(settings)
    engine = make_engine(settings.database_url)
    collector = PaylinkCollector(engine)
    server = start_health_server(port, collector.ready, registry=build_registry(collector))
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.info("exporter serving", port=server.port)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()
        log.info("exporter stopped")
