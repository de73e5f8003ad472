"""The real actors, plus a fault: SIGKILL the worker after the provider accepted a
message and before the outcome is committed (the crash window: a duplicate unless the
provider can tell it already has the message).

The kill happens once per marker file (``PAYLINK_TEST_KILL_MARKER``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from domain.notifications import DeliveryReceipt, Notifier, PaymentLinkNotification, Trace
from workers.runtime import actors  # noqa: F401  (registers the actors on the broker)
from workers.runtime.composition import get_app

MARKER = Path(os.environ.get("PAYLINK_TEST_KILL_MARKER", "/nonexistent"))


class KillAfterSend:
    def __init__(self, inner: Notifier) -> None:
        self.inner = inner

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        receipt = self.inner.send(notification)
        try:
            MARKER.unlink()
        except FileNotFoundError:
            return receipt
        os.kill(os.getpid(), signal.SIGKILL)
        return receipt  # pragma: no cover

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        return self.inner.find(notification)


app = get_app()
app.notifier = KillAfterSend(app.notifier)
