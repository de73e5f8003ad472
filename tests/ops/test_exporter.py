"""The exporter: paylink_* metrics from RabbitMQ and the database, computed at scrape time."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, update

from messages import commands as c
from messages.routing import Queue, command_bytes
from tests.harness import create_database, drop_database
from tests.integration.commands import configure_store, create_order, merchant
from tests.ops.support import Shop, http_get, make_shop
from tests.services import require_postgres
from workers.cli_rabbitmq import ManagementApi, fetch_unacked
from workers.exporter import PaylinkCollector, build_registry
from workers.observability import HealthServer, start_health_server
from workers.settings import Settings
from workers.storage import tables as t
from workers.storage.engine import make_engine
from workers.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
CREATE = Queue.CREATE_ORDER
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def documented_metrics() -> dict[str, str]:
    """name -> type of the paylink_* metrics in docs/architecture.md (as Prometheus parses
    them: a counter's family name has no _total)."""
    text = (ROOT / "docs/architecture.md").read_text()
    section = text[text.index("### paylink metrics") :]
    section = section[: section.index("Dramatiq (per worker)")]
    documented = {}
    for names, kind in re.findall(r"^\|(.+?)\|\s*(gauge|counter)\s*\|", section, re.M):
        for name in re.findall(r"`(paylink_[a-z_]+)`", names):
            documented[name.removesuffix("_total")] = kind
    return documented


@dataclass
class Exporter:
    server: HealthServer
    collector: PaylinkCollector

    def families(self) -> dict[str, str]:
        status, text = http_get(self.server.port, "/metrics")
        assert status == 200
        return {f.name: f.type for f in text_string_to_metric_families(text)}

    def scrape(self) -> Samples:
        status, text = http_get(self.server.port, "/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def serve(engine: Engine, broker_url: str, clock: Callable[[], datetime] | None = None) -> Exporter:
    collector = PaylinkCollector(
        engine,
        broker_url,
        api=ManagementApi.from_settings(Settings(BROKER_URL=broker_url)),
        **({"clock": clock} if clock else {}),
    )
    registry = build_registry(collector)
    server = start_health_server(0, collector.ready, registry=registry, host="127.0.0.1")
    return Exporter(server, collector)


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    """A configured store on a fresh database of each kind paylink supports."""
    if request.param == "postgresql":
        require_postgres()
        url = create_database("paylink_ops")
    else:
        url = f"sqlite:///{tmp_path}/paylink.db"
        upgrade(url)
    shop = make_shop(url, tmp_path / "outbox")
    shop.ok(configure_store())
    yield shop
    shop.app.engine.dispose()
    if request.param == "postgresql":
        drop_database(url)


@pytest.fixture
def exporter(shop: Shop, vhost: str) -> Iterator[Exporter]:
    exporter = serve(shop.app.engine, vhost)
    yield exporter
    exporter.server.shutdown()
    exporter.server.server_close()


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# ---- the database side ----------------------------------------------------------


def test_business_counters_come_from_the_events_in_the_database(
    shop: Shop, exporter: Exporter
) -> None:
    # Given two orders: one with its link sent by email, one placed by SMS and paid
    sent = _sent_order(shop)
    placed, _ = shop.placed_order(email=None, phone="+46701234567")
    shop.capture(placed, 60_000)
    shop.capture(placed, 5_000)
    shop.refund(placed, 10_000)
    # and a refused command, and a command delivered twice
    refused = shop.run(merchant(c.CapturePayment, sent, amount=100))
    assert refused.status == "rejected"
    twice = create_order()
    shop.ok(twice)
    assert shop.run(twice).status == "duplicate"
    # When
    samples = exporter.scrape()
    # Then
    assert value(samples, "paylink_orders_created_total", currency="SEK") == 3
    assert value(samples, "paylink_orders_rejected_total", code=str(refused.code)) == 1
    assert value(samples, "paylink_links_sent_total", channel="email") == 1
    assert value(samples, "paylink_links_sent_total", channel="sms") == 1
    assert value(samples, "paylink_links_expired_total") == 0
    assert value(samples, "paylink_captured_minor_units_total", currency="SEK") == 65_000
    assert value(samples, "paylink_captures_total", currency="SEK") == 2
    assert value(samples, "paylink_refunded_minor_units_total", currency="SEK") == 10_000
    assert value(samples, "paylink_refunds_total", currency="SEK") == 1
    # and scraping again counts nothing twice
    assert _counters(exporter.scrape()) == _counters(samples)


def _sent_order(shop: Shop) -> uuid.UUID:
    command = create_order()
    shop.ok(command)
    shop.deliver(command.order_id)
    return command.order_id


def _counters(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if k[0].endswith("_total")}


def test_settled_events_are_added_up_once_then_incrementally(shop: Shop, vhost: str) -> None:
    # Given an exporter whose clock is an hour ahead, so every row is settled
    ahead = serve(shop.app.engine, vhost, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    try:
        placed, _ = shop.placed_order()
        shop.capture(placed, 1_000)
        first = ahead.scrape()
        watermark = ahead.collector.events.watermark
        # When more happens
        shop.capture(placed, 2_000)
        second = ahead.scrape()
        third = ahead.scrape()
    finally:
        ahead.server.shutdown()
        ahead.server.server_close()
    # Then the new rows are added to the settled totals, once
    assert watermark > 0
    assert ahead.collector.events.watermark > watermark
    assert value(first, "paylink_captured_minor_units_total", currency="SEK") == 1_000
    assert value(second, "paylink_captured_minor_units_total", currency="SEK") == 3_000
    assert value(third, "paylink_captured_minor_units_total", currency="SEK") == 3_000
    assert value(third, "paylink_orders_created_total", currency="SEK") == 1


def test_outbox_backlog_and_expiries(shop: Shop, exporter: Exporter) -> None:
    # Given a sent link (pending link expiry), a placed order (pending reservation expiry)
    sent = _sent_order(shop)
    shop.placed_order()
    # and one link whose deadline passed two minutes ago without being expired
    with shop.app.engine.begin() as conn:
        conn.execute(
            update(t.orders)
            .where(t.orders.c.order_id == sent)
            .values(link_due_at=datetime.now(UTC) - timedelta(minutes=2))
        )
        unsent = conn.execute(t.outbox.select().where(t.outbox.c.sent_at.is_(None))).all()
    # When
    samples = exporter.scrape()
    # Then
    assert value(samples, "paylink_outbox_backlog") == len(unsent) > 0
    assert value(samples, "paylink_outbox_oldest_unsent_age_seconds") >= 0  # type: ignore[operator]
    assert value(samples, "paylink_expiries_pending", kind="link") == 1
    assert value(samples, "paylink_expiries_overdue", kind="link") == 1
    assert value(samples, "paylink_expiries_pending", kind="reservation") == 1
    assert value(samples, "paylink_expiries_overdue", kind="reservation") == 0
    # and when the relay has published everything, there is no backlog and no age
    with shop.app.engine.begin() as conn:
        conn.execute(update(t.outbox).values(sent_at=datetime.now(UTC)))
    samples = exporter.scrape()
    assert value(samples, "paylink_outbox_backlog") == 0
    assert value(samples, "paylink_outbox_oldest_unsent_age_seconds") == 0


def test_uncertain_sends_by_what_became_of_them(shop: Shop, exporter: Exporter) -> None:
    # Given a link sent without any kill
    sent = _sent_order(shop)
    before = exporter.scrape()
    # and then one whose worker was killed three times, sent again blind once
    with shop.app.engine.begin() as conn:
        conn.execute(
            update(t.notifications)
            .where(t.notifications.c.order_id == sent)
            .values(uncertain_attempts=3, blind_resends=1)
        )
    # When
    after = exporter.scrape()
    # Then
    assert value(before, "paylink_uncertain_sends_total", outcome="settled") == 0
    assert value(before, "paylink_uncertain_sends_total", outcome="resent") == 0
    assert value(after, "paylink_uncertain_sends_total", outcome="settled") == 2
    assert value(after, "paylink_uncertain_sends_total", outcome="resent") == 1


def test_exports_exactly_the_documented_metrics(shop: Shop, exporter: Exporter) -> None:
    assert exporter.families() == documented_metrics()


# ---- the RabbitMQ side ------------------------------------------------------------


@pytest.fixture
def idle_create_queue(vhost: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """paylink.create-order, emptied, with nobody consuming it."""
    connection = pika.BlockingConnection(pika.URLParameters(vhost))
    channel = connection.channel()
    try:
        channel.queue_purge(CREATE)
        yield channel
        channel.queue_purge(CREATE)
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.parametrize("shop", ["postgresql"], indirect=True)
def test_queue_depth_follows_published_messages(
    exporter: Exporter, idle_create_queue: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    ready = ("paylink_queue_messages", (("queue", CREATE), ("state", "ready")))
    assert exporter.scrape()[ready] == 0
    # When five commands wait with no worker
    for _ in range(5):
        idle_create_queue.basic_publish("", CREATE, command_bytes(create_order()))
    samples = exporter.scrape()
    # Then
    assert samples[ready] == 5
    assert value(samples, "paylink_queue_consumers", queue=CREATE) == 0
    assert value(samples, "paylink_queue_messages", queue=CREATE, state="dead") is not None
    # and when they are gone, the depth is back to zero
    idle_create_queue.queue_purge(CREATE)
    assert exporter.scrape()[ready] == 0


@pytest.mark.parametrize("shop", ["postgresql"], indirect=True)
def test_unacked_messages_come_from_the_management_api(
    exporter: Exporter,
    idle_create_queue: pika.adapters.blocking_connection.BlockingChannel,
    vhost: str,
) -> None:
    api = ManagementApi.from_settings(Settings(BROKER_URL=vhost))
    assert api is not None
    if fetch_unacked(api, pika.URLParameters(vhost).virtual_host) is None:
        pytest.skip("the RabbitMQ management API is not enabled")
    for _ in range(2):
        idle_create_queue.basic_publish("", CREATE, command_bytes(create_order()))
    for _ in range(2):
        method, _, _ = idle_create_queue.basic_get(CREATE, auto_ack=False)
        assert method is not None
    # The management API refreshes its statistics every few seconds.
    deadline = time.monotonic() + 30
    while True:
        unacked = value(exporter.scrape(), "paylink_queue_messages", queue=CREATE, state="unacked")
        if unacked == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert unacked == 2


# ---- health ------------------------------------------------------------------------


@pytest.mark.parametrize("shop", ["sqlite"], indirect=True)
def test_health_endpoints(exporter: Exporter) -> None:
    port = exporter.server.port
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ready\n")
    assert http_get(port, "/nothing")[0] == 404


def test_not_ready_without_the_database_but_still_serving(vhost: str) -> None:
    require_postgres()
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/paylink_no_such_db")
    exporter = serve(engine, vhost)
    try:
        assert http_get(exporter.server.port, "/readyz") == (503, "not ready\n")
        assert http_get(exporter.server.port, "/healthz")[0] == 200
        assert "paylink_outbox_backlog" not in exporter.families()
    finally:
        exporter.server.shutdown()
        exporter.server.server_close()
        engine.dispose()
