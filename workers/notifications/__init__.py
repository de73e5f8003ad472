"""What a payment-link message says, per language, and what it costs as an SMS."""

from __future__ import annotations

from workers.notifications.render import RenderedMessage, render
from workers.notifications.sms import sms_segments

__all__ = ["RenderedMessage", "render", "sms_segments"]
