"""Logging (JSON, context, masking) and the health server, without services."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter

from tests.ops.support import http_get
from workers.observability.health import start_health_server
from workers.observability.logs import configure_logging, mask_text
from workers.settings import Settings


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging into a buffer; the process's logging is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("pika").level)
    stream = io.StringIO()
    yield stream
    root.handlers, root.level = saved[0], saved[1]
    logging.getLogger("pika").setLevel(saved[2])
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _configure(stream: io.StringIO, log_format: str = "json") -> None:
    settings = Settings(PAYLINK_LOG_FORMAT=log_format, PAYLINK_LOG_LEVEL="DEBUG")
    configure_logging(settings, stream=stream, cache_loggers=False)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_records_are_json_with_the_bound_context(log_stream: io.StringIO) -> None:
    _configure(log_stream)
    structlog.contextvars.bind_contextvars(order_id="o-1", command_id="c-1")
    structlog.get_logger("paylink.worker").info("command processed", outcome="accepted")
    [record] = _records(log_stream)
    assert record["event"] == "command processed"
    assert record["order_id"] == "o-1"
    assert record["command_id"] == "c-1"
    assert record["level"] == "info"
    assert record["logger"] == "paylink.worker"
    assert "timestamp" in record


def test_standard_library_records_are_json_too(log_stream: io.StringIO) -> None:
    _configure(log_stream)
    structlog.contextvars.bind_contextvars(order_id="o-2")
    logging.getLogger("dramatiq.worker.WorkerThread").warning("retrying %s in %d ms", "x", 500)
    [record] = _records(log_stream)
    assert record["event"] == "retrying x in 500 ms"
    assert record["logger"] == "dramatiq.worker.WorkerThread"
    assert record["level"] == "warning"
    assert record["order_id"] == "o-2"


def test_emails_and_phone_numbers_are_masked_everywhere(log_stream: io.StringIO) -> None:
    _configure(log_stream)
    log = structlog.get_logger("paylink")
    log.info(
        "sent to anna.berg@example.com",
        recipient="+46701234567",
        nested={"to": ["kari@example.no", "+4791234567"]},
    )
    logging.getLogger("pika").error("cannot reach kari@example.no")
    try:
        raise ValueError("bad phone +15005550006")
    except ValueError:
        log.exception("failed")
    text = log_stream.getvalue()
    for secret in ("anna.berg@example.com", "+46701234567", "kari@example.no", "+4791234567"):
        assert secret not in text
    assert "+15005550006" not in text
    first = _records(log_stream)[0]
    assert first["event"] == "sent to a***@e***.com"
    assert first["recipient"] == "+46*******67"


def test_console_format_for_people(log_stream: io.StringIO) -> None:
    _configure(log_stream, "console")
    structlog.get_logger("paylink").info("hello", to="anna@example.com")
    line = log_stream.getvalue()
    assert "hello" in line
    assert "a***@e***.com" in line
    assert not line.startswith("{")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail anna@example.com now", "mail a***@e***.com now"),
        ("call +46701234567.", "call +46*******67."),
        (
            "order 2026-11-21T12:00:00+00:00 total +1234",
            "order 2026-11-21T12:00:00+00:00 total +1234",
        ),
        ("a***@e***.com", "a***@e***.com"),
        ("uuid 5b0d1f3e-7a2c-4e9b-8d61-0c3f2a1b4e5d", "uuid 5b0d1f3e-7a2c-4e9b-8d61-0c3f2a1b4e5d"),
    ],
)
def test_masking_touches_only_contact_details(text: str, expected: str) -> None:
    assert mask_text(text) == expected


# ---- health server -----------------------------------------------------------------


@pytest.mark.parametrize(("ready", "status"), [(lambda: True, 200), (lambda: False, 503)])
def test_health_server_answers_probes_and_serves_its_registry(ready: object, status: int) -> None:
    registry = CollectorRegistry()
    Counter("paylink_test_things", "things", registry=registry).inc(3)
    server = start_health_server(0, ready, registry=registry, host="127.0.0.1")  # type: ignore[arg-type]
    try:
        assert http_get(server.port, "/healthz") == (200, "ok\n")
        assert http_get(server.port, "/readyz")[0] == status
        code, body = http_get(server.port, "/metrics")
        assert code == 200
        assert "paylink_test_things_total 3.0" in body
        assert http_get(server.port, "/other")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_readiness_check_that_raises_means_not_ready() -> None:
    def broken() -> bool:
        raise ConnectionError("database down")

    server = start_health_server(0, broken, registry=CollectorRegistry(), host="127.0.0.1")
    try:
        assert http_get(server.port, "/readyz") == (503, "not ready\n")
    finally:
        server.shutdown()
        server.server_close()
