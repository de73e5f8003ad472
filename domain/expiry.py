"""Link expiry without loading whole orders: the scheduler's many-at-once path.

When a day's links lapse, thousands are due at once. Expiring one needs only the
order's link status and its current link, not its lines, ledger or history, so the
scheduler reads those few columns for a batch of due orders (locked), and this module
applies the same rule ``Order.expire_link`` applies (:func:`check_link_expiry`) and
records the same ``link.expired`` event. What the order row becomes follows from the
rule: the link status, the order status shown in its history (the link status, as no
payment exists before checkout completes) and no further link deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.errors import DomainError, LinkError
from domain.status import LinkAction, LinkStatus, next_link_status
from messages import events as ev

#: Link statuses in which a deadline is live (``Order.link_due_at``).
LIVE_LINK_STATUSES = frozenset({LinkStatus.CREATED, LinkStatus.IN_PROGRESS})


def link_deadline(status: LinkStatus, expires_at: datetime | None) -> datetime | None:
    """When a link expiry applies: the link's expiry while the link is still live."""
    return expires_at if status in LIVE_LINK_STATUSES else None


def check_link_expiry(
    status: LinkStatus,
    current_link_id: UUID | None,
    link_id: UUID,
    expires_at: datetime,
    now: datetime,
) -> LinkStatus:
    """The link status after expiring ``link_id`` at ``now``, or a ``LinkError`` /
    ``ActionNotAllowed`` saying why it cannot expire (replaced, not due, completed)."""
    if current_link_id != link_id:
        raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
    if now < expires_at:
        raise LinkError(f"the link is valid until {expires_at.isoformat()}", code="LINK_NOT_DUE")
    return next_link_status(status, LinkAction.EXPIRE)


@dataclass(frozen=True, slots=True)
class DueLink:
    """An order whose link deadline has passed, as the scheduler read it (row locked)."""

    order_id: UUID
    store_id: str
    link_status: LinkStatus
    link_id: UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkExpiry:
    """An applied expiry: what the order row becomes, and the event to publish."""

    order_id: UUID
    link_status: LinkStatus
    event: ev.LinkExpired

    @property
    def status(self) -> str:
        """The order status of its history (no payment exists before completion)."""
        return self.link_status.value

    @property
    def link_due_at(self) -> datetime | None:
        return link_deadline(self.link_status, self.event.expired_at)


def expire_due_links(
    due: Iterable[DueLink], now: datetime, command_id: Callable[[DueLink], UUID]
) -> tuple[list[LinkExpiry], list[tuple[DueLink, DomainError]]]:
    """Apply the expiry rule to each due link: (applied, refused with the reason)."""
    applied: list[LinkExpiry] = []
    refused: list[tuple[DueLink, DomainError]] = []
    for d in due:
        try:
            status = check_link_expiry(d.link_status, d.link_id, d.link_id, d.expires_at, now)
        except DomainError as error:
            refused.append((d, error))
            continue
        event = ev.LinkExpired(
            event_id=uuid.uuid4(),
            occurred_at=now,
            command_id=command_id(d),
            order_id=d.order_id,
            store_id=d.store_id,
            link_id=d.link_id,
            expired_at=d.expires_at,
        )
        applied.append(LinkExpiry(d.order_id, status, event))
    return applied, refused
