"""Email delivery through SendGrid's v3 Mail Send API (official ``sendgrid`` library).

The request carries the notification and order ids both as ``custom_args`` (they come
back on SendGrid's event webhook) and as headers (they survive into the customer's
mailbox), so a delivered message can always be traced to the link it announced.

SendGrid cannot say whether a message went out (``find`` answers ``UNKNOWN``): Mail Send
has no idempotency key, and the Email Activity API that could be searched by those
``custom_args`` is a paid add-on limited to 6 requests a minute whose index lags the
send, so a message missing from it proves nothing. After a worker dies mid-send, the
link is sent again and counted as a possible duplicate.
"""

from __future__ import annotations

import http.client
import json
import logging
import re

import sendgrid
import structlog
from python_http_client.exceptions import HTTPError
from sendgrid.helpers.mail import (
    ClickTracking,
    CustomArg,
    From,
    Header,
    HtmlContent,
    Mail,
    PlainTextContent,
    To,
    TrackingSettings,
)

from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from workers.notifications.render import render
from workers.providers.failures import classify, header, unreachable
from workers.providers.fields import log_fields

PROVIDER = "sendgrid"

log = structlog.get_logger("paylink.providers")


class SendGridNotifier:
    """Sends the email rendering of a payment link; one HTTPS request per message."""

    def __init__(
        self,
        api_key: str,
        from_email: str,
        host: str = "https://api.sendgrid.com",
        timeout: float = 10,
    ) -> None:
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        self._from_email = from_email
        self._timeout = timeout
        # python_http_client logs the whole payload (recipient, link token) at DEBUG.
        logging.getLogger("python_http_client.client").setLevel(logging.INFO)

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        bound = log.bind(**log_fields(PROVIDER, notification))
        body = self._mail(notification).get()
        try:
            response = self._client.client.mail.send.post(request_body=body, timeout=self._timeout)
        except HTTPError as error:
            failure = classify(
                PROVIDER,
                error.status_code,
                _error_text(error.body),
                headers=error.headers,
                recipient=notification.recipient,
                provider_code=str(error.status_code),
            )
            bound.warning("notification.failed", error=str(failure), status=error.status_code)
            # ``from None``: the library's exception holds the raw body, recipient included.
            raise failure from None
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
            failure = unreachable(PROVIDER, error, notification.recipient)
            bound.warning("notification.failed", error=str(failure))
            raise failure from None
        message_id = header(response.headers, "X-Message-Id") or ""
        bound.info("notification.sent", provider_message_id=message_id)
        return DeliveryReceipt(provider=PROVIDER, provider_message_id=message_id)

    def find(self, notification: PaymentLinkNotification) -> Trace:
        """SendGrid cannot tell (see the module docstring)."""
        return Trace.UNKNOWN

    def _mail(self, notification: PaymentLinkNotification) -> Mail:
        message = render(notification)
        ids = {
            "notification_id": str(notification.notification_id),
            "order_id": str(notification.order_id),
        }
        mail = Mail(
            from_email=From(self._from_email, _sender_name(message.sender_name)),
            to_emails=To(notification.recipient),
            subject=message.subject,
            plain_text_content=PlainTextContent(message.text),
            html_content=HtmlContent(message.html),
        )
        mail.custom_arg = [CustomArg(key, value) for key, value in ids.items()]
        mail.header = [
            Header("X-Paylink-Notification-Id", ids["notification_id"]),
            Header("X-Paylink-Order-Id", ids["order_id"]),
        ]
        # Click tracking would rewrite the payment link through SendGrid's redirector:
        # the customer should see, and the token should only travel to, our own host.
        mail.tracking_settings = TrackingSettings(click_tracking=ClickTracking(False, False))
        return mail


def _sender_name(store_name: str) -> str:
    """SendGrid splits display names on "," and ";" and then drops the mail."""
    return re.sub(r"\s*[,;]\s*", " ", store_name).strip() or "Paylink"


def _error_text(body: bytes | str | None) -> str:
    """Join SendGrid's ``{"errors": [{"message", "field", "help"}]}`` into one line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        payload: object = json.loads(body or "")
    except ValueError:
        return (body or "").strip()[:500]
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        return str(payload)[:500]
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        text = str(error.get("message") or "").strip()
        if error.get("field"):
            text = f"{text} (field: {error['field']})"
        parts.append(text)
    return "; ".join(part for part in parts if part)
