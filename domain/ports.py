"""The small ports handlers depend on. Adapters live in workers/; fakes in tests/."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, Self, TypeVar
from uuid import UUID

from domain.notifications import Notifier
from domain.order import Order
from domain.reminders import ReminderDeadline
from domain.store import Store
from messages.commands import CheckoutCompleted
from messages.common import CommandBase, EventBase


class Clock(Protocol):
    def now(self) -> datetime: ...


class TokenGenerator(Protocol):
    def new_token(self) -> str: ...


T = TypeVar("T")


class Patience(Protocol):
    """How long to keep trying a step whose retry must not be a redelivery: recording
    a provider's answer (a redelivery would send the link again). Policy, so it lives
    in workers/ (``workers.runtime.patience``); the domain only asks for it."""

    def call(self, step: Callable[[], T]) -> T:
        """``step()``, tried again after a ``TransientError`` while patience lasts; the
        last ``TransientError`` propagates."""
        ...


class CheckoutProofs(Protocol):
    """Whether a CheckoutCompleted carries a valid proof from paylink's checkout; the
    keys are configuration, so the check lives in workers/ (``workers.runtime.checkout_proof``)."""

    def problem(self, command: CheckoutCompleted) -> str | None:
        """Why the proof is not acceptable, or None when it is (or none is required)."""
        ...


class ProofsNotRequired:
    """Accept every CheckoutCompleted: the embedded default and the domain's tests."""

    def problem(self, command: CheckoutCompleted) -> str | None:
        return None


class NoPatience:
    """Try once: a ``TransientError`` goes straight to the runtime (which redelivers)."""

    def call(self, step: Callable[[], T]) -> T:
        return step()


class OrderRepository(Protocol):
    def add(self, order: Order) -> None: ...
    def get(self, order_id: UUID) -> Order | None: ...
    def get_for_update(self, order_id: UUID) -> Order | None:
        """Load and lock: concurrent commands on one order are serialized here."""
        ...

    def get_by_token_for_update(self, token_hash: str) -> Order | None: ...
    def ids_by_customer(
        self, store_id: str, *, email: str | None = None, phone: str | None = None
    ) -> list[UUID]:
        """The orders of ``store_id`` whose customer has this email (or phone)."""
        ...


class StoreRepository(Protocol):
    def get(self, store_id: str) -> Store | None: ...
    def save(self, store: Store) -> None: ...


@dataclass(frozen=True, slots=True)
class ProcessedCommand:
    command_id: UUID
    command_type: str
    payload_hash: str
    #: "accepted" or "rejected"
    outcome: str
    #: The events the first processing produced, re-published on a duplicate.
    events: tuple[EventBase, ...] = field(default=())


class ProcessedCommands(Protocol):
    def get(self, command_id: UUID) -> ProcessedCommand | None: ...
    def add(self, record: ProcessedCommand) -> None: ...


class Outbox(Protocol):
    def add_event(self, event: EventBase) -> None: ...
    def add_command(self, command: CommandBase) -> None: ...


class NotificationState(StrEnum):
    #: Recorded before the provider call; still set after a crash = outcome unknown.
    ATTEMPTING = "attempting"
    #: The provider said "try later"; safe to send again.
    DEFERRED = "deferred"
    SENT = "sent"
    FAILED = "failed"


@dataclass(slots=True)
class NotificationRecord:
    link_id: UUID
    order_id: UUID
    channel: str
    state: NotificationState
    attempts: int = 0
    #: Attempts started while an earlier one's outcome was unknown.
    uncertain_attempts: int = 0
    #: Of those, the ones that sent again although the provider could not tell whether
    #: an earlier attempt had gone out: possible duplicates. Committed before the send.
    blind_resends: int = 0
    provider: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
    #: The provider's last report on the sent message ("delivered", "failed") and why.
    report: str | None = None
    report_reason: str | None = None


class Notifications(Protocol):
    def get(self, link_id: UUID) -> NotificationRecord | None: ...
    def save(self, record: NotificationRecord) -> None: ...


class ReminderDeadlines(Protocol):
    def schedule(self, deadline: ReminderDeadline) -> None:
        """Keep ``deadline`` for the scheduler (one per link; a second one is ignored)."""
        ...


class UnitOfWork(Protocol):
    # Read-only members: an adapter may hold its own repository types.
    @property
    def orders(self) -> OrderRepository: ...
    @property
    def stores(self) -> StoreRepository: ...
    @property
    def processed(self) -> ProcessedCommands: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def notifications(self) -> Notifications: ...
    @property
    def reminders(self) -> ReminderDeadlines: ...

    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None: ...
    def commit(self) -> None:
        """Persist every loaded aggregate, its new events and the outbox, atomically."""
        ...

    def rollback(self) -> None: ...
    def scope(self) -> AbstractContextManager[None]:
        """One command's writes inside a larger transaction (a group): kept when the
        block exits normally; discarded when it raises, as if never made (aggregates
        it loaded or added revert to their state at entry; its outbox rows, processed
        record, store and notification writes are dropped). The exception propagates;
        the transaction stays open for the next command."""
        ...

    def prefetch(
        self,
        *,
        command_ids: Sequence[UUID] = (),
        order_ids: Sequence[UUID] = (),
        lock: bool = False,
        store_ids: Sequence[str] = (),
        link_ids: Sequence[UUID] = (),
    ) -> None:
        """Read in bulk what several commands will ask for (processed records, orders,
        locked when ``lock``, stores, notification records): the repositories then
        answer from it. Only fewer round trips; an adapter may do nothing."""
        ...


#: A fresh unit of work per transaction (the SQL adapter opens a session each time).
UowFactory = Callable[[], UnitOfWork]

#: Links stay valid for 48 hours (seed 000: "only active in 48 hours").
LINK_TTL = timedelta(hours=48)
#: Reservations expire 28 days after authorization unless configured otherwise.
RESERVATION_TTL = timedelta(days=28)


@dataclass(frozen=True, slots=True)
class Context:
    """What every handler may use besides the unit of work."""

    clock: Clock
    tokens: TokenGenerator
    notifier: Notifier
    link_ttl: timedelta = LINK_TTL
    reservation_ttl: timedelta = RESERVATION_TTL
    checkout_base_url: str = "https://pay.paylink.example/l"
    patience: Patience = field(default_factory=NoPatience)
    checkout_proofs: CheckoutProofs = field(default_factory=ProofsNotRequired)
