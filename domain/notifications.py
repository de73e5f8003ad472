"""The notifier port: how a handler asks the outside world to deliver a payment link.

Adapters (``workers/providers/``) implement :class:`Notifier`. They raise
:class:`domain.errors.DeliveryDeferred` for retryable provider failures (429, 5xx,
network) and :class:`domain.errors.DeliveryRejected` for permanent ones (4xx).

``find`` is asked only after an uncertain attempt (a worker died between the provider
call and recording its answer): a provider that can tell whether that notification
already went out spares the customer a second message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol
from uuid import UUID

from messages.common import Channel


@dataclass(frozen=True, slots=True)
class PaymentLinkNotification:
    """Everything needed to tell one customer about one payment link."""

    #: Idempotency key of this delivery attempt (one per link token).
    notification_id: UUID
    order_id: UUID
    channel: Channel
    #: Email address or E.164 phone number. Never log it; use ``mask_recipient``.
    recipient: str
    store_name: str
    #: ISO 3166-1 alpha-2; picks the language, locale and time zone of the message.
    purchase_country: str
    #: ISO 4217 code.
    currency: str
    #: Order amount in minor units of ``currency``.
    order_amount: int
    link_url: str
    #: Timezone-aware UTC instant the link stops working.
    expires_at: datetime
    merchant_reference: str
    #: The reminder before expiry (the customer has the link already): its own wording.
    reminder: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    provider: str
    provider_message_id: str


class Trace(Enum):
    """What a provider knows of a notification it has no receipt for."""

    #: The provider holds no such message: sending now is the first delivery.
    NOT_SENT = "not_sent"
    #: The provider cannot tell (no lookup, or it failed): sending may duplicate.
    UNKNOWN = "unknown"


class Notifier(Protocol):
    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt: ...

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        """The receipt of ``notification`` if the provider already accepted it."""
        ...


def mask_recipient(recipient: str) -> str:
    """Mask an email or phone number for logs: ``j***@e***.com``, ``+46*******89``."""
    if "@" in recipient:
        local, _, domain = recipient.partition("@")
        host, dot, tld = domain.rpartition(".")
        if not dot:
            host, tld = domain, ""
        return f"{local[:1]}***@{host[:1]}***{dot}{tld}"
    if len(recipient) <= 5:
        return "*" * len(recipient)
    return recipient[:3] + "*" * (len(recipient) - 5) + recipient[-2:]
