"""The schema. PostgreSQL in production, SQLite as the embedded default.

``orders.status`` is a read-model column (what the order history filters on),
always written from the domain's derivation of the ledger, never decided here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    false,
    text,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (naive storage) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


Money = BigInteger

stores = Table(
    "stores",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("terms_url", String(2048)),
    Column("agreement_currencies", JSON, nullable=False),
    Column("sms_fallback", Boolean, nullable=False, server_default=false()),
    Column("updated_at", UtcDateTime, nullable=False),
    #: Hours before expiry to remind a customer who has not opened the link; NULL: never.
    Column("reminder_hours_before", Integer),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("customer_email", String(320)),
    Column("customer_phone", String(32)),
    Column("customer_name", String(255)),
    Column("channel", String(8), nullable=False),
    Column("purchase_country", String(2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("merchant_reference1", String(255), nullable=False),
    Column("merchant_reference2", String(255)),
    Column("auto_capture", Boolean, nullable=False),
    Column("link_status", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("order_amount", Money, nullable=False),
    Column("order_tax_amount", Money, nullable=False),
    Column("authorization_id", String(64)),
    Column("completed_at", UtcDateTime),
    Column("link_expires_at", UtcDateTime),
    Column("current_link_id", Uuid),
    Column("reservation_expires_at", UtcDateTime),
    #: Deadlines the scheduler scans, derived by the domain: set only while an expiry
    #: can still apply (live link; authorization still reserved), NULL otherwise.
    Column("link_due_at", UtcDateTime),
    Column("reservation_due_at", UtcDateTime),
    #: When the scheduler last released an expiry command (re-released if still due later).
    Column("link_expiry_released_at", UtcDateTime),
    Column("reservation_expiry_released_at", UtcDateTime),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_orders_store_created", "store_id", "created_at"),
    Index("ix_orders_status_created", "status", "created_at"),
    Index("ix_orders_reference", "merchant_reference1"),
    # The scheduler's scans: only live rows are indexed, so pending links cost index
    # entries, never memory, and the due ones are a range scan.
    Index(
        "ix_orders_link_due",
        "link_due_at",
        postgresql_where=text("link_due_at IS NOT NULL"),
        sqlite_where=text("link_due_at IS NOT NULL"),
    ),
    Index(
        "ix_orders_reservation_due",
        "reservation_due_at",
        postgresql_where=text("reservation_due_at IS NOT NULL"),
        sqlite_where=text("reservation_due_at IS NOT NULL"),
    ),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", Uuid, ForeignKey("orders.order_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("reference", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("tax_rate", Integer, nullable=False),
    Column("total_discount_amount", Money, nullable=False),
    Column("total_amount", Money, nullable=False),
    Column("total_tax_amount", Money, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("entry_id", Uuid, primary_key=True),
    Column("order_id", Uuid, ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("command_id", Uuid),
    Column("reason", String(16)),
    #: The lines a capture or refund named, each one's share (reference, quantity,
    #: amount, tax_amount); a return fee entry holds its fee line. Empty: amount-only.
    Column("lines", JSON, nullable=False),
    Column("description", String(255)),
)

links = Table(
    "links",
    metadata,
    Column("link_id", Uuid, primary_key=True),
    Column("order_id", Uuid, ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("delivery", String(8), nullable=False),
    Column("superseded", Boolean, nullable=False),
)

processed_commands = Table(
    "processed_commands",
    metadata,
    Column("command_id", Uuid, primary_key=True),
    Column("command_type", String(64), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("events", JSON, nullable=False),
    Column("processed_at", UtcDateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    #: "event" (to the events exchange) or "command" (a Dramatiq message to a queue).
    Column("kind", String(8), nullable=False),
    #: An event's routing key (``<store>.<event type>``) or a command's queue name.
    Column("destination", String(160), nullable=False),
    Column("message_id", Uuid, nullable=False),
    Column("order_id", Uuid),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Index(
        "ix_outbox_unsent",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    Index("ix_outbox_order", "order_id"),
)

#: Every event paylink recorded, kept after the outbox row that published it is pruned:
#: order timelines (``paylink orders show``) and the exporter's business counters read
#: it. Same columns as the outbox's events (``destination`` is the event type); a
#: replayed command's events appear again with the same ``message_id``.
event_history = Table(
    "event_history",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("destination", String(64), nullable=False),
    Column("message_id", Uuid, nullable=False),
    Column("order_id", Uuid),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_event_history_order", "order_id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("link_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False, index=True),
    Column("channel", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("uncertain_attempts", Integer, nullable=False),
    Column("blind_resends", Integer, nullable=False, server_default="0"),
    Column("provider", String(32)),
    Column("provider_message_id", String(128)),
    Column("error", String(500)),
    Column("report", String(16)),
    Column("report_reason", String(500)),
    Column("updated_at", UtcDateTime, nullable=False),
    # The exporter sums the few rows a killed worker left uncertain.
    Index(
        "ix_notifications_uncertain",
        "uncertain_attempts",
        "blind_resends",
        postgresql_where=text("uncertain_attempts > 0"),
        sqlite_where=text("uncertain_attempts > 0"),
    ),
)

#: The reminder before expiry of a link (``domain.reminders``), one row per link: the
#: scheduler releases ``command`` (the reminder's SendPaymentLink, token included: the
#: database otherwise keeps only token hashes) into the outbox once ``due_at`` passes,
#: and clears both. Only pending rows are indexed.
link_reminders = Table(
    "link_reminders",
    metadata,
    Column("link_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("due_at", UtcDateTime),
    Column("command", Text),
    Column("released_at", UtcDateTime),
    Index(
        "ix_link_reminders_due",
        "due_at",
        postgresql_where=text("due_at IS NOT NULL"),
        sqlite_where=text("due_at IS NOT NULL"),
    ),
)

#: Which stores an upstream system (its broker user, the AMQP ``user_id``) may act for,
#: and the roles it may assert there (comma-separated); ``workers/runtime/grants.py``.
upstream_grants = Table(
    "upstream_grants",
    metadata,
    Column("upstream", String(128), primary_key=True),
    Column("store_id", String(64), primary_key=True),
    Column("roles", String(255), nullable=False),
)
