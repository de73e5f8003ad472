"""The embedded default notifier: a directory a person can open and read.

Each email is a real RFC 5322 ``.eml`` file (any mail client opens it) and each SMS a
``.json`` file, named by notification id: a redelivered command rewrites the same file
instead of adding a second message, just as the customer would get only one. Files
are written to a temporary name and renamed, so a reader never sees half a message:
a file that exists was delivered whole, which is how ``find`` answers after a worker
died mid-send.

Given ``report``, it also says each message was delivered, as a provider's webhook
would (``RecordLinkDelivery``, command id from the notification: a rewritten file
reports the same delivery again, which changes nothing), so the demo's timelines show
``link.delivered``. A report that cannot be handed over is logged and dropped: the
message itself was delivered.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path

import structlog

from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from messages.commands import RecordLinkDelivery
from workers.notifications.render import RenderedMessage, render
from workers.notifications.sms import sms_encoding, sms_segments
from workers.providers.fields import log_fields

PROVIDER = "local"

log = structlog.get_logger("paylink.providers")


class LocalOutboxNotifier:
    """Writes what the customer would receive into ``directory`` instead of sending it."""

    def __init__(
        self,
        directory: Path,
        *,
        from_email: str = "no-reply@paylink.example",
        report: Callable[[RecordLinkDelivery], None] | None = None,
    ) -> None:
        self._directory = Path(directory)
        self._from_email = from_email
        self._report = report

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        message = render(notification)
        name = _file_name(notification)
        if notification.channel == "email":
            content = self._email(notification, message)
        else:
            content = _sms_json(notification, message)
        _write_atomically(self._directory / name, content)
        log.info(
            "notification.sent", **log_fields(PROVIDER, notification), provider_message_id=name
        )
        if self._report is not None:
            self._report_delivered(notification, self._report)
        return DeliveryReceipt(provider=PROVIDER, provider_message_id=name)

    @staticmethod
    def _report_delivered(
        notification: PaymentLinkNotification, report: Callable[[RecordLinkDelivery], None]
    ) -> None:
        command = RecordLinkDelivery(
            command_id=uuid.uuid5(notification.notification_id, "local-outbox-delivered"),
            issued_at=datetime.now(UTC),
            order_id=notification.order_id,
            link_id=notification.notification_id,
            channel=notification.channel,
            provider=PROVIDER,
            outcome="delivered",
        )
        try:
            report(command)
        except Exception as exc:  # any broker failure: the message itself went out
            log.warning("delivery report not sent", error=type(exc).__name__)

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        """The file is renamed into place whole, so it exists iff it was delivered."""
        name = _file_name(notification)
        found = (self._directory / name).exists()
        log.info("notification.looked_up", **log_fields(PROVIDER, notification), found=found)
        if found:
            return DeliveryReceipt(provider=PROVIDER, provider_message_id=name)
        return Trace.NOT_SENT

    def _email(self, notification: PaymentLinkNotification, message: RenderedMessage) -> bytes:
        return email_bytes(
            notification, message, from_email=self._from_email, date=datetime.now(UTC)
        )


def _file_name(notification: PaymentLinkNotification) -> str:
    suffix = "eml" if notification.channel == "email" else "json"
    return f"{notification.notification_id}.{suffix}"


def email_bytes(
    notification: PaymentLinkNotification,
    message: RenderedMessage,
    *,
    from_email: str,
    date: datetime,
) -> bytes:
    """The ``.eml`` of ``notification``: the bytes ``email.mime`` writes with the
    ``compat32`` policy and CRLF line endings, without its generic generator.

    The structure is fixed (multipart/alternative: a text and an HTML part in UTF-8),
    so only what varies goes through ``email``: the sender name, the subject and any
    header that is not short plain ASCII are encoded and folded by ``email.header``
    exactly as the generator would do it. 0.18 against 0.8 to 0.95 ms of CPU per email
    the generic way (1,000 calls each); a property test holds both byte for byte equal.
    """
    boundary = f"=_paylink_{notification.notification_id.hex}"
    domain = from_email.rpartition("@")[2] or "paylink.local"
    lines = [
        f'Content-Type: multipart/alternative;{_CRLF} boundary="{boundary}"',
        "MIME-Version: 1.0",
        _from(message.sender_name, from_email),
        _folded("To", notification.recipient),
        _subject(message.subject),
        _folded("Date", format_datetime(date)),
        # Stable id: the rewritten file is the same message, not a new one.
        _folded("Message-ID", f"<{notification.notification_id}@{domain}>"),
        f"X-Paylink-Notification-Id: {notification.notification_id}",
        f"X-Paylink-Order-Id: {notification.order_id}",
        "",
        f"--{boundary}",
        _part(message.text, "plain"),
        f"--{boundary}",
        _part(message.html, "html"),
        f"--{boundary}--",
        "",
    ]
    return _CRLF.join(lines).encode("utf-8")


_CRLF = "\r\n"
#: What ``compat32`` writes unchanged: printable ASCII, single spaces, within 78.
_PLAIN_HEADER = re.compile(r"[!-~]+(?: [!-~]+)*")


# A store's sender name and subject repeat from link to link; encoding and folding a
# non-ASCII subject is a third of an .eml's CPU (quoted-printable lengths, recomputed
# per character), so each is done once.
@lru_cache(maxsize=1024)
def _from(sender_name: str, from_email: str) -> str:
    return _folded("From", formataddr((sender_name, from_email), charset="utf-8"))


@lru_cache(maxsize=1024)
def _subject(subject: str) -> str:
    return "Subject: " + Header(subject, "utf-8").encode(linesep=_CRLF, maxlinelen=78)


def _folded(name: str, value: str) -> str:
    """``name: value`` as ``compat32`` writes it (folded and encoded only if needed)."""
    line = f"{name}: {value}"
    if len(line) <= 78 and _PLAIN_HEADER.fullmatch(value):
        return line
    return f"{name}: " + Header(value, header_name=name).encode(linesep=_CRLF, maxlinelen=78)


def _part(body: str, subtype: str) -> str:
    """A UTF-8 body part: 8bit, or 7bit when it is all ASCII (as ``email.encoders``
    decides), with every line break written as CRLF."""
    encoding = "7bit" if body.isascii() else "8bit"
    lines = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", _CRLF)
    return _CRLF.join(
        [
            f'Content-Type: text/{subtype}; charset="utf-8"',
            "MIME-Version: 1.0",
            f"Content-Transfer-Encoding: {encoding}",
            "",
            lines,
        ]
    )


def _sms_json(notification: PaymentLinkNotification, message: RenderedMessage) -> bytes:
    document = {
        "notification_id": str(notification.notification_id),
        "order_id": str(notification.order_id),
        "to": notification.recipient,
        "body": message.sms,
        "encoding": sms_encoding(message.sms),
        "segments": sms_segments(message.sms),
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _write_atomically(path: Path, content: bytes) -> None:
    """Write beside the target, flush to disk, then rename over it in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
