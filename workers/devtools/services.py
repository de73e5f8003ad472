"""Where the development services answer (tests and benchmarks; never production)."""

from __future__ import annotations

import os

RABBITMQ_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
