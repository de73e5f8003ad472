"""Shared data for the provider adapter tests: one customer per channel, a dead port."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.notifications import PaymentLinkNotification

LINK = "https://pay.paylink.example/l/Qk3v9x_L2mZ8r4TtYw1pNc6HbJdE0sFa7uGiOkXyV5q"


def _notification(channel: str, recipient: str) -> PaymentLinkNotification:
    return PaymentLinkNotification(
        notification_id=UUID("5b0d1f3e-7a2c-4e9b-8d61-0c3f2a1b4e5d"),
        order_id=UUID("c4a1e2d3-b5f6-4789-a0b1-c2d3e4f5a6b7"),
        channel=channel,  # type: ignore[arg-type]
        recipient=recipient,
        store_name="Nordic Outdoor, Oslo",
        purchase_country="NO",
        currency="NOK",
        order_amount=249900,
        link_url=LINK,
        expires_at=datetime(2025, 7, 15, 13, 5, tzinfo=UTC),
        merchant_reference="NO-88231",
    )


@pytest.fixture
def email_notification() -> PaymentLinkNotification:
    return _notification("email", "kari.nordmann@example.no")


@pytest.fixture
def sms_notification() -> PaymentLinkNotification:
    return _notification("sms", "+15005550001")


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
