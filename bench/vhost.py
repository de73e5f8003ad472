"""The bench runs in its own RabbitMQ virtual host.

Other engineers' tests use the same queue names on the same broker; a vhost of its
own keeps the bench from consuming their commands (and theirs from counting ours).
Created through the management API and announced to ``tests.services`` through
``TEST_BROKER_URL``. A fresh machine's broker runs without the management plugin:
the bench enables it (as ``.ci/run`` does) and waits for the API.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

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


def _with_management(call: Callable[[], None], timeout: float = 60.0) -> None:
    """Make ``call`` (a management API request); if the API does not answer, enable
    the management plugin once and retry until it does."""
    deadline: float | None = None
    while True:
        try:
            return call()
        except urllib.error.HTTPError:
            raise
        except urllib.error.URLError:
            if deadline is None:
                _enable_management_plugin()
                deadline = time.monotonic() + timeout
            elif time.monotonic() > deadline:
                raise SystemExit(
                    f"bench: the management API ({MANAGEMENT}) did not come up"
                ) from None
            time.sleep(0.5)


def _enable_management_plugin() -> None:
    plugins = shutil.which("rabbitmq-plugins")
    if plugins is None:
        raise SystemExit(
            f"bench: the RabbitMQ management API ({MANAGEMENT}) does not answer and "
            "rabbitmq-plugins is not on PATH; enable rabbitmq_management on the broker"
        )
    print("bench: enabling the RabbitMQ management plugin", flush=True)
    subprocess.run([plugins, "enable", "--quiet", "rabbitmq_management"], check=True)


def use_bench_vhost() -> str:
    """Create the vhost (idempotent), grant guest, point the harness at it; return the URL."""
    quoted = urllib.parse.quote(VHOST, safe="")
    _with_management(lambda: _put(f"/api/vhosts/{quoted}", b"{}"))
    _put(
        f"/api/permissions/{quoted}/{USER}",
        b'{"configure": ".*", "write": ".*", "read": ".*"}',
    )
    url = f"amqp://{USER}:{PASSWORD}@127.0.0.1:5672/{quoted}"
    os.environ["TEST_BROKER_URL"] = url
    return url
