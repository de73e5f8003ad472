"""Shared failure mapping: Retry-After parsing and recipient scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.errors import DeliveryDeferred, DeliveryRejected
from workers.providers.failures import AUTH_REFUSED, classify, retry_after_seconds, scrub

NOW = datetime(2025, 7, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Tue, 15 Jul 2025 12:01:30 GMT", 90.0),
        ("Tue, 15 Jul 2025 11:00:00 GMT", 0.0),  # already past: retry now
        ("soon", None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mailbox anna@example.se is full", "Mailbox a***@e***.se is full"),
        ("To +46 70-123 45 67 failed", "To +46*******67 failed"),
        ("number 4670123456 unknown", "number 467*****56 unknown"),
        ("error 21211 at 2025-07-15", "error 21211 at 2025-07-15"),
    ],
)
def test_scrub_masks_addresses_and_numbers_but_not_codes(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, DeliveryRejected),
        (404, DeliveryRejected),
        (413, DeliveryRejected),
        (401, DeliveryRejected),
        (403, DeliveryRejected),
        (408, DeliveryDeferred),
        (429, DeliveryDeferred),
        (500, DeliveryDeferred),
        (503, DeliveryDeferred),
    ],
)
def test_status_decides_between_retry_and_rejection(status: int, kind: type[Exception]) -> None:
    failure = classify(
        "sendgrid", status, "nope", headers={}, recipient="a@b.se", provider_code=str(status)
    )
    assert isinstance(failure, kind)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_delivery_failure_with_their_own_reason(status: int) -> None:
    failure = classify(
        "twilio",
        status,
        "Authenticate",
        headers=None,
        recipient="+15005550001",
        provider_code="20003",
    )
    assert isinstance(failure, DeliveryRejected)
    assert failure.reason == f"{AUTH_REFUSED} by twilio ({status}): Authenticate"


def test_rejection_names_its_provider_and_code() -> None:
    failure = classify(
        "twilio", 400, "bad", headers=None, recipient="+15005550001", provider_code="21211"
    )
    assert isinstance(failure, DeliveryRejected)
    assert (failure.provider, failure.provider_code, failure.reason) == ("twilio", "21211", "bad")
