"""Blocking AMQP connections for what publishes or inspects outside the workers: the
link page's publisher and the operators' commands (``paylink queues``, ``dlq``, ``publish``).

A cluster's nodes are tried in ``BROKER_URL``'s order, so one node down does not stop
them; a short timeout, so a person at a terminal hears about it in seconds.
"""

from __future__ import annotations

import pika

from workers.settings import broker_urls, first_broker_url


def connect(broker_url: str, *, timeout: float = 5.0) -> pika.BlockingConnection:
    """A blocking connection to the first reachable node of ``broker_url`` (';'-separated)."""
    candidates = []
    for url in broker_urls(broker_url):
        params = pika.URLParameters(url)
        params.socket_timeout = timeout
        params.blocked_connection_timeout = timeout
        params.connection_attempts = 1
        candidates.append(params)
    return pika.BlockingConnection(candidates)


def broker_location(broker_url: str) -> str:
    """``host:port`` of the first broker node, for messages (never the credentials)."""
    params = pika.URLParameters(first_broker_url(broker_url))
    return f"{params.host}:{params.port}"
