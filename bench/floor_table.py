"""The floors' queues and table (importable without starting a broker)."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, Text, Uuid

from workers.storage.tables import UtcDateTime

NOOP_QUEUE = "bench.noop"
INSERT_QUEUE = "bench.insert"

floor_metadata = MetaData()
floor_rows = Table(
    "bench_floor",
    floor_metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
