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
from urllib.parse import urlencode, urlsplit
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
    #: For an external checkout: what its callback names the link by (the link's token),
    #: and where it sends the customer back (the receipt page).
    session: str = ""
    return_url: str = ""


@dataclass(frozen=True, slots=True)
class Approved:
    authorization_id: str
    payment_method: str


@dataclass(frozen=True, slots=True)
class Declined:
    reason: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """Paying happens on the gateway's own page; its verified callback reports the result."""

    url: str


class GatewayUnavailable(Exception):
    """The gateway did not answer: whether it authorized is unknown, so retry with the
    same idempotency key (which returns the first answer if there was one)."""


class CheckoutGateway(Protocol):
    #: Shown on the page when the gateway is a test one (no money moves).
    sandbox: bool

    def authorize(self, request: AuthorizationRequest) -> Approved | Declined | Redirect:
        """Authorize ``request.amount``, or say where the customer pays it; raise
        :class:`GatewayUnavailable` if unsure."""
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


class ExternalGateway:
    """An external hosted checkout (README, "The customer's side"): the customer is sent
    there with the order's amount; the gateway's signed callback
    (``workers.web.external_checkout``) becomes ``CheckoutCompleted``."""

    sandbox = False

    def __init__(self, checkout_url: str) -> None:
        self.checkout_url = checkout_url
        parts = urlsplit(checkout_url)
        #: Where the pay form leads (the page's CSP allows it as a form-action).
        self.origin = f"{parts.scheme}://{parts.netloc}"

    def authorize(self, request: AuthorizationRequest) -> Redirect:
        query = urlencode(
            {
                "session": request.session,
                "amount": request.amount,
                "currency": request.currency,
                "reference": request.reference,
                "return_url": request.return_url,
            }
        )
        separator = "&" if "?" in self.checkout_url else "?"
        return Redirect(f"{self.checkout_url}{separator}{query}")


def build_gateway(name: str, external_url: str | None = None) -> CheckoutGateway:
    if name == "sandbox":
        return SandboxGateway()
    if name == "external" and external_url:
        return ExternalGateway(external_url)
    raise ValueError(f"unknown checkout gateway {name!r}")
