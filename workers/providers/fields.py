"""What every provider log line says about a notification: ids, never the recipient."""

from __future__ import annotations

from domain.notifications import PaymentLinkNotification, mask_recipient


def log_fields(provider: str, notification: PaymentLinkNotification) -> dict[str, str]:
    """Provider, channel, notification and order ids, and the recipient masked."""
    return {
        "provider": provider,
        "channel": notification.channel,
        "notification_id": str(notification.notification_id),
        "order_id": str(notification.order_id),
        "recipient": mask_recipient(notification.recipient),
    }
