"""The composition root: wires settings, storage and providers into the handlers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import dramatiq
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from domain.notifications import Notifier
from domain.ports import Context
from messages.common import CommandBase
from messages.routing import encode_command
from workers.providers import build_notifier
from workers.runtime.checkout_proof import HmacCheckoutProofs
from workers.runtime.grouping import Batcher
from workers.runtime.patience import Backoff
from workers.settings import Settings, get_settings
from workers.storage.engine import make_engine, make_session_factory
from workers.storage.uow import SqlUnitOfWork


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SecretTokens:
    """Link tokens: 256 bits from ``secrets`` (the OS CSPRNG)."""

    #: 32 random bytes = 256 bits, url-safe base64 (43 characters).
    token_bytes = 32

    def new_token(self) -> str:
        return secrets.token_urlsafe(self.token_bytes)


#: A local delivery report waits this long on the broker, so that it usually arrives
#: after its send is recorded (milliseconds later); one that still overtakes the send
#: is retried by its handler.
LOCAL_REPORT_DELAY_MS = 1000


def enqueue_command(command: CommandBase, delay_ms: int | None = None) -> None:
    """``command`` onto its queue through this worker's own broker and identity."""
    message: dramatiq.Message[None] = dramatiq.Message(
        **encode_command(command, message_id=str(command.command_id))
    )
    dramatiq.get_broker().enqueue(message, delay=delay_ms)


def enqueue_report(command: CommandBase) -> None:
    enqueue_command(command, LOCAL_REPORT_DELAY_MS)


@dataclass
class App:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.session_factory)

    @cached_property
    def batcher(self) -> Batcher:
        return Batcher(self.uow, self.context, max_size=self.settings.batch_size)

    @cached_property
    def notifier(self) -> Notifier:
        return build_notifier(self.settings, report=enqueue_report)

    @cached_property
    def context(self) -> Context:
        return Context(
            clock=SystemClock(),
            tokens=SecretTokens(),
            link_ttl=self.settings.link_ttl,
            reservation_ttl=self.settings.reservation_ttl,
            checkout_base_url=self.settings.checkout_base_url,
            notifier=self.notifier,
            patience=Backoff(),
            checkout_proofs=HmacCheckoutProofs(
                self.settings.checkout_proof_key_map,
                required=self.settings.checkout_proof_required,
            ),
        )


_app: App | None = None


def get_app() -> App:
    global _app
    if _app is None:
        _app = App(get_settings())
    return _app


def set_app(app: App | None) -> None:
    """Tests swap the application (another database, another notifier)."""
    global _app
    _app = app
