"""`paylink exporter`: the paylink_* metrics of docs/architecture.md, computed at scrape time.

Only what the broker cannot know: queue depths, consumers and dead letters come from
RabbitMQ's own prometheus plugin (deploy/prometheus scrapes it), which the exporter
once re-implemented with passive declares, a management-API call and a fresh AMQP
connection per scrape. Everything here comes from the database, so every number is
the same whichever process or replica is scraped: outbox backlog and age, pending and
overdue expiries, and business counters aggregated from `event_history`
(``workers.processes.business_counters``).

A source that does not answer is reported, never shown as zero:
``paylink_exporter_up{source}`` is 0 and its series are absent, and
``paylink_exporter_scrape_errors_total{source}`` counts the failed scrapes.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, case, func, select

from workers.observability.health import start_health_server
from workers.observability.logs import configure_logging
from workers.processes.business_counters import EventTotals, counter_families
from workers.settings import Settings
from workers.storage import tables as t
from workers.storage.engine import make_engine

log = structlog.get_logger("paylink.exporter")

#: The exporter's port (docs/architecture.md, "Processes").
EXPORTER_PORT = 9302
#: An expiry this far past its deadline counts as overdue: the scheduler polls every
#: second, so a minute behind means it is stuck or far behind.
OVERDUE_AFTER = timedelta(seconds=60)
#: Where a scrape reads from (``paylink_exporter_up{source}``).
SOURCES = ("database",)


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
        return [*gauges, *counter_families(totals)]

    def _gauges(self, conn: Connection, now: datetime) -> list[Metric]:
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


def _uncertain_sends(conn: Connection) -> Metric:
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
