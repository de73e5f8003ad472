"""What keeps the link page safe: headers, the pay form's CSRF check, a rate limit on
token lookups, and an access log that never holds a token.

The token is the only secret between paylink and the customer, and it is in the path
(never in a query string or a form), so: no referrer is sent anywhere
(``Referrer-Policy: no-referrer``, and no third-party resource is loaded at all:
``default-src 'none'``), the page cannot be framed, nothing is cached, and the access
log writes the route (``/l/{token}``), never the path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from uuid import UUID

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = structlog.get_logger("paylink.web.access")

#: No origin but our own, for anything; the form posts only to us; no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    # An order page holds personal data and a live token: never store it.
    (b"cache-control", b"no-store"),
)
#: Sent only over https: a browser would pin plain-http 127.0.0.1 otherwise.
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """ASGI middleware: the headers above on every response, whatever produced it.

    ``form_origins``: where the pay form may lead besides us (an external checkout's
    origin: browsers hold the redirect after a form post to ``form-action`` too)."""

    def __init__(self, app: ASGIApp, form_origins: Sequence[str] = ()) -> None:
        self.app = app
        policy = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", " ".join(("form-action 'self'", *form_origins))
        )
        self.headers = tuple(
            (name, policy.encode() if name == b"content-security-policy" else value)
            for name, value in SECURITY_HEADERS
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {b"content-security-policy", b"referrer-policy", b"cache-control"}
                headers = [(k, v) for k, v in message.get("headers", []) if k not in names]
                headers += [*self.headers, *((HSTS,) if https else ())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class AccessLog:
    """ASGI middleware: one line per request with the route template, never the path.

    Replaces uvicorn's access log (``access_log=False``), which writes the raw path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            access_log.info(
                "request",
                method=scope["method"],
                route=getattr(route, "path", "(unmatched)"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


class CsrfSigner:
    """Signed double-submit: a random cookie, and in the form an HMAC of it and the link.

    A forged form from another site cannot read the cookie (HttpOnly) and does not get
    it sent with its POST (SameSite=Lax), so it cannot produce the field; the field of
    one link does not pay another.
    """

    COOKIE = "paylink_csrf"

    def __init__(self, key: bytes) -> None:
        self._key = key

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def field(self, cookie: str, link_id: UUID) -> str:
        mac = hmac.new(self._key, f"{cookie}:{link_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def valid(self, cookie: str | None, link_id: UUID, field: str | None) -> bool:
        if not cookie or not field:
            return False
        return hmac.compare_digest(self.field(cookie, link_id), field)


class RateLimiter:
    """At most ``limit`` token lookups per client address in any ``window`` seconds.

    In memory, per process: enough to make guessing 256-bit tokens pointless and to
    keep one client from loading the database; several replicas each allow ``limit``.
    """

    #: Addresses tracked at most; the oldest are forgotten first.
    MAX_CLIENTS = 100_000

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float | None:
        """None if allowed (and counted); else the seconds until the next is allowed."""
        now = self._clock()
        with self._lock:
            hits = self._hits.pop(client, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            self._hits[client] = hits  # most recent last, for the eviction below
            if len(hits) >= self.limit:
                return max(0.0, hits[0] + self.window - now)
            hits.append(now)
            if len(self._hits) > self.MAX_CLIENTS:
                del self._hits[next(iter(self._hits))]
            return None
