"""One notifier in front of two: email and SMS go to whichever adapters are configured."""

from __future__ import annotations

from domain.notifications import DeliveryReceipt, Notifier, PaymentLinkNotification, Trace


class ChannelRouter:
    """Dispatches on ``notification.channel``; handlers see a single :class:`Notifier`."""

    def __init__(self, *, email: Notifier, sms: Notifier) -> None:
        self._by_channel: dict[str, Notifier] = {"email": email, "sms": sms}

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        return self._for(notification).send(notification)

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        return self._for(notification).find(notification)

    def _for(self, notification: PaymentLinkNotification) -> Notifier:
        try:
            return self._by_channel[notification.channel]
        except KeyError:
            raise ValueError(f"no notifier for channel {notification.channel!r}") from None
