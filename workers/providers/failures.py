"""How a provider's HTTP answer becomes DeliveryDeferred or DeliveryRejected.

Shared by the SendGrid and Twilio adapters so both draw the retry line in the same
place, honour ``Retry-After`` the same way, and scrub the same way: a provider's error
text often quotes the address, number or link back to us, and these exceptions end up
in logs and in ``link.delivery_failed`` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from domain.errors import DeliveryDeferred, DeliveryRejected
from workers.observability.redaction import redact

#: 4xx answers that are worth retrying: the request, not the recipient, was the problem.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})
#: The provider refused *our* credentials or account. Retried, a wrong key showed only as
#: worker errors while every link waited; now each is a delivery failure of its own
#: reason (the exporter's ``reason="auth"``, alert PaylinkLinkDeliveryAuthRefused), and
#: the merchant resends the links once the key is fixed.
AUTH_STATUSES = frozenset({401, 403})
#: How a ``link.delivery_failed`` reason for such a refusal starts (the exporter counts by it).
AUTH_REFUSED = "credentials refused"


def scrub(text: str, recipient: str | None = None) -> str:
    """A provider's text with the recipient, every other address and number, and any
    link token masked (``workers.observability.redaction``: the same masking as log lines)."""
    return redact(text, (recipient,) if recipient else ())


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After`` (delay-seconds or HTTP-date) into seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup over whatever mapping the library hands back."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def classify(
    provider: str,
    status: int,
    reason: str,
    *,
    headers: Mapping[str, str] | None,
    recipient: str,
    provider_code: str | None,
) -> DeliveryDeferred | DeliveryRejected:
    """The exception for an unsuccessful HTTP answer; ``reason`` is scrubbed here."""
    reason = scrub(reason, recipient) or f"HTTP {status}"
    if status in AUTH_STATUSES:
        return DeliveryRejected(
            f"{AUTH_REFUSED} by {provider} ({status}): {reason}",
            provider_code=provider_code,
            provider=provider,
        )
    if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
        return DeliveryDeferred(
            f"{provider} answered {status}: {reason}",
            retry_after=retry_after_seconds(header(headers, "Retry-After")),
        )
    return DeliveryRejected(reason, provider_code=provider_code, provider=provider)


def unreachable(provider: str, error: BaseException, recipient: str) -> DeliveryDeferred:
    """A network failure or timeout: the provider may never have seen the request."""
    detail = scrub(str(error), recipient) or type(error).__name__
    return DeliveryDeferred(f"{provider} unreachable: {detail}")
