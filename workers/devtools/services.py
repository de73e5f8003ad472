"""Where the development services answer (tests and benchmarks; never production)."""

from __future__ import annotations

import os


def rabbitmq_url() -> str:
    """Read when asked, not at import: the bench points it at its own vhost first."""
    return os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def postgres_admin_url() -> str:
    return os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
