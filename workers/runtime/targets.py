"""Which order and store a command that could not be parsed is about, for its rejection.

An upstream routes a rejection by the order and store it names, so the worker fills
them in when it can: the order a command names, or the order of the link whose token
a checkout command carries (found by the token's hash, as the handlers find it); the
store a command names, or the store of that order as paylink recorded it. A merchant
command's store is only named if its actor claims that store: a rejection does not
tell a stranger which store an order belongs to. It only reads, and locks nothing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Engine, select

from domain.links import hash_token
from workers.storage import tables as t

#: Link tokens are URL-safe base64 (``messages.commands``); anything else finds nothing.
_MAX_TOKEN_LENGTH = 128


def known_target(engine: Engine, payload: object) -> tuple[UUID | None, str | None]:
    """(order_id, store_id) of the command ``payload`` as far as paylink can tell."""
    if not isinstance(payload, dict):
        return None, None
    order_id = _uuid(payload.get("order_id"))
    store_id = payload.get("store_id") if isinstance(payload.get("store_id"), str) else None
    token = _token(payload.get("token"))
    if (order_id is None and token is not None) or (order_id and store_id is None):
        with engine.connect() as conn:
            if order_id is None and token is not None:
                order_id = conn.scalar(
                    select(t.links.c.order_id).where(t.links.c.token_hash == hash_token(token))
                )
            if order_id is not None and store_id is None:
                store_id = conn.scalar(
                    select(t.orders.c.store_id).where(t.orders.c.order_id == order_id)
                )
    claimed = claimed_stores(payload)
    if store_id is not None and claimed is not None and store_id not in claimed:
        store_id = None
    return order_id, store_id[:64] if store_id else None


def claimed_stores(payload: dict[str, Any]) -> set[str] | None:
    """The stores a merchant command's actor claims; None for a command without actor."""
    actor = payload.get("actor")
    if actor is None:
        return None
    stores = actor.get("store_ids") if isinstance(actor, dict) else None
    return {s for s in stores if isinstance(s, str)} if isinstance(stores, list) else set()


def _token(value: Any) -> str | None:
    """``value`` if it could be a link token, else None (it could find nothing)."""
    if isinstance(value, str) and value.isascii() and 0 < len(value) <= _MAX_TOKEN_LENGTH:
        return value
    return None


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None
