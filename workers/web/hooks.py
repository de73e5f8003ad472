"""The providers' delivery webhooks: what became of a sent link, as a command.

``POST /hooks/sendgrid`` takes SendGrid's Event Webhook (a signed JSON array of
events), ``POST /hooks/twilio`` Twilio's status callbacks (signed form posts). A
request whose signature does not verify is answered 403 and publishes nothing. Each
``delivered``, ``bounce``/``dropped`` (email) or ``delivered``, ``undelivered``/``failed``
(SMS) becomes a ``RecordLinkDelivery`` whose command id follows from the provider's own
event id (SendGrid's ``sg_event_id``; Twilio's message SID and status): a provider
retrying a webhook, or anyone replaying a captured one, has no second effect.

The link a report is about comes from paylink's own ids, sent with the message: the
``custom_args`` SendGrid echoes on every event (``workers.providers.sendgrid``), and
the status callback URL's query (``workers.providers.twilio``), which Twilio signs.
Reports that name no link (a message paylink did not send) are acknowledged and
dropped; so are statuses that say nothing final (``processed``, ``deferred``, ``sent``).
A report that cannot be published yet is answered 503: both providers retry.
"""

from __future__ import annotations

import binascii
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from prometheus_client import Counter
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from messages import commands as c
from messages.common import Channel
from workers.providers.failures import scrub
from workers.providers.twilio import STATUS_CALLBACK_PATH
from workers.web.publisher import CommandPublisher, PublishFailed

log = structlog.get_logger("paylink.web")

#: Served on the health port: every report by provider and what became of it
#: (delivered, failed, ignored, unmatched, refused).
REPORTS = Counter(
    "paylink_web_delivery_reports",
    "Provider delivery reports received by the webhooks, by what became of them.",
    ["provider", "outcome"],
)

Outcome = Literal["delivered", "failed"]
#: SendGrid event -> outcome; other events (processed, deferred, open, click) are ignored.
SENDGRID_OUTCOMES: Mapping[str, Outcome] = {
    "delivered": "delivered",
    "bounce": "failed",
    "dropped": "failed",
}
#: Twilio MessageStatus -> outcome; queued, sending, sent, read are on the way.
TWILIO_OUTCOMES: Mapping[str, Outcome] = {
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
}
#: Where the report's command ids are derived from (any fixed namespace would do).
REPORT_NAMESPACE = uuid.UUID("0d9c4a52-5b67-4c43-9a51-4d0b4c2f3e10")


def report_command_id(provider: str, event_id: str) -> uuid.UUID:
    """The same provider event always makes the same command (and so one effect)."""
    return uuid.uuid5(REPORT_NAMESPACE, f"{provider}:{event_id}")


def load_sendgrid_key(public_key: str) -> EllipticCurvePublicKey:
    """The verification key as SendGrid's console shows it (base64 DER, no PEM lines)."""
    key = EventWebhook().convert_public_key_to_ecdsa(public_key)
    if not isinstance(key, EllipticCurvePublicKey):
        raise ValueError("the SendGrid webhook key is not an elliptic curve public key")
    return key


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class DeliveryHooks:
    """The two webhook endpoints; a provider without its key configured is refused."""

    def __init__(
        self,
        publisher: CommandPublisher,
        now: Callable[[], datetime],
        *,
        sendgrid_public_key: str | None = None,
        twilio_secret: str | None = None,
        public_url: str | None = None,
    ) -> None:
        self.publisher, self.now = publisher, now
        self._sendgrid = load_sendgrid_key(sendgrid_public_key) if sendgrid_public_key else None
        self._twilio = RequestValidator(twilio_secret) if twilio_secret else None
        #: What Twilio called: its signature covers the public URL, not the one behind
        #: a proxy that this process sees.
        self._public_url = public_url.rstrip("/") if public_url else None

    def routes(self) -> list[Route]:
        return [
            Route("/hooks/sendgrid", self.sendgrid, methods=["POST"], name="hook_sendgrid"),
            Route(STATUS_CALLBACK_PATH, self.twilio, methods=["POST"], name="hook_twilio"),
        ]

    # ---- SendGrid -----------------------------------------------------------------

    async def sendgrid(self, request: Request) -> Response:
        body = await request.body()
        headers = EventWebhookHeader
        if not self._sendgrid_signed(
            body,
            request.headers.get(headers.SIGNATURE),
            request.headers.get(headers.TIMESTAMP),
        ):
            return _refused("sendgrid")
        try:
            events = json.loads(body)
        except ValueError:
            return Response("not JSON", 400)
        if not isinstance(events, list):
            return Response("expected a JSON array of events", 400)
        commands = [self._sendgrid_report(e) for e in events if isinstance(e, dict)]
        return await self._publish("sendgrid", commands, ignored=len(events) - len(commands))

    def _sendgrid_signed(self, body: bytes, signature: str | None, timestamp: str | None) -> bool:
        if self._sendgrid is None or not signature or not timestamp:
            return False
        try:
            payload = body.decode("utf-8")
            return bool(
                EventWebhook().verify_signature(payload, signature, timestamp, self._sendgrid)
            )
        except (ValueError, binascii.Error, InvalidSignature):  # not text, not base64
            return False

    def _sendgrid_report(self, event: dict[str, object]) -> c.RecordLinkDelivery | str:
        outcome = SENDGRID_OUTCOMES.get(str(event.get("event")))
        if outcome is None:
            return "ignored"
        order_id, link_id = _uuid(event.get("order_id")), _uuid(event.get("notification_id"))
        event_id = event.get("sg_event_id")
        if order_id is None or link_id is None or not isinstance(event_id, str) or not event_id:
            return "unmatched"
        reason = None
        if outcome == "failed":
            email = event.get("email")
            text = " ".join(str(event[k]) for k in ("type", "reason") if event.get(k))
            reason = scrub(text, email if isinstance(email, str) else None)[:500] or "bounce"
        return self._command("sendgrid", event_id, order_id, link_id, "email", outcome, reason)

    # ---- Twilio -------------------------------------------------------------------

    async def twilio(self, request: Request) -> Response:
        form = await request.form()
        params = {key: value for key, value in form.items() if isinstance(value, str)}
        if not self._twilio_signed(request, params):
            return _refused("twilio")
        return await self._publish("twilio", [self._twilio_report(request, params)])

    def _twilio_report(
        self, request: Request, params: dict[str, str]
    ) -> c.RecordLinkDelivery | str:
        status = params.get("MessageStatus", "")
        outcome = TWILIO_OUTCOMES.get(status)
        if outcome is None:
            return "ignored"
        sid = params.get("MessageSid", "")
        order_id = _uuid(request.query_params.get("order"))
        link_id = _uuid(request.query_params.get("link"))
        if order_id is None or link_id is None or not sid:
            return "unmatched"
        code = params.get("ErrorCode", "")[:100]
        reason = f"{status} {code}".strip() if outcome == "failed" else None
        return self._command("twilio", f"{sid}:{status}", order_id, link_id, "sms", outcome, reason)

    def _twilio_signed(self, request: Request, params: dict[str, str]) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER)
        if self._twilio is None or self._public_url is None or not signature:
            return False
        url = self._public_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        return bool(self._twilio.validate(url, params, signature, algorithm))

    # ---- both ---------------------------------------------------------------------

    def _command(
        self,
        provider: str,
        event_id: str,
        order_id: uuid.UUID,
        link_id: uuid.UUID,
        channel: Channel,
        outcome: Outcome,
        reason: str | None,
    ) -> c.RecordLinkDelivery:
        return c.RecordLinkDelivery(
            command_id=report_command_id(provider, event_id),
            issued_at=self.now(),
            order_id=order_id,
            link_id=link_id,
            channel=channel,
            provider=provider,
            outcome=outcome,
            reason=reason,
        )

    async def _publish(
        self, provider: str, reports: list[c.RecordLinkDelivery | str], ignored: int = 0
    ) -> Response:
        """Publish every report; if one fails the provider retries the whole request,
        and the reports already published are then replays (no second effect)."""
        REPORTS.labels(provider, "ignored").inc(ignored)
        for report in reports:
            if isinstance(report, str):
                REPORTS.labels(provider, report).inc()
                continue
            try:
                await run_in_threadpool(self.publisher.publish, report)
            except PublishFailed as exc:
                log.error("delivery report not published; the provider retries", error=str(exc))
                return Response("try again", 503)
            REPORTS.labels(provider, report.outcome).inc()
            log.info(
                "delivery report published",
                provider=provider,
                outcome=report.outcome,
                order_id=str(report.order_id),
                link_id=str(report.link_id),
            )
        return Response(status_code=204)


def _refused(provider: str) -> Response:
    REPORTS.labels(provider, "refused").inc()
    log.warning("delivery webhook refused: signature missing or wrong", provider=provider)
    return Response("signature missing or invalid", 403)
