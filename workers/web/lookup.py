"""Reading an order by its link token, for the page: SQLAlchemy Core, read only.

The page never changes an order: opening and paying are commands the workers apply
(``PaymentLinkOpened``, ``CheckoutCompleted``), so a dead link here is only shown,
never acted on. The state mirrors the rule the domain applies to those commands
(``Order._live_link``): replaced, cancelled, paid, expired, in that order.

Every lookup costs the same database work whether the token is known or not (one
statement for the link, its order and store, one for the lines, of a placeholder
order when there is none), so the answer time does not tell a guesser which tokens
exist.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, select

from domain.links import hash_token
from domain.status import LinkStatus
from workers.storage import tables as t

#: What a link token looks like (``messages.commands.LinkToken``).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_\-]{22,128}")
#: Looked up in place of a malformed token, so it costs what a real lookup costs.
_NO_HASH = hashlib.sha256(b"no such token").hexdigest()
#: Whose lines are read when no order was found (no order has the nil UUID).
_NO_ORDER = UUID(int=0)


class LinkState(StrEnum):
    LIVE = "live"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    PAID = "paid"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    type: str
    quantity: int
    unit_price: int
    total_discount_amount: int
    total_amount: int
    total_tax_amount: int


@dataclass(frozen=True, slots=True)
class LinkView:
    """What the page shows for one token. Only ``state`` is set for an unknown token."""

    state: LinkState
    link_id: UUID | None = None
    order_id: UUID | None = None
    link_status: LinkStatus | None = None
    store_name: str = ""
    terms_url: str | None = None
    purchase_country: str = ""
    currency: str = ""
    reference: str = ""
    order_amount: int = 0
    order_tax_amount: int = 0
    expires_at: datetime | None = None
    lines: tuple[Line, ...] = ()

    @property
    def opened(self) -> bool:
        return self.link_status is not LinkStatus.CREATED


_LINK_QUERY = select(
    t.links.c.link_id,
    t.links.c.expires_at,
    t.orders.c.order_id,
    t.orders.c.current_link_id,
    t.orders.c.link_status,
    t.orders.c.purchase_country,
    t.orders.c.currency,
    t.orders.c.merchant_reference1,
    t.orders.c.order_amount,
    t.orders.c.order_tax_amount,
    t.stores.c.name.label("store_name"),
    t.stores.c.terms_url,
).select_from(
    t.links.join(t.orders, t.orders.c.order_id == t.links.c.order_id).outerjoin(
        t.stores, t.stores.c.store_id == t.orders.c.store_id
    )
)

_LINES_QUERY = select(
    t.order_lines.c.name,
    t.order_lines.c.type,
    t.order_lines.c.quantity,
    t.order_lines.c.unit_price,
    t.order_lines.c.total_discount_amount,
    t.order_lines.c.total_amount,
    t.order_lines.c.total_tax_amount,
).order_by(t.order_lines.c.position)


def token_hash(token: str) -> str:
    """The stored hash of a well-formed token; a placeholder for anything else."""
    return hash_token(token) if TOKEN_PATTERN.fullmatch(token) else _NO_HASH


def link_state(status: LinkStatus, current: bool, expires_at: datetime, now: datetime) -> LinkState:
    """The domain's order of checks (``Order._live_link``), as a page to show."""
    if not current:
        return LinkState.SUPERSEDED
    if status is LinkStatus.CANCELLED:
        return LinkState.CANCELLED
    if status is LinkStatus.COMPLETED:
        return LinkState.PAID
    if status is LinkStatus.EXPIRED or now >= expires_at:
        return LinkState.EXPIRED
    return LinkState.LIVE


def find_link(engine: Engine, token: str, now: datetime) -> LinkView:
    with engine.connect() as conn:
        row = conn.execute(
            _LINK_QUERY.where(t.links.c.token_hash == token_hash(token))
        ).one_or_none()
        lines = conn.execute(
            _LINES_QUERY.where(
                t.order_lines.c.order_id == (row.order_id if row is not None else _NO_ORDER)
            )
        ).all()
    if row is None:
        return LinkView(LinkState.UNKNOWN)
    status = LinkStatus(row.link_status)
    return LinkView(
        state=link_state(status, row.current_link_id == row.link_id, row.expires_at, now),
        link_id=row.link_id,
        order_id=row.order_id,
        link_status=status,
        store_name=row.store_name or "",
        terms_url=row.terms_url,
        purchase_country=row.purchase_country,
        currency=row.currency,
        reference=row.merchant_reference1,
        order_amount=row.order_amount,
        order_tax_amount=row.order_tax_amount,
        expires_at=row.expires_at,
        lines=_lines(lines),
    )


def _lines(rows: Sequence[Any]) -> tuple[Line, ...]:
    return tuple(Line(**row._asdict()) for row in rows)
