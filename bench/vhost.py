"""The bench runs in its own RabbitMQ virtual host.

Other engineers' tests use the same queue names on the same broker; a vhost of its
own keeps the bench from consuming their commands (and theirs from counting ours).
Created through the management API (the broker's default plugin set here) and
announced to ``tests.services`` through ``TEST_BROKER_URL``.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
import urllib.request

VHOST = os.environ.get("BENCH_VHOST", "paylink-bench")
MANAGEMENT = os.environ.get("BENCH_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672")
USER, PASSWORD = "guest", "guest"


def _put(path: str, body: bytes) -> None:
    request = urllib.request.Request(f"{MANAGEMENT}{path}", data=body, method="PUT")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def use_bench_vhost() -> str:
    """Create the vhost (idempotent), grant guest, point the harness at it; return the URL."""
    quoted = urllib.parse.quote(VHOST, safe="")
    _put(f"/api/vhosts/{quoted}", b"{}")
    _put(
        f"/api/permissions/{quoted}/{USER}",
        b'{"configure": ".*", "write": ".*", "read": ".*"}',
    )
    url = f"amqp://{USER}:{PASSWORD}@127.0.0.1:5672/{quoted}"
    os.environ["TEST_BROKER_URL"] = url
    return url
