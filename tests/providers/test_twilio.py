"""Twilio adapter against a loopback server speaking the 2010-04-01 Messages API."""

from __future__ import annotations

import base64
import json

import pytest
import structlog
from pytest_httpserver import HTTPServer

from domain.errors import DeliveryDeferred, DeliveryRejected
from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from workers.notifications import render
from workers.providers.twilio import LOOKUP_PAGE, TwilioNotifier

ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "twilio-test-token"
PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
RECIPIENT = "+15005550001"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

#: Twilio's error body for an invalid "To" number (error 21211), as the API sends it.
INVALID_NUMBER = {
    "code": 21211,
    "message": f"The 'To' number {RECIPIENT} is not a valid phone number.",
    "more_info": "https://www.twilio.com/docs/errors/21211",
    "status": 400,
}


def created(sid: str) -> str:
    return json.dumps({"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": RECIPIENT})


@pytest.fixture
def notifier(httpserver: HTTPServer) -> TwilioNotifier:
    return TwilioNotifier(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number="+15005550006",
        messaging_service_sid=None,
        base_url=httpserver.url_for("/"),
        timeout=2,
    )


def test_sends_the_sms_from_the_number_and_returns_the_message_sid(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_oneshot_request(
        PATH, method="POST", headers={"Authorization": BASIC}
    ).respond_with_data(created("SM0123456789abcdef0123456789abcdef"), status=201)

    receipt = notifier.send(sms_notification)

    assert receipt.provider == "twilio"
    assert receipt.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    request, _ = httpserver.log[0]
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.form.to_dict() == {
        "To": RECIPIENT,
        "From": "+15005550006",
        "Body": render(sms_notification).sms,
    }
    httpserver.check_assertions()


def test_a_messaging_service_replaces_the_from_number(
    httpserver: HTTPServer, sms_notification: PaymentLinkNotification
) -> None:
    notifier = TwilioNotifier(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number=None,
        messaging_service_sid="MG00000000000000000000000000000002",
        base_url=httpserver.url_for("/"),
    )
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_data(
        created("SM2"), status=201
    )

    notifier.send(sms_notification)

    form = httpserver.log[0][0].form
    assert form["MessagingServiceSid"] == "MG00000000000000000000000000000002"
    assert "From" not in form


def test_with_a_public_url_each_message_asks_for_status_callbacks_naming_its_link(
    httpserver: HTTPServer, sms_notification: PaymentLinkNotification
) -> None:
    # Given paylink web is reachable at a public URL
    notifier = TwilioNotifier(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number="+15005550006",
        messaging_service_sid=None,
        base_url=httpserver.url_for("/"),
        public_url="https://pay.example.test/",
    )
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_data(
        created("SM3"), status=201
    )
    # When a link is sent
    notifier.send(sms_notification)
    # Then Twilio is asked to report to /hooks/twilio about this order's link
    form = httpserver.log[0][0].form
    n = sms_notification
    assert form["StatusCallback"] == (
        f"https://pay.example.test/hooks/twilio?order={n.order_id}&link={n.notification_id}"
    )


def test_without_a_public_url_no_status_callback_is_asked(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_data(
        created("SM4"), status=201
    )

    notifier.send(sms_notification)

    assert "StatusCallback" not in httpserver.log[0][0].form


def test_a_sender_is_required() -> None:
    with pytest.raises(ValueError, match="from number or a messaging service"):
        TwilioNotifier(ACCOUNT_SID, AUTH_TOKEN, from_number=None, messaging_service_sid=None)


def test_too_many_requests_is_deferred_for_the_seconds_asked(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_request(PATH).respond_with_json(
        {"code": 20429, "message": "Too Many Requests", "status": 429},
        status=429,
        headers={"Retry-After": "7"},
    )

    with pytest.raises(DeliveryDeferred) as caught:
        notifier.send(sms_notification)

    assert caught.value.retry_after == 7
    assert "Too Many Requests" in str(caught.value)


def test_server_error_is_deferred(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_request(PATH).respond_with_json(
        {"code": 20500, "message": "Internal Server Error", "status": 500}, status=500
    )

    with pytest.raises(DeliveryDeferred) as caught:
        notifier.send(sms_notification)

    assert caught.value.retry_after is None


def test_invalid_number_is_rejected_with_twilios_words_and_the_number_masked(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_request(PATH).respond_with_json(INVALID_NUMBER, status=400)

    with pytest.raises(DeliveryRejected) as caught:
        notifier.send(sms_notification)

    rejected = caught.value
    assert rejected.reason == "The 'To' number +15*******01 is not a valid phone number."
    assert rejected.provider_code == "21211"
    assert RECIPIENT not in str(rejected)
    # The SDK's own exception quotes the number; it must not ride along as context.
    assert rejected.__suppress_context__


def test_unreachable_provider_is_deferred(
    dead_url: str, sms_notification: PaymentLinkNotification
) -> None:
    notifier = TwilioNotifier(
        ACCOUNT_SID, AUTH_TOKEN, "+15005550006", None, base_url=dead_url, timeout=2
    )

    with pytest.raises(DeliveryDeferred, match="twilio unreachable") as caught:
        notifier.send(sms_notification)

    assert RECIPIENT not in str(caught.value)


def test_logs_name_only_the_masked_recipient(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_oneshot_request(PATH).respond_with_data(created("SM1"), status=201)
    httpserver.expect_oneshot_request(PATH).respond_with_json(INVALID_NUMBER, status=400)

    with structlog.testing.capture_logs() as logs:
        notifier.send(sms_notification)
        with pytest.raises(DeliveryRejected):
            notifier.send(sms_notification)

    assert [entry["event"] for entry in logs] == ["notification.sent", "notification.failed"]
    assert all(entry["recipient"] == "+15*******01" for entry in logs)
    assert RECIPIENT not in repr(logs)
    assert sms_notification.link_url not in repr(logs)


# ---- find: after a worker died mid-send ----------------------------------------------


def _history(*bodies: str) -> dict[str, object]:
    """A Messages list page (newest first), as the 2010-04-01 API answers it."""
    messages = [
        {"sid": f"SM{i:032x}", "account_sid": ACCOUNT_SID, "to": RECIPIENT, "body": body}
        for i, body in enumerate(bodies)
    ]
    return {
        "messages": messages,
        "page": 0,
        "page_size": LOOKUP_PAGE,
        "next_page_uri": None,
        "uri": PATH,
        "first_page_uri": PATH,
        "previous_page_uri": None,
        "start": 0,
        "end": len(messages),
    }


def test_find_reads_the_numbers_history_and_returns_the_message_holding_the_link(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    ours = render(sms_notification).sms
    httpserver.expect_oneshot_request(PATH, method="GET").respond_with_json(
        _history("Your order at another shop: https://pay.paylink.example/l/other", ours)
    )

    found = notifier.find(sms_notification)

    assert found == DeliveryReceipt("twilio", f"SM{1:032x}")
    request, _ = httpserver.log[0]
    assert request.args.to_dict() == {"To": RECIPIENT, "PageSize": str(LOOKUP_PAGE)}
    assert request.headers["Authorization"] == BASIC


def test_find_in_a_complete_history_without_the_link_says_it_was_not_sent(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    httpserver.expect_oneshot_request(PATH, method="GET").respond_with_json(
        _history("an older link: https://pay.paylink.example/l/older")
    )

    assert notifier.find(sms_notification) is Trace.NOT_SENT


def test_find_in_a_full_page_without_the_link_cannot_tell(
    httpserver: HTTPServer, notifier: TwilioNotifier, sms_notification: PaymentLinkNotification
) -> None:
    older = [f"link https://pay.paylink.example/l/old{i}" for i in range(LOOKUP_PAGE)]
    httpserver.expect_oneshot_request(PATH, method="GET").respond_with_json(_history(*older))

    assert notifier.find(sms_notification) is Trace.UNKNOWN


def test_a_failed_lookup_cannot_tell_and_logs_no_number(
    httpserver: HTTPServer,
    notifier: TwilioNotifier,
    sms_notification: PaymentLinkNotification,
    dead_url: str,
) -> None:
    httpserver.expect_oneshot_request(PATH, method="GET").respond_with_json(
        {"code": 20500, "message": f"Internal error for {RECIPIENT}", "status": 500}, status=500
    )
    unreachable = TwilioNotifier(
        ACCOUNT_SID, AUTH_TOKEN, "+15005550006", None, base_url=dead_url, timeout=2
    )

    with structlog.testing.capture_logs() as logs:
        assert notifier.find(sms_notification) is Trace.UNKNOWN
        assert unreachable.find(sms_notification) is Trace.UNKNOWN

    assert [entry["event"] for entry in logs] == ["notification.lookup_failed"] * 2
    assert RECIPIENT not in repr(logs)
