"""Realistic commands for end-to-end tests, built as an upstream system would."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from messages import commands as c
from messages.common import CommandBase
from workers.devtools.harness import now

C = TypeVar("C", bound=CommandBase)

STORE = "store-it"
ADMIN = {"user_id": "merchant-admin", "role": "Admin", "store_ids": [STORE]}
LINES = [
    {
        "name": "Running shoe",
        "reference": "SHOE-42",
        "quantity": 2,
        "unit_price": 50_000,
        "tax_rate": 2500,
    },
    {"name": "Socks", "reference": "SOCK-1", "quantity": 1, "unit_price": 10_000, "tax_rate": 2500},
    {
        "name": "Welcome discount",
        "reference": "DISC",
        "type": "discount",
        "quantity": 1,
        "unit_price": -5_000,
        "tax_rate": 2500,
    },
]
ORDER_AMOUNT = 105_000


def configure_store(**kw: Any) -> c.ConfigureStore:
    data = {
        "actor": ADMIN,
        "store_id": STORE,
        "store_name": "Nordic Shoes",
        "terms_url": "https://shoes.example/terms",
        "agreement_currencies": ["SEK", "EUR"],
        **kw,
    }
    return c.ConfigureStore(command_id=uuid.uuid4(), issued_at=now(), **data)


def create_order(
    order_id: uuid.UUID | None = None,
    *,
    email: str | None = "anna@example.com",
    phone: str | None = None,
    **kw: Any,
) -> c.CreateOrder:
    customer = {"email": email} if phone is None else {"phone": phone}
    data = {
        "actor": ADMIN,
        "order_id": order_id or uuid.uuid4(),
        "store_id": STORE,
        "customer": customer,
        "purchase_country": "SE",
        "merchant_reference1": "PO-1001",
        "order_lines": LINES,
        **kw,
    }
    return c.CreateOrder(command_id=uuid.uuid4(), issued_at=now(), **data)


def merchant(cls: type[C], order_id: uuid.UUID, **kw: Any) -> C:
    """A merchant command on ``order_id``, issued now by the store's admin."""
    fields: dict[str, Any] = {"actor": ADMIN, "order_id": order_id, **kw}
    return cls(command_id=uuid.uuid4(), issued_at=now(), **fields)


def opened(token: str) -> c.PaymentLinkOpened:
    return c.PaymentLinkOpened(command_id=uuid.uuid4(), issued_at=now(), token=token)


def completed(token: str, amount: int = ORDER_AMOUNT, currency: str = "SEK") -> c.CheckoutCompleted:
    return c.CheckoutCompleted(
        command_id=uuid.uuid4(),
        issued_at=now(),
        token=token,
        authorization_id=f"auth-{uuid.uuid4().hex[:8]}",
        authorized_amount=amount,
        currency=currency,
    )
