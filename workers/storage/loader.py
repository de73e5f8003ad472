"""Reading orders: the ``orders`` rows (locked when asked) and their children, mapped to
aggregates by ``mapping.order_from_rows``.

The children are read per table for all the orders at once, after the lock: they are
as the last transaction that held it left them. On PostgreSQL the first statement
also brings each order's children as JSON arrays, so a single order costs one round
trip instead of four: with four, a group of one cost 1.15x the CPU per order of the
former storage; with one, 0.98x (``python -m bench.inprocess --groups 1,32 --orders
320``, medians of paired runs, 3 and 6 pairs). Groups of 32 do not tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from sqlalchemy import (
    Label,
    RowMapping,
    Select,
    Table,
    Uuid,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from domain.order import Order
from workers.storage import tables as t
from workers.storage.bulk import is_postgresql
from workers.storage.mapping import Row, order_from_rows

Q = TypeVar("Q", bound=tuple[object, ...])

#: Each child table and the column that orders an order's rows in it.
_CHILDREN: tuple[tuple[Table, str], ...] = (
    (t.order_lines, "position"),
    (t.ledger_entries, "seq"),
    (t.links, "seq"),
)
#: An order's rows in each table of ``_CHILDREN``.
Children = tuple[list[Row], list[Row], list[Row]]


def _ids() -> Select[tuple[object]]:
    return select(t.orders).where(t.orders.c.order_id.in_(bindparam("ids", expanding=True)))


def _locked(query: Select[Q]) -> Select[Q]:
    """In key order, so two transactions locking overlapping sets cannot deadlock."""
    return query.order_by(t.orders.c.order_id).with_for_update(of=t.orders)


def load_orders(session: Session, ids: list[UUID], *, lock: bool) -> list[tuple[RowMapping, Order]]:
    """The orders of ``ids`` that exist, each with its ``orders`` row."""
    pg = is_postgresql(session)
    query = _QUERIES[pg, lock]
    heads = session.execute(query, {"ids": ids}).mappings().all()
    children = {r["order_id"]: _from_json(r) for r in heads if pg and _consistent(r)}
    missing = [r["order_id"] for r in heads if r["order_id"] not in children]
    if missing:
        children.update(_read_children(session, missing))
    return [(r, order_from_rows(r, *children[r["order_id"]])) for r in heads]


def _read_children(session: Session, ids: list[UUID]) -> dict[UUID, Children]:
    """One SELECT per child table for all of ``ids``."""
    found: dict[UUID, Children] = {i: ([], [], []) for i in ids}
    for n, query in enumerate(_CHILD_QUERIES):
        for row in session.execute(query, {"ids": ids}).mappings():
            found[row["order_id"]][n].append(row)
    return found


_CHILD_QUERIES = tuple(
    select(table)
    .where(table.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(table.c.order_id, table.c[by])
    for table, by in _CHILDREN
)


# ---- PostgreSQL: the children in the first statement ------------------------------------


def _children_json(table: Table, by: str) -> Label[object]:
    """An order's rows of ``table`` as one JSON array of objects, in ``by`` order."""
    c = table.alias("c")
    rows = func.json_agg(aggregate_order_by(c.table_valued(), c.c[by]))
    subquery = select(rows).where(c.c.order_id == t.orders.c.order_id).scalar_subquery()
    return subquery.label(f"{table.name}_json")


#: Under READ COMMITTED a ``FOR UPDATE`` that waited for another transaction returns the
#: *latest* order row, while the child subqueries read the statement's older snapshot:
#: the version that snapshot saw differs from the locked row's, and the children are
#: read again (``_consistent``). Every change to an order or its children bumps it.
_snapshot = t.orders.alias("s")
_SNAPSHOT_VERSION = (
    select(_snapshot.c.version)
    .where(_snapshot.c.order_id == t.orders.c.order_id)
    .scalar_subquery()
    .label("snapshot_version")
)
_PG_ORDERS = _ids().add_columns(
    *(_children_json(table, by) for table, by in _CHILDREN), _SNAPSHOT_VERSION
)
_QUERIES: dict[tuple[bool, bool], Select[tuple[object]]] = {
    (False, False): _ids(),
    (False, True): _locked(_ids()),
    (True, False): _PG_ORDERS,
    (True, True): _locked(_PG_ORDERS),
}


def _consistent(row: RowMapping) -> bool:
    return bool(row["snapshot_version"] == row["version"])


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _decoders(table: Table) -> dict[str, Callable[[str], object]]:
    """What JSON carries as text: UUIDs and timestamps."""
    found: dict[str, Callable[[str], object]] = {}
    for col in table.columns:
        if isinstance(col.type, Uuid):
            found[col.name] = UUID
        elif isinstance(col.type, t.UtcDateTime):
            found[col.name] = _utc
    return found


_DECODERS = {table.name: _decoders(table) for table, _ in _CHILDREN}


def _from_json(row: RowMapping) -> Children:
    lines, entries, links = (_decoded(table, row[f"{table.name}_json"]) for table, _ in _CHILDREN)
    return lines, entries, links


def _decoded(table: Table, objects: list[dict[str, object]] | None) -> list[Row]:
    decode = _DECODERS[table.name]
    return [
        {k: decode[k](v) if k in decode and isinstance(v, str) else v for k, v in obj.items()}
        for obj in objects or ()
    ]
