"""Link expiry without loading whole orders: the scheduler's many-at-once path.

When a day's links lapse, thousands are due at once. Expiring one needs only the
order's link status and its current link, not its lines, ledger or history, so the
scheduler reads those few columns for a batch of due orders (locked), and this module
applies the rule ``Order.expire_link`` applies, by calling the same function
(:func:`expire`), which also makes the ``link.expired`` event. What the order row becomes follows from the
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


@dataclass(frozen=True, slots=True)
class DueLink:
    """What expiring a link reads of an order: its link status and current link. The
    aggregate builds one from itself; the scheduler from the few columns it locked."""

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


def expire(link: DueLink, link_id: UUID, now: datetime, cause: UUID | None) -> LinkExpiry:
    """The expiry rule, the only one: ``Order.expire_link`` and the scheduler's bulk path
    both call it, so they cannot disagree. Raises a ``LinkError`` (replaced, not due) or
    ``ActionNotAllowed`` (completed, cancelled, already expired) saying why not."""
    if link.link_id != link_id:
        raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
    if now < link.expires_at:
        raise LinkError(
            f"the link is valid until {link.expires_at.isoformat()}", code="LINK_NOT_DUE"
        )
    status = next_link_status(link.link_status, LinkAction.EXPIRE)
    event = ev.LinkExpired(
        event_id=uuid.uuid4(),
        occurred_at=now,
        command_id=cause,
        order_id=link.order_id,
        store_id=link.store_id,
        link_id=link.link_id,
        expired_at=link.expires_at,
    )
    return LinkExpiry(link.order_id, status, event)


def expire_due_links(
    due: Iterable[DueLink], now: datetime, command_id: Callable[[DueLink], UUID]
) -> tuple[list[LinkExpiry], list[tuple[DueLink, DomainError]]]:
    """:func:`expire` for each due link: (applied, refused with the reason)."""
    applied: list[LinkExpiry] = []
    refused: list[tuple[DueLink, DomainError]] = []
    for d in due:
        try:
            applied.append(expire(d, d.link_id, now, command_id(d)))
        except DomainError as error:
            refused.append((d, error))
    return applied, refused
