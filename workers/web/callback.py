"""Verifying an external checkout's callback before anything in it is believed.

The contract (README, "The customer's side"): the checkout POSTs its result as JSON
and signs the exact bytes it sent, with a secret paylink holds for that gateway::

    Paylink-Timestamp: 1795262400
    Paylink-Signature: v1=<hex HMAC-SHA256(secret, b"1795262400." + body)>

A callback is believed only if one ``v1`` value matches under one of the gateway's
secrets (several while a secret rotates; compared in constant time), its timestamp is
within :data:`REPLAY_WINDOW_SECONDS` of paylink's clock, and that signature was not
accepted before. The timestamp is inside the signature, so an old callback cannot be
made fresh, and a fresh one cannot be replayed within the window.

The replay memory is per process. It is a second line: what a callback leads to,
``CheckoutCompleted``, has a command id derived from the link, so a replay that
reaches another replica is the same command and has no second effect.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping, Sequence

#: How far a callback's timestamp may be from our clock, either way (clock skew plus
#: the gateway's retries of one delivery; a later retry must be signed anew).
REPLAY_WINDOW_SECONDS = 300
SCHEME = "v1"


class CallbackRefused(Exception):
    """Answered 403 and nothing changes. ``code`` is stable; the message is for logs."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Paylink-Signature`` value a gateway sends (and the tests build)."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


class CallbackVerifier:
    def __init__(
        self,
        secrets: Mapping[str, Sequence[bytes]],
        *,
        window: float = REPLAY_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = secrets
        self._window = window
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(
        self, gateway: str, timestamp: str | None, signature: str | None, body: bytes
    ) -> None:
        """Return if the callback is authentic, fresh and new; else raise CallbackRefused."""
        secrets = self._secrets.get(gateway)
        if not secrets:
            raise CallbackRefused("GATEWAY_UNKNOWN", f"no secret for gateway {gateway[:64]!r}")
        if not timestamp or not signature:
            raise CallbackRefused("SIGNATURE_MISSING", "Paylink-Timestamp or -Signature missing")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise CallbackRefused("TIMESTAMP_INVALID", "timestamp is not unix seconds") from None
        now = self._clock()
        if abs(now - sent_at) > self._window:
            raise CallbackRefused("TIMESTAMP_OUTSIDE_WINDOW", "callback too old or from the future")
        offered = [
            value.strip().removeprefix(f"{SCHEME}=")
            for value in signature.split(",")
            if value.strip().startswith(f"{SCHEME}=")
        ]
        expected = [sign(secret, sent_at, body).removeprefix(f"{SCHEME}=") for secret in secrets]
        matched = next(
            (o for o in offered for e in expected if hmac.compare_digest(o.encode(), e.encode())),
            None,
        )
        if matched is None:
            raise CallbackRefused("SIGNATURE_INVALID", "no signature matches the body")
        with self._lock:
            for seen, until in list(self._seen.items()):
                if until < now:
                    del self._seen[seen]
            if matched in self._seen:
                raise CallbackRefused("REPLAYED", "this callback was accepted before")
            self._seen[matched] = now + 2 * self._window
