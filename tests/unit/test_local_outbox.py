"""The local outbox: one readable file per notification, rewritten in place."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.charset import Charset
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from pathlib import Path
from uuid import UUID

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.notifications import PaymentLinkNotification, Trace
from messages.commands import RecordLinkDelivery
from workers.notifications import render
from workers.notifications.render import RenderedMessage
from workers.providers.local_outbox import LocalOutboxNotifier, email_bytes

EMAIL = PaymentLinkNotification(
    notification_id=UUID("3d0a7c52-41e4-4d8e-8f0e-6a1b2c3d4e5f"),
    order_id=UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
    channel="email",
    recipient="anna.svensson@example.se",
    store_name="Kaffe & Kakor <Södermalm>",
    purchase_country="SE",
    currency="SEK",
    order_amount=34900,
    link_url="https://pay.paylink.example/l/Qk3v9x_L2mZ8r4TtYw1pNc6HbJdE0sFa7uGiOkXyV5q",
    expires_at=datetime(2025, 7, 15, 13, 5, tzinfo=UTC),
    merchant_reference="KK-1042",
)
SMS = replace(EMAIL, channel="sms", recipient="+46701234567", notification_id=UUID(int=7))


@pytest.fixture
def outbox(tmp_path: Path) -> LocalOutboxNotifier:
    return LocalOutboxNotifier(tmp_path / "outbox", from_email="links@paylink.example")


def parse(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_an_email_becomes_a_parseable_eml_file_named_by_notification_id(
    outbox: LocalOutboxNotifier, tmp_path: Path
) -> None:
    receipt = outbox.send(EMAIL)

    path = tmp_path / "outbox" / f"{EMAIL.notification_id}.eml"
    assert receipt.provider == "local"
    assert receipt.provider_message_id == path.name
    message = parse(path)
    rendered = render(EMAIL)
    assert message["To"] == "anna.svensson@example.se"
    assert message["From"].addresses[0].display_name == "Kaffe & Kakor <Södermalm>"
    assert message["From"].addresses[0].addr_spec == "links@paylink.example"
    assert message["Subject"] == rendered.subject
    assert message["Message-ID"] == f"<{EMAIL.notification_id}@paylink.example>"
    assert message["X-Paylink-Order-Id"] == str(EMAIL.order_id)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    # RFC 5322 lines end in CRLF on disk too; the content is otherwise exactly the render.
    assert text.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert b"\r\n" in path.read_bytes()


def test_an_sms_becomes_a_json_file_with_its_cost(
    outbox: LocalOutboxNotifier, tmp_path: Path
) -> None:
    outbox.send(SMS)

    document = json.loads((tmp_path / "outbox" / f"{SMS.notification_id}.json").read_text())
    assert document["to"] == "+46701234567"
    assert document["body"] == render(SMS).sms
    assert document["encoding"] == "GSM-7"
    assert document["segments"] == 2
    assert document["order_id"] == str(SMS.order_id)


def test_sending_again_rewrites_the_same_file(outbox: LocalOutboxNotifier, tmp_path: Path) -> None:
    outbox.send(EMAIL)
    outbox.send(EMAIL)
    outbox.send(SMS)
    outbox.send(SMS)

    names = sorted(path.name for path in (tmp_path / "outbox").iterdir())
    assert names == sorted([f"{EMAIL.notification_id}.eml", f"{SMS.notification_id}.json"])
    assert parse(tmp_path / "outbox" / f"{EMAIL.notification_id}.eml")["Subject"]


def test_no_temporary_file_survives_a_failed_write(
    outbox: LocalOutboxNotifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("workers.providers.local_outbox.os.replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        outbox.send(EMAIL)
    assert list((tmp_path / "outbox").iterdir()) == []


def test_logs_carry_only_the_masked_recipient(outbox: LocalOutboxNotifier) -> None:
    with structlog.testing.capture_logs() as logs:
        outbox.send(EMAIL)
        outbox.send(SMS)

    assert [entry["recipient"] for entry in logs] == ["a***@e***.se", "+46*******67"]
    flattened = repr(logs)
    assert "anna.svensson" not in flattened
    assert "+46701234567" not in flattened
    assert EMAIL.link_url not in flattened


def _reference_eml(
    notification: PaymentLinkNotification, message: RenderedMessage, from_email: str, date: datetime
) -> bytes:
    """The same message the generic way: ``email.mime`` and the ``compat32`` generator."""
    utf8 = Charset("utf-8")
    utf8.body_encoding = None  # type: ignore[assignment]  # None: 7bit or 8bit
    email = MIMEMultipart("alternative", boundary=f"=_paylink_{notification.notification_id.hex}")
    domain = from_email.rpartition("@")[2] or "paylink.local"
    email["From"] = formataddr((message.sender_name, from_email), charset="utf-8")
    email["To"] = notification.recipient
    email["Subject"] = Header(message.subject, "utf-8")  # type: ignore[assignment]
    email["Date"] = format_datetime(date)
    email["Message-ID"] = f"<{notification.notification_id}@{domain}>"
    email["X-Paylink-Notification-Id"] = str(notification.notification_id)
    email["X-Paylink-Order-Id"] = str(notification.order_id)
    email.attach(MIMEText(message.text, "plain", utf8))  # type: ignore[arg-type]
    email.attach(MIMEText(message.html, "html", utf8))  # type: ignore[arg-type]
    return email.as_bytes(policy=compat32.clone(linesep="\r\n"))


_display = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(
    sender=_display,
    subject=_display,
    text=_display,
    html=_display,
    recipient=st.one_of(st.emails(), _display.filter(bool)),
    from_email=st.one_of(st.just("links@paylink.example"), st.emails()),
    date=st.datetimes(timezones=st.just(UTC)),
)
def test_the_eml_is_byte_for_byte_what_email_mime_writes(
    sender: str, subject: str, text: str, html: str, recipient: str, from_email: str, date: datetime
) -> None:
    notification = replace(EMAIL, recipient=recipient)
    message = RenderedMessage(subject=subject, text=text, html=html, sms="", sender_name=sender)

    ours = email_bytes(notification, message, from_email=from_email, date=date)

    assert ours == _reference_eml(notification, message, from_email, date)


def test_the_rendered_eml_matches_email_mime_for_every_template() -> None:
    for country in ("SE", "DE", "GB", "US", "FI", "NO", "DK", "NL", "FR"):
        notification = replace(EMAIL, purchase_country=country)
        message = render(notification)
        date = datetime(2025, 7, 15, 13, 5, tzinfo=UTC)
        ours = email_bytes(notification, message, from_email="links@paylink.example", date=date)
        assert ours == _reference_eml(notification, message, "links@paylink.example", date)


@pytest.mark.parametrize("notification", [EMAIL, SMS], ids=["email", "sms"])
def test_find_answers_from_the_file_a_send_renamed_into_place(
    outbox: LocalOutboxNotifier, notification: PaymentLinkNotification, tmp_path: Path
) -> None:
    assert outbox.find(notification) is Trace.NOT_SENT
    # A send killed before its rename leaves only a temporary file: still not sent.
    directory = tmp_path / "outbox"
    directory.mkdir()
    (directory / f".{notification.notification_id}.eml.abc.tmp").write_bytes(b"half")
    assert outbox.find(notification) is Trace.NOT_SENT

    receipt = outbox.send(notification)

    assert outbox.find(notification) == receipt


def test_with_a_reporter_each_message_is_reported_delivered_once_per_notification(
    tmp_path: Path,
) -> None:
    # Given a local outbox that reports deliveries
    reports: list[RecordLinkDelivery] = []
    outbox = LocalOutboxNotifier(tmp_path, report=reports.append)
    # When an email and an SMS go out, and the email is rewritten (a redelivery)
    outbox.send(EMAIL)
    outbox.send(SMS)
    outbox.send(EMAIL)
    # Then each is reported delivered for its link; the rewrite is the same report
    email, sms, again = reports
    assert (email.link_id, email.order_id, email.channel) == (
        EMAIL.notification_id,
        EMAIL.order_id,
        "email",
    )
    assert (email.provider, email.outcome) == ("local", "delivered")
    assert (sms.link_id, sms.channel) == (SMS.notification_id, "sms")
    assert again.command_id == email.command_id != sms.command_id


def test_a_report_that_cannot_be_handed_over_does_not_fail_the_delivery(tmp_path: Path) -> None:
    def broker_down(command: RecordLinkDelivery) -> None:
        raise ConnectionError("broker unreachable")

    outbox = LocalOutboxNotifier(tmp_path, report=broker_down)

    receipt = outbox.send(EMAIL)

    assert (tmp_path / receipt.provider_message_id).exists()
