"""Notifier adapters (SendGrid, Twilio, local outbox) and the factory that picks them.

:func:`build_notifier` is the only place that reads provider choice and secrets, and
it reads them from :class:`workers.settings.Settings`, never from the environment.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.notifications import Notifier
from messages.commands import RecordLinkDelivery
from workers.providers.local_outbox import LocalOutboxNotifier
from workers.providers.router import ChannelRouter
from workers.settings import Settings

__all__ = ["ChannelRouter", "LocalOutboxNotifier", "build_notifier"]


def build_notifier(
    settings: Settings, report: Callable[[RecordLinkDelivery], None] | None = None
) -> Notifier:
    """The router over the configured email and SMS adapters.

    Provider modules are imported only when selected, so the default (local) setup does
    not load the SendGrid and Twilio SDKs: 180 and 285 ms of import in every worker
    process otherwise (``python -X importtime -c "import sendgrid"``, ``twilio.rest``). ``report`` hands the local outbox's delivery
    reports to the workers, when ``PAYLINK_LOCAL_OUTBOX_REPORTS`` asks for them.
    """
    local = LocalOutboxNotifier(
        settings.outbox_dir,
        from_email=settings.email_from,
        report=report if settings.local_outbox_reports else None,
    )
    email: Notifier = local
    sms: Notifier = local
    if settings.email_provider == "sendgrid":
        from workers.providers.sendgrid import SendGridNotifier  # only when selected: see above

        if settings.sendgrid_api_key is None:
            raise ValueError("SENDGRID_API_KEY is required for the sendgrid provider")
        email = SendGridNotifier(
            api_key=settings.sendgrid_api_key.get_secret_value(),
            from_email=settings.email_from,
            host=settings.sendgrid_base_url,
        )
    if settings.sms_provider == "twilio":
        from workers.providers.twilio import TwilioNotifier  # only when selected: see above

        if not settings.twilio_account_sid or settings.twilio_auth_token is None:
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required for twilio")
        sms = TwilioNotifier(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            base_url=settings.twilio_base_url,
            public_url=settings.web_public_url,
        )
    return ChannelRouter(email=email, sms=sms)
