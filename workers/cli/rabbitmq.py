"""What operators read of RabbitMQ from the command line: queue depths, the management API.

``paylink queues`` and ``paylink dlq`` need a blocking AMQP connection (passive
declares give ready messages and consumers) and, for unacknowledged counts, the
management API. Prometheus reads the same depths from RabbitMQ's own prometheus
plugin; nothing here runs at scrape time.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pika
from dramatiq.common import dq_name, xq_name

from messages.routing import ALL_QUEUES
from workers.runtime.amqp import connect
from workers.settings import Settings, first_broker_url

#: RabbitMQ management API port, used when PAYLINK_RABBITMQ_API_URL is not set.
MANAGEMENT_PORT = 15672


@dataclass(frozen=True, slots=True)
class ManagementApi:
    """Where the management API answers (its ``/api`` root) and who asks."""

    root: str
    user: str
    password: str

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> ManagementApi | None:
        """The API of ``url`` (or PAYLINK_RABBITMQ_API_URL, or the broker host on port
        15672); None when the URL is ``none``. Credentials: PAYLINK_RABBITMQ_API_USER /
        _PASSWORD, else those of the URL, else those of BROKER_URL."""
        given = url if url is not None else settings.rabbitmq_api_url
        broker = pika.URLParameters(first_broker_url(settings.broker_url))
        if given is not None and given.strip().lower() in ("", "none", "off"):
            return None
        parts = urlsplit(given or f"http://{broker.host}:{MANAGEMENT_PORT}")
        if parts.scheme not in ("http", "https"):
            return None
        password = settings.rabbitmq_api_password
        return cls(
            root=api_root(given or f"http://{broker.host}:{MANAGEMENT_PORT}"),
            user=settings.rabbitmq_api_user or parts.username or broker.credentials.username,
            password=(
                password.get_secret_value()
                if password is not None
                else parts.password or broker.credentials.password
            ),
        )


def api_root(url: str) -> str:
    """The management API root of ``url``, with or without the ``/api`` path given:
    ``http://h:15672`` and ``http://h:15672/api/`` are both ``http://h:15672/api``."""
    parts = urlsplit(url.strip())
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path.rstrip("/")
    if not path.endswith("/api"):
        path += "/api"
    return f"{parts.scheme}://{netloc}{path}"


def fetch_unacked(api: ManagementApi, vhost: str, *, timeout: float = 2.0) -> dict[str, int] | None:
    """Unacknowledged messages per queue of ``vhost``, or None if the API does not answer."""
    url = f"{api.root}/queues/{quote(vhost, safe='')}?columns=name,messages_unacknowledged"
    token = base64.b64encode(f"{api.user}:{api.password}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - http(s) only (ManagementApi)
        url, headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            rows = json.load(response)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if not isinstance(rows, list):
        return None
    return {
        row["name"]: int(row.get("messages_unacknowledged") or 0)
        for row in rows
        if isinstance(row, dict) and "name" in row
    }


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """One command queue. ``None`` means unknown: queue not declared, or no management API."""

    queue: str
    ready: int | None
    consumers: int | None
    unacked: int | None
    dead: int | None
    delayed: int | None


def inspect_queues(
    broker_url: str,
    queues: Sequence[str] = ALL_QUEUES,
    *,
    api: ManagementApi | None = None,
    timeout: float = 5.0,
) -> list[QueueDepth]:
    """Depths of ``queues`` and their dead-letter (.XQ) and delay (.DQ) queues."""
    connection = connect(broker_url, timeout=timeout)
    counts: dict[str, tuple[int, int]] = {}
    try:
        channel = connection.channel()
        for name in (n for q in queues for n in (q, xq_name(q), dq_name(q))):
            try:
                ok = channel.queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                channel = connection.channel()
                continue
            counts[name] = (ok.method.message_count, ok.method.consumer_count)
    finally:
        if connection.is_open:
            connection.close()
    vhost = pika.URLParameters(first_broker_url(broker_url)).virtual_host
    unacked = fetch_unacked(api, vhost) if api is not None else None

    def ready(name: str) -> int | None:
        return counts[name][0] if name in counts else None

    return [
        QueueDepth(
            queue=q,
            ready=ready(q),
            consumers=counts[q][1] if q in counts else None,
            unacked=None if unacked is None or q not in counts else unacked.get(q, 0),
            dead=ready(xq_name(q)),
            delayed=ready(dq_name(q)),
        )
        for q in queues
    ]
