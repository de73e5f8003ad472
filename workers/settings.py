"""The one settings object, read once from the environment (pydantic-settings).

Secrets (provider keys, database passwords inside URLs) come only from here.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Embedded default: everything under ./var so a fresh clone runs without setup.
VAR_DIR = Path("var")
#: A CreateOrder of 1000 lines with 255-character ASCII names and references is 709 kB
#: of JSON; a worker holds up to threads x 2 messages per process, so bodies are capped
#: at 1 MiB (non-ASCII names that long would need more: raise it for such merchants).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    #: SQLAlchemy URL. SQLite file by default; PostgreSQL (postgresql+psycopg://) in production.
    database_url: str = Field(default=f"sqlite:///{VAR_DIR}/paylink.db", alias="DATABASE_URL")
    #: AMQP URL; several URLs separated by ';' for a cluster.
    broker_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/%2F", alias="BROKER_URL")
    #: RabbitMQ management API (``paylink queues`` reads unacked counts from it), with or
    #: without its ``/api`` path; default: the broker's host, port 15672; ``none``: skip.
    rabbitmq_api_url: str | None = Field(default=None, alias="PAYLINK_RABBITMQ_API_URL")
    #: Management API user and password; default: those of BROKER_URL.
    rabbitmq_api_user: str | None = Field(default=None, alias="PAYLINK_RABBITMQ_API_USER")
    rabbitmq_api_password: SecretStr | None = Field(
        default=None, alias="PAYLINK_RABBITMQ_API_PASSWORD"
    )

    #: Declare command queues as quorum queues (a RabbitMQ cluster); classic otherwise.
    quorum_queues: bool = Field(default=False, alias="PAYLINK_QUORUM_QUEUES")

    #: Serve Dramatiq's Prometheus metrics from worker processes (set by `paylink worker`).
    worker_metrics: bool = Field(default=False, alias="PAYLINK_WORKER_METRICS")

    worker_processes: int = Field(default=2, ge=1, le=64, alias="PAYLINK_WORKER_PROCESSES")
    #: Threads mostly wait (database, broker, providers); more threads let a busy
    #: process group more commands per transaction (``workers.runtime.grouping``): 24 carried
    #: 100-118 create+send orders/s against 74-82 with 8 (``bench/results.md``).
    worker_threads: int = Field(default=24, ge=1, le=256, alias="PAYLINK_WORKER_THREADS")
    #: Up to this many CreateOrder (or SendPaymentLink) commands that one worker process
    #: holds at once are applied in one transaction (``workers.runtime.grouping``); 1 turns it off.
    batch_size: int = Field(default=16, ge=1, le=256, alias="PAYLINK_BATCH_SIZE")

    #: Links stay valid for 48 hours (seed: "only active in 48 hours").
    link_ttl_seconds: int = Field(default=48 * 3600, ge=1, alias="PAYLINK_LINK_TTL_SECONDS")
    #: Reservation (authorization) lifetime after checkout; Klarna's default is 28 days.
    reservation_ttl_seconds: int = Field(
        default=28 * 24 * 3600, ge=1, alias="PAYLINK_RESERVATION_TTL_SECONDS"
    )
    #: Links point at the hosted page ``paylink web`` serves on this machine by default.
    checkout_base_url: str = Field(
        default="http://127.0.0.1:8080/l", alias="PAYLINK_CHECKOUT_BASE_URL"
    )

    #: The hosted link page (``paylink web``): loopback by default; 0.0.0.0 in a container.
    web_host: str = Field(default="127.0.0.1", alias="PAYLINK_WEB_HOST")
    web_port: int = Field(default=8080, ge=1, le=65535, alias="PAYLINK_WEB_PORT")
    #: Signs the pay form's CSRF token. Unset: a random key per process, so replicas
    #: behind one load balancer need the same value set.
    web_secret: SecretStr | None = Field(default=None, alias="PAYLINK_WEB_SECRET")
    #: Link page requests (views and payments) one client address may make per minute:
    #: a customer reloads a few times; a token guesser needs billions.
    web_rate_limit_per_minute: int = Field(
        default=60, ge=1, le=100_000, alias="PAYLINK_WEB_RATE_LIMIT_PER_MINUTE"
    )
    #: Proxies whose X-Forwarded-For uvicorn believes (the client address rate-limited).
    web_forwarded_allow_ips: str = Field(
        default="127.0.0.1", alias="PAYLINK_WEB_FORWARDED_ALLOW_IPS"
    )
    #: How providers reach ``paylink web`` (``https://pay.example.com``): Twilio's status
    #: callbacks are sent there and their signature covers it. Unset: no callbacks.
    web_public_url: str | None = Field(default=None, alias="PAYLINK_WEB_PUBLIC_URL")
    #: SendGrid's Event Webhook verification key (Mail Settings, "Signed Event Webhook",
    #: base64 as shown). Unset: ``/hooks/sendgrid`` refuses every request.
    sendgrid_webhook_public_key: str | None = Field(
        default=None, alias="PAYLINK_SENDGRID_WEBHOOK_PUBLIC_KEY"
    )
    #: Verifies Twilio's status callbacks in ``paylink web``: a Twilio webhook SharedKey
    #: secret, so the page need not hold the account's credential. Unset: the auth token.
    twilio_webhook_secret: SecretStr | None = Field(
        default=None, alias="PAYLINK_TWILIO_WEBHOOK_SECRET"
    )
    #: Which checkout gateway takes the payment; the sandbox is the embedded default,
    #: ``external`` sends the customer to ``PAYLINK_EXTERNAL_CHECKOUT_URL`` (README).
    checkout_gateway: Literal["sandbox", "external"] = Field(
        default="sandbox", alias="PAYLINK_CHECKOUT_GATEWAY"
    )
    #: The external checkout's hosted page (https).
    external_checkout_url: str | None = Field(default=None, alias="PAYLINK_EXTERNAL_CHECKOUT_URL")
    #: Secrets external checkouts sign their callbacks with, ``gateway:secret`` separated
    #: by commas (the same gateway twice while its secret rotates).
    checkout_callback_secrets: SecretStr | None = Field(
        default=None, alias="PAYLINK_CHECKOUT_CALLBACK_SECRETS"
    )
    #: Keys the hosted checkout signs CheckoutCompleted with and workers check it by,
    #: ``id:secret`` separated by commas (several while one rotates; the first signs).
    checkout_proof_keys: SecretStr | None = Field(default=None, alias="PAYLINK_CHECKOUT_PROOF_KEYS")
    #: Refuse a CheckoutCompleted without a valid proof (deploy/ sets it; off in the
    #: embedded default so that an upstream's own checkout keeps working for a release).
    checkout_proof_required: bool = Field(default=False, alias="PAYLINK_CHECKOUT_PROOF_REQUIRED")

    @property
    def checkout_proof_key_map(self) -> dict[str, bytes]:
        """``PAYLINK_CHECKOUT_PROOF_KEYS`` as key id -> secret, in the order given."""
        pairs = _secret_pairs(self.checkout_proof_keys, "PAYLINK_CHECKOUT_PROOF_KEYS")
        return {key_id: secret for key_id, secret in pairs}

    @property
    def checkout_callback_secret_map(self) -> dict[str, list[bytes]]:
        """``PAYLINK_CHECKOUT_CALLBACK_SECRETS`` as gateway -> its secrets, in the order given."""
        secrets: dict[str, list[bytes]] = {}
        for gateway, secret in _secret_pairs(
            self.checkout_callback_secrets, "PAYLINK_CHECKOUT_CALLBACK_SECRETS"
        ):
            secrets.setdefault(gateway, []).append(secret)
        return secrets

    #: Which notifier delivers links: a readable file outbox (default), or the real providers.
    email_provider: Literal["local", "sendgrid"] = Field(
        default="local", alias="PAYLINK_EMAIL_PROVIDER"
    )
    sms_provider: Literal["local", "twilio"] = Field(default="local", alias="PAYLINK_SMS_PROVIDER")
    outbox_dir: Path = Field(default=VAR_DIR / "outbox", alias="PAYLINK_OUTBOX_DIR")
    #: The local outbox reports each message delivered, as a provider's webhook would
    #: (``paylink run --demo`` turns it on, so the demo's timelines show link.delivered).
    local_outbox_reports: bool = Field(default=False, alias="PAYLINK_LOCAL_OUTBOX_REPORTS")
    email_from: str = Field(default="no-reply@paylink.example", alias="PAYLINK_EMAIL_FROM")
    sendgrid_api_key: SecretStr | None = Field(default=None, alias="SENDGRID_API_KEY")
    sendgrid_base_url: str = Field(default="https://api.sendgrid.com", alias="SENDGRID_BASE_URL")
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(default=None, alias="TWILIO_FROM_NUMBER")
    twilio_messaging_service_sid: str | None = Field(
        default=None, alias="TWILIO_MESSAGING_SERVICE_SID"
    )
    #: Overrides Twilio's API host (tests point it at a loopback server).
    twilio_base_url: str | None = Field(default=None, alias="TWILIO_BASE_URL")

    relay_batch_size: int = Field(default=500, ge=1, le=10_000, alias="PAYLINK_RELAY_BATCH_SIZE")
    relay_poll_seconds: float = Field(default=0.2, gt=0, alias="PAYLINK_RELAY_POLL_SECONDS")
    #: After a wake-up (a commit's NOTIFY), wait this long for more rows before the
    #: batch: fewer, fuller batches for a little latency (50 ms: relay CPU per
    #: create+send order 2.2 ms at 30 ms, 1.9 at 50 and at 100).
    relay_linger_seconds: float = Field(
        default=0.05, ge=0, le=1, alias="PAYLINK_RELAY_LINGER_SECONDS"
    )
    #: Relays ``paylink run`` starts on PostgreSQL, each publishing the outbox rows of
    #: its share of the orders (``workers.processes.relay``); one on SQLite.
    relay_partitions: int = Field(default=2, ge=1, le=64, alias="PAYLINK_RELAY_PARTITIONS")
    scheduler_batch_size: int = Field(
        default=2000, ge=1, le=50_000, alias="PAYLINK_SCHEDULER_BATCH_SIZE"
    )
    scheduler_poll_seconds: float = Field(default=1.0, gt=0, alias="PAYLINK_SCHEDULER_POLL_SECONDS")
    #: Apply due link expiries in the scheduler's transaction (``domain.expiry``'s rule,
    #: a batch at a time) rather than releasing one ExpirePaymentLink command per link.
    scheduler_apply_link_expiry: bool = Field(
        default=True, alias="PAYLINK_SCHEDULER_APPLY_LINK_EXPIRY"
    )
    #: How long a processed command id is remembered (a re-sent id has no second effect
    #: within it). At least 8 days: a dead letter lives 7 days in its .XQ and may be
    #: replayed (``paylink dlq replay``) until the last of them; 14 leaves a week for an
    #: upstream re-sending after an outage. Klarna keeps idempotency keys 24 hours.
    idempotency_window_days: int = Field(
        default=14, ge=8, le=3650, alias="PAYLINK_IDEMPOTENCY_WINDOW_DAYS"
    )
    #: Published outbox rows are deleted this many days after publication; unset: the
    #: idempotency window; 0 keeps them. Timelines and business counters read
    #: ``event_history``, which is kept.
    outbox_retention_days: int | None = Field(
        default=None, ge=0, le=3650, alias="PAYLINK_OUTBOX_RETENTION_DAYS"
    )
    max_retries: int = Field(default=20, ge=0, alias="PAYLINK_MAX_RETRIES")
    #: Bodies over this many bytes are dead-lettered before they are parsed; keep it
    #: below RabbitMQ's ``max_message_size`` (deploy/rabbitmq/rabbitmq.conf).
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=64 * 1024, alias="PAYLINK_MAX_MESSAGE_BYTES"
    )

    log_level: str = Field(default="INFO", alias="PAYLINK_LOG_LEVEL")
    #: ``auto``: console lines on a terminal, JSON otherwise, chosen once per run
    #: (``workers.observability.logs``) and handed to the processes it starts.
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", alias="PAYLINK_LOG_FORMAT"
    )

    @property
    def outbox_retention(self) -> timedelta | None:
        """How long published outbox rows stay (None: for ever)."""
        days = self.outbox_retention_days
        if days is None:
            days = self.idempotency_window_days
        return timedelta(days=days) if days else None

    @property
    def link_ttl(self) -> timedelta:
        return timedelta(seconds=self.link_ttl_seconds)

    @property
    def reservation_ttl(self) -> timedelta:
        return timedelta(seconds=self.reservation_ttl_seconds)

    @model_validator(mode="after")
    def _outbox_outlives_the_idempotency_window(self) -> Settings:
        """A command re-sent within the window re-publishes its first events with the same
        ids; the exporter counts them once by finding the earlier copy in the outbox."""
        days = self.outbox_retention_days
        if days and days < self.idempotency_window_days:
            raise ValueError(
                f"PAYLINK_OUTBOX_RETENTION_DAYS={days} is shorter than "
                f"PAYLINK_IDEMPOTENCY_WINDOW_DAYS={self.idempotency_window_days}; "
                "keep published outbox rows at least as long (or 0: for ever)"
            )
        return self

    @model_validator(mode="after")
    def _external_checkout_is_reachable(self) -> Settings:
        url = self.external_checkout_url
        if self.checkout_gateway == "external" and not (url and url.startswith("https://")):
            raise ValueError(
                "PAYLINK_CHECKOUT_GATEWAY=external needs PAYLINK_EXTERNAL_CHECKOUT_URL (https)"
            )
        return self

    @model_validator(mode="after")
    def _providers_have_credentials(self) -> Settings:
        missing: list[str] = []
        if self.email_provider == "sendgrid" and self.sendgrid_api_key is None:
            missing.append("SENDGRID_API_KEY")
        if self.sms_provider == "twilio":
            if not self.twilio_account_sid:
                missing.append("TWILIO_ACCOUNT_SID")
            if self.twilio_auth_token is None:
                missing.append("TWILIO_AUTH_TOKEN")
            if not (self.twilio_from_number or self.twilio_messaging_service_sid):
                missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            raise ValueError("provider selected but not configured; set " + ", ".join(missing))
        return self


def broker_urls(broker_url: str) -> list[str]:
    """The nodes of ``BROKER_URL`` in order: a cluster's URLs are separated by ';'."""
    urls = [url.strip() for url in broker_url.split(";") if url.strip()]
    if not urls:
        raise ValueError("BROKER_URL names no broker")
    return urls


def first_broker_url(broker_url: str) -> str:
    """The first node of ``BROKER_URL``: where clients that take one URL connect, and
    whose host, user and virtual host stand for the cluster."""
    return broker_urls(broker_url)[0]


def _secret_pairs(value: SecretStr | None, name: str) -> list[tuple[str, bytes]]:
    """``name:secret`` items separated by commas, in the order given."""
    raw = value.get_secret_value() if value else ""
    pairs = [item.strip().split(":", 1) for item in raw.split(",") if item.strip()]
    if any(len(pair) != 2 or not pair[0] or not pair[1] for pair in pairs):
        raise ValueError(f"{name}: give name:secret pairs, comma-separated")
    return [(key, secret.encode()) for key, secret in pairs]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
