"""Logging and health endpoints shared by every paylink process.

Logs are one JSON object per line (or console output for people), from structlog and
from the standard library alike, so Dramatiq's and pika's records look like ours.
Email addresses and phone numbers are masked in every record as defense in depth:
code should never log them, and if it does, they still do not reach the log store.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from domain.notifications import mask_recipient
from workers.settings import Settings

if TYPE_CHECKING:
    # prometheus_client is imported only where a server starts: a worker process imports
    # this module for logging, and Dramatiq's metrics need prometheus_client imported
    # after their multiprocess directory is set (dramatiq.middleware.prometheus).
    from prometheus_client import CollectorRegistry

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
#: A "+" and 8 to 15 digits: an E.164 number as paylink stores it.
_PHONE = re.compile(r"(?<![\w+])\+\d{8,15}(?!\d)")


def mask_text(text: str) -> str:
    """``text`` with every email address and phone number masked."""
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_recipient(m.group(0)), text)
    if "+" in text:
        text = _PHONE.sub(lambda m: mask_recipient(m.group(0)), text)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_personal_data(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: mask emails and phone numbers in every value."""
    return {
        key: value if key.startswith("_") else _mask_value(value)
        for key, value in event_dict.items()
    }


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's line writer, with the name ``get_logger(name)`` gave it (for the
    ``logger`` key, as the standard library's records have)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, cache_loggers: bool = True
) -> None:
    """Route structlog and the standard library through one masking renderer.

    paylink's own records take structlog's native path (a filtering bound logger that
    renders and writes the line itself): 30 against 93 us of CPU per "command
    processed" line through the standard library's ``logging`` machinery (20,000 lines,
    best of 3, this machine). Records of Dramatiq, pika and other libraries go through
    ``logging`` and the same processors, so every line has the same shape.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    out = stream or sys.stderr
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: structlog.typing.Processor
    final: list[structlog.typing.Processor]
    if settings.log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [mask_personal_data, renderer]
    else:
        renderer = structlog.processors.JSONRenderer()
        final = [structlog.processors.format_exc_info, mask_personal_data, renderer]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *final],
        logger_factory=lambda name="paylink", *_: _NamedWriteLogger(out, name),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=cache_loggers,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # pika logs every connection step at INFO; its warnings are what matter.
    logging.getLogger("pika").setLevel(max(level, logging.WARNING))


class _HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

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
        from prometheus_client import REGISTRY

        registry = REGISTRY
    server = HealthServer((host, port), ready, registry)
    thread = threading.Thread(target=server.serve_forever, name=f"health:{port}", daemon=True)
    thread.start()
    return server
