"""SendGrid adapter against a loopback server speaking the v3 Mail Send API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import structlog
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from domain.errors import DeliveryDeferred, DeliveryRejected
from domain.notifications import PaymentLinkNotification
from workers.notifications import render
from workers.providers.failures import AUTH_REFUSED
from workers.providers.sendgrid import SendGridNotifier

API_KEY = "SG.test-key.0123456789"
PATH = "/v3/mail/send"
RECIPIENT = "kari.nordmann@example.no"


@pytest.fixture
def notifier(httpserver: HTTPServer) -> SendGridNotifier:
    return SendGridNotifier(
        api_key=API_KEY,
        from_email="links@paylink.example",
        host=httpserver.url_for("").rstrip("/"),
        timeout=2,
    )


def sendgrid_errors(*errors: dict[str, str | None]) -> str:
    return json.dumps({"errors": list(errors)})


def test_sends_text_and_html_with_ids_and_returns_the_message_id(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    httpserver.expect_oneshot_request(
        PATH, method="POST", headers={"Authorization": f"Bearer {API_KEY}"}
    ).respond_with_data("", status=202, headers={"X-Message-Id": "W6A3xyz_QyGxkq1f0n7mJA"})

    receipt = notifier.send(email_notification)

    assert receipt.provider == "sendgrid"
    assert receipt.provider_message_id == "W6A3xyz_QyGxkq1f0n7mJA"
    request, _ = httpserver.log[0]
    assert request.headers["Content-Type"] == "application/json"
    body = request.get_json()
    rendered = render(email_notification)
    # SendGrid drops mail whose display name holds a comma, so it is spelled without.
    assert body["from"] == {"email": "links@paylink.example", "name": "Nordic Outdoor Oslo"}
    assert body["personalizations"] == [{"to": [{"email": RECIPIENT}]}]
    assert body["subject"] == rendered.subject == "Betalingslenke fra Nordic Outdoor, Oslo"
    assert body["content"] == [
        {"type": "text/plain", "value": rendered.text},
        {"type": "text/html", "value": rendered.html},
    ]
    ids = {
        "notification_id": str(email_notification.notification_id),
        "order_id": str(email_notification.order_id),
    }
    assert body["custom_args"] == ids
    assert body["headers"] == {
        "X-Paylink-Notification-Id": ids["notification_id"],
        "X-Paylink-Order-Id": ids["order_id"],
    }
    assert body["tracking_settings"]["click_tracking"]["enable"] is False
    httpserver.check_assertions()


def test_too_many_requests_is_deferred_for_the_seconds_asked(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        sendgrid_errors({"field": None, "message": "too many requests", "help": None}),
        status=429,
        headers={"Retry-After": "30", "Content-Type": "application/json"},
    )

    with pytest.raises(DeliveryDeferred) as caught:
        notifier.send(email_notification)

    assert caught.value.retry_after == 30
    assert "429" in str(caught.value)


def test_retry_after_may_be_an_http_date(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    httpserver.expect_request(PATH).respond_with_data("", status=429, headers={"Retry-After": when})

    with pytest.raises(DeliveryDeferred) as caught:
        notifier.send(email_notification)

    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120


def test_server_error_is_deferred(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    httpserver.expect_request(PATH).respond_with_data("upstream unavailable", status=500)

    with pytest.raises(DeliveryDeferred) as caught:
        notifier.send(email_notification)

    assert caught.value.retry_after is None
    assert "upstream unavailable" in str(caught.value)


def test_bad_address_is_rejected_with_sendgrids_words_and_the_address_masked(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        sendgrid_errors(
            {
                "message": f"The email address {RECIPIENT} is on your block list.",
                "field": "personalizations.0.to.0.email",
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
                "#message.personalizations.to",
            }
        ),
        status=400,
        content_type="application/json",
    )

    with pytest.raises(DeliveryRejected) as caught:
        notifier.send(email_notification)

    rejected = caught.value
    assert rejected.reason == (
        "The email address k***@e***.no is on your block list."
        " (field: personalizations.0.to.0.email)"
    )
    assert rejected.provider_code == "400"
    assert RECIPIENT not in str(rejected)
    assert rejected.__cause__ is None
    assert rejected.__suppress_context__


def test_refused_credentials_fail_the_delivery_as_refused_credentials(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        sendgrid_errors({"field": None, "message": "The provided authorization grant is invalid"}),
        status=401,
    )

    with pytest.raises(DeliveryRejected, match="authorization grant is invalid") as refused:
        notifier.send(email_notification)
    assert refused.value.reason.startswith(f"{AUTH_REFUSED} by sendgrid (401)")


def test_unreachable_provider_is_deferred(
    dead_url: str, email_notification: PaymentLinkNotification
) -> None:
    notifier = SendGridNotifier(API_KEY, "links@paylink.example", host=dead_url, timeout=2)

    with pytest.raises(DeliveryDeferred, match="sendgrid unreachable"):
        notifier.send(email_notification)


@pytest.fixture
def stalled(httpserver: HTTPServer) -> Iterator[threading.Event]:
    """A server that holds the request until the test lets go: a read timeout."""
    release = threading.Event()

    def hold(_: Request) -> Response:
        release.wait(timeout=5)
        return Response("", status=202)

    httpserver.expect_request(PATH).respond_with_handler(hold)
    yield release
    release.set()


def test_timeout_is_deferred(
    httpserver: HTTPServer,
    stalled: threading.Event,
    email_notification: PaymentLinkNotification,
) -> None:
    notifier = SendGridNotifier(
        API_KEY, "links@paylink.example", host=httpserver.url_for("").rstrip("/"), timeout=0.2
    )

    with pytest.raises(DeliveryDeferred, match="timed out"):
        notifier.send(email_notification)


def test_logs_name_only_the_masked_recipient(
    httpserver: HTTPServer,
    notifier: SendGridNotifier,
    email_notification: PaymentLinkNotification,
) -> None:
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "", status=202, headers={"X-Message-Id": "abc"}
    )
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        sendgrid_errors({"message": f"Invalid address {RECIPIENT}", "field": None}), status=400
    )

    with structlog.testing.capture_logs() as logs:
        notifier.send(email_notification)
        with pytest.raises(DeliveryRejected):
            notifier.send(email_notification)

    assert [entry["event"] for entry in logs] == ["notification.sent", "notification.failed"]
    assert all(entry["recipient"] == "k***@e***.no" for entry in logs)
    assert RECIPIENT not in repr(logs)
    assert email_notification.link_url not in repr(logs)
