"""One notifier in front of two: email and SMS go to whichever adapters are configured."""

from __future__ import annotations

from domain.notifications import DeliveryReceipt, Notifier, PaymentLinkNotification


class ChannelRouter:
    """Dispatches on ``notification.channel``; handlers see a single :class:`Notifier`."""

    def __init__(self, *, email: Notifier, sms: Notifier) -> None:
        self._by_channel: dict[str, Notifier] = {"email": email, "sms": sms}

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        try:
            notifier = self._by_channel[notification.channel]
        except KeyError:
            raise ValueError(f"no notifier for channel {notification.channel!r}") from None
        return notifier.send(notification)
