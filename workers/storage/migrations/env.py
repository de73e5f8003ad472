"""Alembic environment: the URL comes from the caller (``paylink migrate``) or settings."""

from __future__ import annotations

from alembic import context

from workers.settings import get_settings
from workers.storage.engine import make_engine
from workers.storage.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
