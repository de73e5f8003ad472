"""/metrics, /healthz and /readyz of the relay, the scheduler, the exporter and the web
process, and of a worker group's server (``workers.cli.worker_health``).

prometheus_client is imported at the top here, so a worker process must not import
this module before Dramatiq's Prometheus middleware has set the multiprocess directory
(prometheus_client picks its value class when first imported): the worker path imports
only ``workers.observability.logs``, and the group's server imports this in its fork.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


class _HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/readyz":
            ready = self.server.is_ready()
            self._reply(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
        else:
            self._reply(404, b"not found\n")

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the log; stay quiet."""


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], ready: Callable[[], bool], registry: CollectorRegistry
    ) -> None:
        super().__init__(address, _HealthHandler)
        self.ready, self.registry = ready, registry

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def is_ready(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # a failing probe means "not ready", never a crashed server
            logging.getLogger(__name__).warning("readiness check failed", exc_info=True)
            return False


def start_health_server(
    port: int,
    ready: Callable[[], bool],
    *,
    registry: CollectorRegistry | None = None,
    host: str = "0.0.0.0",  # noqa: S104 - probes and Prometheus come from outside the pod
) -> HealthServer:
    """Serve /metrics, /healthz (200 while the process runs) and /readyz (200 if ready()).

    Serves ``registry`` (default: prometheus_client's global one) in a daemon thread;
    port 0 picks a free port (see ``HealthServer.port``).
    """
    if registry is None:
        registry = REGISTRY
    server = HealthServer((host, port), ready, registry)
    thread = threading.Thread(target=server.serve_forever, name=f"health:{port}", daemon=True)
    thread.start()
    return server
