"""build_notifier: settings pick the adapters, the router picks by channel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from domain.notifications import PaymentLinkNotification, Trace
from workers.providers import ChannelRouter, build_notifier
from workers.settings import Settings


def test_by_default_both_channels_write_to_the_local_outbox(
    tmp_path: Path,
    email_notification: PaymentLinkNotification,
    sms_notification: PaymentLinkNotification,
) -> None:
    notifier = build_notifier(Settings(PAYLINK_OUTBOX_DIR=tmp_path))

    email = notifier.send(email_notification)
    sms = notifier.send(sms_notification)

    assert (email.provider, sms.provider) == ("local", "local")
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".eml", ".json"]


def test_configured_providers_receive_their_channel(
    httpserver: HTTPServer,
    email_notification: PaymentLinkNotification,
    sms_notification: PaymentLinkNotification,
) -> None:
    settings = Settings(
        PAYLINK_EMAIL_PROVIDER="sendgrid",
        SENDGRID_API_KEY="SG.key",
        SENDGRID_BASE_URL=httpserver.url_for("").rstrip("/"),
        PAYLINK_SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID="AC1",
        TWILIO_AUTH_TOKEN="token",
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_BASE_URL=httpserver.url_for("/"),
    )
    httpserver.expect_oneshot_request("/v3/mail/send").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-1"}
    )
    httpserver.expect_oneshot_request("/2010-04-01/Accounts/AC1/Messages.json").respond_with_json(
        {"sid": "SM1"}, status=201
    )
    notifier = build_notifier(settings)

    assert notifier.send(email_notification).provider_message_id == "sg-1"
    assert notifier.send(sms_notification).provider_message_id == "SM1"
    httpserver.check_assertions()


def test_an_unknown_channel_is_a_programming_error(
    tmp_path: Path, email_notification: PaymentLinkNotification
) -> None:
    router = build_notifier(Settings(PAYLINK_OUTBOX_DIR=tmp_path))
    assert isinstance(router, ChannelRouter)
    with pytest.raises(ValueError, match="no notifier for channel 'fax'"):
        router.send(replace(email_notification, channel="fax"))  # type: ignore[arg-type]


def test_find_asks_the_channels_provider_and_sendgrid_cannot_tell(
    httpserver: HTTPServer,
    tmp_path: Path,
    email_notification: PaymentLinkNotification,
    sms_notification: PaymentLinkNotification,
) -> None:
    notifier = build_notifier(
        Settings(
            PAYLINK_OUTBOX_DIR=tmp_path,
            PAYLINK_EMAIL_PROVIDER="sendgrid",
            SENDGRID_API_KEY="SG.key",
            SENDGRID_BASE_URL=httpserver.url_for("").rstrip("/"),
        )
    )
    sent = notifier.send(sms_notification)  # the local outbox

    assert notifier.find(sms_notification) == sent
    assert notifier.find(email_notification) is Trace.UNKNOWN
    assert httpserver.log == []  # SendGrid is not even asked
