"""The proof a CheckoutCompleted carries that paylink's own checkout reported it.

The hosted checkout (``paylink web``) signs what it reports with a key it shares with
the workers; a worker that requires proofs (``PAYLINK_CHECKOUT_PROOF_REQUIRED``)
refuses a report without a valid one (``CHECKOUT_PROOF_INVALID``), so a party that
learnt a link's token cannot complete its order with an invented authorization. The
signed bytes::

    paylink-checkout-completed/v1
    <sha256 hex of the token>
    <authorization_id>
    <authorized_amount>
    <currency>
    <payment_method or empty>
    <key_id>
    <signed_at, ISO 8601 UTC>

joined by newlines, HMAC-SHA256 with the key ``key_id`` names, lower-case hex. Several
keys may be configured while one rotates; a proof older than :data:`MAX_AGE` is refused
(a report is signed when it is sent; retries keep their proof).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from domain.links import hash_token
from messages.commands import CheckoutCompleted, CheckoutProof

#: How old a proof may be when a worker applies it: the runtime's longest retry backoff
#: (5 min) with room for a backlog; older reports are refused, not believed.
MAX_AGE = timedelta(hours=1)
VERSION = "paylink-checkout-completed/v1"


def _message(command: CheckoutCompleted, key_id: str, signed_at: datetime) -> bytes:
    parts = (
        VERSION,
        hash_token(command.token),
        command.authorization_id,
        str(command.authorized_amount),
        str(command.currency),
        command.payment_method or "",
        key_id,
        signed_at.astimezone(UTC).isoformat(),
    )
    return "\n".join(parts).encode()


def sign(command: CheckoutCompleted, key_id: str, key: bytes, now: datetime) -> CheckoutCompleted:
    """``command`` with its proof (the checkout calls this just before publishing)."""
    signed_at = now.astimezone(UTC)
    mac = hmac.new(key, _message(command, key_id, signed_at), hashlib.sha256).hexdigest()
    proof = CheckoutProof(key_id=key_id, signed_at=signed_at, signature=mac)
    return command.model_copy(update={"proof": proof})


class HmacCheckoutProofs:
    """``domain.ports.CheckoutProofs`` over the configured keys."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        required: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.keys, self.required, self.clock = dict(keys), required, clock

    def problem(self, command: CheckoutCompleted) -> str | None:
        proof = command.proof
        if proof is None:
            return "the checkout's proof is missing" if self.required else None
        key = self.keys.get(proof.key_id)
        if key is None:
            return f"the checkout's proof names an unknown key {proof.key_id!r}"
        expected = hmac.new(
            key, _message(command, proof.key_id, proof.signed_at), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, proof.signature):
            return "the checkout's proof does not match what it reports"
        age = self.clock() - proof.signed_at
        if not timedelta(minutes=-5) <= age <= MAX_AGE:
            return f"the checkout's proof was signed {proof.signed_at.isoformat()}, out of time"
        return None
