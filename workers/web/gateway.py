"""The checkout gateway port, and the sandbox gateway paylink embeds by default.

The page takes the payment through a :class:`CheckoutGateway`: it asks for an
authorization of the order's exact amount, and on approval reports
``CheckoutCompleted`` with the gateway's authorization id. A gateway is called with
an idempotency key (the link's id): asking again for the same link returns the same
authorization, so a double-clicked pay button or a retry after a lost answer can
never authorize twice, and the command the page publishes stays the same command.

The sandbox moves no money. Its outcome is chosen on the page (the "test outcome"
field), as test card numbers choose it at a real provider:

- ``approve``: authorized; the id is ``sbx_`` and 24 hex digits derived from the key.
- ``decline``: refused (as a card issuer would); nothing is reported.
- ``error``: the provider failed to answer (as on a timeout); nothing is reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    #: The same key for every attempt to pay one link (the link id).
    idempotency_key: str
    order_id: UUID
    amount: int
    currency: str
    reference: str
    #: What the customer entered in the payment form (the sandbox: ``outcome``).
    method_data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Approved:
    authorization_id: str
    payment_method: str


@dataclass(frozen=True, slots=True)
class Declined:
    reason: str


class GatewayUnavailable(Exception):
    """The gateway did not answer: whether it authorized is unknown, so retry with the
    same idempotency key (which returns the first answer if there was one)."""


class CheckoutGateway(Protocol):
    #: Shown on the page when the gateway is a test one (no money moves).
    sandbox: bool

    def authorize(self, request: AuthorizationRequest) -> Approved | Declined:
        """Authorize ``request.amount``; raise :class:`GatewayUnavailable` if unsure."""
        ...


class SandboxOutcome(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    ERROR = "error"


class SandboxGateway:
    """Answers at once, deterministically, from the outcome the customer chose."""

    sandbox = True

    def authorize(self, request: AuthorizationRequest) -> Approved | Declined:
        outcome = request.method_data.get("outcome", SandboxOutcome.APPROVE)
        if outcome == SandboxOutcome.DECLINE:
            return Declined("sandbox: declined on request")
        if outcome == SandboxOutcome.ERROR:
            raise GatewayUnavailable("sandbox: provider error on request")
        if outcome != SandboxOutcome.APPROVE:
            return Declined(f"sandbox: unknown test outcome {outcome[:32]!r}")
        digest = hashlib.sha256(f"sandbox:{request.idempotency_key}".encode()).hexdigest()
        return Approved(authorization_id=f"sbx_{digest[:24]}", payment_method="sandbox")


def build_gateway(name: str) -> CheckoutGateway:
    if name == "sandbox":
        return SandboxGateway()
    raise ValueError(f"unknown checkout gateway {name!r}")
