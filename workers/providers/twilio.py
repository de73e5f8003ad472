"""SMS delivery through Twilio's Messages API (official ``twilio`` library).

The library turns error answers into exceptions that keep the status and message but
drop the response headers, and ``Retry-After`` lives in those headers. So the adapter
gives the client its own HTTP client, which remembers each thread's last response and
can point the library at a loopback server in tests (``base_url``).

After a worker died mid-send, ``find`` reads the messages to the customer's number
(newest first) for one whose body holds the link's URL: the token in it is unique to
this link. Found: its SID is the receipt and nothing is sent again. Not found in a
history shorter than one page (``LOOKUP_PAGE``): it never went out. A full page without
it, or a failed lookup: Twilio cannot tell, and the link is sent again.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import requests
import structlog
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from workers.notifications.render import render
from workers.providers.failures import classify, unreachable
from workers.providers.fields import log_fields

PROVIDER = "twilio"
#: Where ``paylink web`` takes Twilio's status callbacks (``workers.web.hooks``).
STATUS_CALLBACK_PATH = "/hooks/twilio"
#: Messages to one number read by ``find``; a longer history makes the answer unknown.
LOOKUP_PAGE = 100

log = structlog.get_logger("paylink.providers")


def status_callback_url(public_url: str, order_id: UUID, link_id: UUID) -> str:
    """The status callback a message is sent with: it names the link (Twilio signs the
    whole URL, so the ids cannot be changed on the way back)."""
    return f"{public_url.rstrip('/')}{STATUS_CALLBACK_PATH}?order={order_id}&link={link_id}"


class _RecordingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # SDK is untyped
    """Twilio's requests-based client, re-rooted at ``base_url`` and keeping responses."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url) if base_url else None
        self._local = threading.local()

    def request(
        self,
        method: str,
        url: str,
        *args: Any,  # Any: passed through to the untyped SDK as it calls us
        **kwargs: Any,  # Any: as above
    ) -> Response:
        if self._base is not None:
            target = urlsplit(url)
            url = urlunsplit(
                (
                    self._base.scheme,
                    self._base.netloc,
                    self._base.path.rstrip("/") + target.path,
                    target.query,
                    target.fragment,
                )
            )
        self.forget()
        response = super().request(method, url, *args, **kwargs)
        self._local.response = response
        return response

    def forget(self) -> None:
        self._local.response = None

    def last_response(self) -> Response | None:
        """This thread's most recent response (the notifier may serve several threads)."""
        response: Response | None = getattr(self._local, "response", None)
        return response


class TwilioNotifier:
    """Sends the SMS rendering of a payment link from a number or a messaging service."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        base_url: str | None = None,
        timeout: float = 10,
        public_url: str | None = None,
    ) -> None:
        #: ``paylink web`` as Twilio reaches it: messages ask for status callbacks there.
        self._public_url = public_url
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs a from number or a messaging service SID")
        self._http = _RecordingHttpClient(base_url, timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # A messaging service picks the sender itself (and handles opt-outs); prefer it.
        self._sender: dict[str, str] = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_number or ""}
        )

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        bound = log.bind(**log_fields(PROVIDER, notification))
        body = render(notification).sms
        self._http.forget()  # so a failure before any request never reads a stale answer
        try:
            message = self._client.messages.create(
                to=notification.recipient, body=body, **self._sender, **self._callback(notification)
            )
        except TwilioException:
            response = self._http.last_response()
            if response is None:
                raise  # not an HTTP answer: a programming or configuration error
            reason, code = _error_text(response)
            failure = classify(
                PROVIDER,
                response.status_code,
                reason,
                headers=response.headers,
                recipient=notification.recipient,
                provider_code=code,
            )
            bound.warning("notification.failed", error=str(failure), status=response.status_code)
            # ``from None``: the library's message quotes the raw phone number.
            raise failure from None
        except requests.RequestException as error:  # connection refused, reset, timeout
            failure = unreachable(PROVIDER, error, notification.recipient)
            bound.warning("notification.failed", error=str(failure))
            raise failure from None
        sid = str(message.sid or "")
        bound.info("notification.sent", provider_message_id=sid)
        return DeliveryReceipt(provider=PROVIDER, provider_message_id=sid)

    def _callback(self, notification: PaymentLinkNotification) -> dict[str, str]:
        if not self._public_url:
            return {}
        url = status_callback_url(
            self._public_url, notification.order_id, notification.notification_id
        )
        return {"status_callback": url}

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        bound = log.bind(**log_fields(PROVIDER, notification))
        try:
            history = self._client.messages.list(
                to=notification.recipient, limit=LOOKUP_PAGE, page_size=LOOKUP_PAGE
            )
        except (TwilioException, requests.RequestException) as error:
            # The error text may quote the phone number: log only its type.
            bound.warning("notification.lookup_failed", error=type(error).__name__)
            return Trace.UNKNOWN
        for message in history:
            if notification.link_url in (message.body or ""):
                sid = str(message.sid or "")
                bound.info("notification.looked_up", found=True, provider_message_id=sid)
                return DeliveryReceipt(provider=PROVIDER, provider_message_id=sid)
        complete = len(history) < LOOKUP_PAGE
        bound.info("notification.looked_up", found=False, messages=len(history), complete=complete)
        return Trace.NOT_SENT if complete else Trace.UNKNOWN


def _error_text(response: Response) -> tuple[str, str]:
    """Reason and code from Twilio's error body (legacy or RFC 9457 problem shape)."""
    try:
        payload: object = json.loads(response.text or "")
    except ValueError:
        return (response.text or "").strip()[:500], str(response.status_code)
    if not isinstance(payload, dict):
        return str(payload)[:500], str(response.status_code)
    reason = payload.get("message") or payload.get("detail") or payload.get("title") or ""
    code = payload.get("code")
    return str(reason), str(code if code is not None else response.status_code)
