"""The exporter: paylink_* metrics from RabbitMQ and the database, computed at scrape time."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select, update

from messages import commands as c
from messages.routing import Queue
from tests.ops.support import Shop, http_get, make_shop
from tests.services import require_postgres
from workers.devtools.commands import create_order, merchant
from workers.observability.health import HealthServer, start_health_server
from workers.processes.exporter import PaylinkCollector, build_registry
from workers.storage import tables as t
from workers.storage.engine import make_engine

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


def serve(engine: Engine, clock: Callable[[], datetime] | None = None) -> Exporter:
    collector = PaylinkCollector(engine, **({"clock": clock} if clock else {}))
    registry = build_registry(collector)
    server = start_health_server(0, collector.ready, registry=registry, host="127.0.0.1")
    return Exporter(server, collector)


@pytest.fixture
def exporter(shop: Shop) -> Iterator[Exporter]:
    exporter = serve(shop.app.engine)
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


def test_settled_events_are_added_up_once_then_incrementally(shop: Shop) -> None:
    # Given an exporter whose clock is an hour ahead, so every row is settled
    ahead = serve(shop.app.engine, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
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


def test_a_readable_database_is_reported_up(shop: Shop, exporter: Exporter) -> None:
    samples = exporter.scrape()

    assert value(samples, "paylink_exporter_up", source="database") == 1
    assert value(samples, "paylink_exporter_scrape_errors_total", source="database") == 0


def test_channel_series_exist_before_any_link_went_out(shop: Shop, exporter: Exporter) -> None:
    # Given a service that has sent nothing yet
    # When Prometheus scrapes
    samples = exporter.scrape()
    # Then every channel has its series, at zero: "failures and no deliveries" can be true
    for channel in ("email", "sms"):
        assert value(samples, "paylink_links_sent_total", channel=channel) == 0
        for reason in ("auth", "rejected"):
            failures = value(
                samples, "paylink_link_delivery_failures_total", channel=channel, reason=reason
            )
            assert failures == 0
    assert value(samples, "paylink_orders_created_total", currency="SEK") == 0
    assert value(samples, "paylink_captured_minor_units_total", currency="EUR") == 0


def test_provider_reports_are_counted_by_channel_and_outcome(
    shop: Shop, exporter: Exporter
) -> None:
    # Given two sent links, one by email and one by SMS
    email, sms = create_order(), create_order(customer={"phone": "+46701234567"})
    reported = []
    for order, channel in ((email, "email"), (sms, "sms")):
        shop.ok(order)
        shop.deliver(order.order_id)
        with shop.app.engine.connect() as conn:
            link_id = conn.execute(
                select(t.orders.c.current_link_id).where(t.orders.c.order_id == order.order_id)
            ).scalar_one()
        reported.append((order.order_id, link_id, channel))
    before = exporter.scrape()
    # When the email is reported delivered then bounced, and the SMS undelivered (twice:
    # a replayed callback)
    (e_order, e_link, _), (s_order, s_link, _) = reported
    for outcome in ("delivered", "failed"):
        shop.ok(_report(e_order, e_link, "email", outcome))
    replayed = _report(s_order, s_link, "sms", "failed")
    shop.ok(replayed)
    shop.run(replayed)
    # Then each is counted once, under its channel and outcome
    after = exporter.scrape()
    expected = {
        ("email", "delivered"): 1,
        ("email", "bounced"): 1,
        ("sms", "delivered"): 0,
        ("sms", "undelivered"): 1,
    }
    for (channel, outcome), count in expected.items():
        labels = {"channel": channel, "outcome": outcome}
        assert value(before, "paylink_link_deliveries_total", **labels) == 0
        assert value(after, "paylink_link_deliveries_total", **labels) == count


def _report(order_id: uuid.UUID, link_id: uuid.UUID, channel: str, outcome: str) -> c.CommandBase:
    return c.RecordLinkDelivery(
        command_id=uuid.uuid4(),
        issued_at=datetime.now(UTC),
        order_id=order_id,
        link_id=link_id,
        channel=channel,
        provider="test",
        outcome=outcome,
        reason="550 unknown user" if outcome == "failed" else None,
    )


TWILIO_SID = "AC" + "0" * 32


@pytest.fixture
def twilio_refusing_our_key(httpserver: HTTPServer) -> str:
    """A Twilio that answers every send with 401 (a wrong or rotated auth token)."""
    httpserver.expect_request(
        f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json", method="POST"
    ).respond_with_json(
        {"code": 20003, "message": "Authenticate", "more_info": "", "status": 401}, status=401
    )
    return httpserver.url_for("/").rstrip("/")


@pytest.mark.parametrize("shop", ["sqlite"], indirect=True)
def test_a_provider_refusing_our_credentials_is_a_delivery_failure_of_its_own(
    shop: Shop, exporter: Exporter, twilio_refusing_our_key: str, tmp_path: Path
) -> None:
    # Given the SMS provider refuses paylink's credentials
    refused = make_shop(
        str(shop.app.engine.url),
        tmp_path / "outbox",
        PAYLINK_SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN="wrong",
        TWILIO_FROM_NUMBER="+46700000000",
        TWILIO_BASE_URL=twilio_refusing_our_key,
    )
    order = create_order(customer={"phone": "+46701234567"})
    refused.ok(order)
    # When its link is sent
    refused.deliver(order.order_id)
    refused.app.engine.dispose()
    # Then the link is a delivery failure, counted with the reason auth
    samples = exporter.scrape()
    assert value(samples, "paylink_link_delivery_failures_total", channel="sms", reason="auth") == 1
    assert (
        value(samples, "paylink_link_delivery_failures_total", channel="sms", reason="rejected")
        == 0
    )
    assert value(samples, "paylink_links_sent_total", channel="sms") == 0


# ---- health ------------------------------------------------------------------------


@pytest.mark.parametrize("shop", ["sqlite"], indirect=True)
def test_health_endpoints(exporter: Exporter) -> None:
    port = exporter.server.port
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ready\n")
    assert http_get(port, "/nothing")[0] == 404


def test_a_database_it_cannot_read_is_reported_never_shown_as_zero() -> None:
    require_postgres()
    # Given an exporter whose database does not answer
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/paylink_no_such_db")
    exporter = serve(engine)
    try:
        # When Prometheus scrapes it twice
        exporter.scrape()
        samples = exporter.scrape()
        # Then the scrape succeeds and says the source is down, with no zeros in its place
        assert value(samples, "paylink_exporter_up", source="database") == 0
        assert value(samples, "paylink_exporter_scrape_errors_total", source="database") == 2
        assert not [name for name, _ in samples if name.startswith("paylink_outbox")]
        assert not [name for name, _ in samples if name.startswith("paylink_links")]
        # and it is alive but not ready
        assert http_get(exporter.server.port, "/readyz") == (503, "not ready\n")
        assert http_get(exporter.server.port, "/healthz")[0] == 200
    finally:
        exporter.server.shutdown()
        exporter.server.server_close()
        engine.dispose()
