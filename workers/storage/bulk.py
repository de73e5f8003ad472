"""PostgreSQL bulk writes: one statement for many rows, the columns sent as arrays.

``INSERT ... SELECT FROM unnest(...)`` and ``UPDATE ... FROM unnest(...)`` send each
column as one array parameter: one statement, one round trip and a single plan for
thousands of rows, instead of an executemany of thousands of statements. Used from
two rows on (a worker's grouped commands, the scheduler's batches); values must already
be what the driver takes (aware datetimes, UUIDs; JSON columns as ``json.dumps`` text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache

from sqlalchemy import JSON, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

#: One row goes as a plain statement; from two, the arrays replace an executemany
#: (pipelined executemany was 13 % of the worker's CPU in the grouped-commit profile).
BULK_MIN_ROWS = 2


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@lru_cache(maxsize=512)
def _pg_type(dialect: Dialect, table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=dialect))


def _arrays(
    table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, object]], prefix: str = ""
) -> dict[str, list[object]]:
    params: dict[str, list[object]] = {}
    for i, col in enumerate(columns):
        values = [row[prefix + col] for row in rows]
        if isinstance(table.c[col].type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
        params[f"a{i}"] = values
    return params


def _unnest(session: Session, table: Table, columns: Sequence[str]) -> str:
    dialect = session.get_bind().dialect
    args = ", ".join(f"%(a{i})b::{_pg_type(dialect, table, c)}[]" for i, c in enumerate(columns))
    return f"unnest({args})"


def bulk_insert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, object]],
    *,
    upsert_key: str | None = None,
) -> None:
    """One ``INSERT ... SELECT FROM unnest(...)`` for all ``rows``; with ``upsert_key``,
    a row whose key exists updates every other column instead (``ON CONFLICT``)."""
    columns = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - schema names
        f"SELECT * FROM {_unnest(session, table, columns)}"
    )
    if upsert_key is not None:
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != upsert_key)
        sql += f" ON CONFLICT ({upsert_key}) DO UPDATE SET {updates}"
    session.connection().exec_driver_sql(sql, _arrays(table, columns, rows))


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, object]]) -> None:
    """``rows`` into ``table`` in one statement: ``bulk_insert`` on PostgreSQL from
    ``BULK_MIN_ROWS`` rows, else an executemany."""
    if len(rows) >= BULK_MIN_ROWS and is_postgresql(session):
        bulk_insert(session, table, rows)
    elif rows:
        session.execute(insert(table), list(rows))


def bulk_update(
    session: Session,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, object]],
    *,
    prefix: str = "",
    bump: str | None = None,
) -> None:
    """``UPDATE table SET columns... WHERE key = ...`` for every row (keys ``prefix+name``).

    ``bump`` names an integer column to increment on every updated row (``version``).
    """
    names = [key, *columns]
    sets = [f"{c} = v.{c}" for c in columns]
    if bump:
        sets.insert(0, f"{bump} = t.{bump} + 1")
    sql = (
        f"UPDATE {table.name} AS t SET {', '.join(sets)} "  # noqa: S608 - schema names
        f"FROM {_unnest(session, table, names)} AS v({', '.join(names)}) WHERE t.{key} = v.{key}"
    )
    session.connection().exec_driver_sql(sql, _arrays(table, names, rows, prefix))
