"""What an upstream system may assert: its grants, and the actor a command really has.

The portal authenticates its users; paylink cannot. What paylink can check is the
upstream: RabbitMQ authenticates each upstream's broker user and vouches for the AMQP
``user_id`` on what it publishes to ``paylink.commands`` (``workers.runtime.consumer``). Grants
kept server-side (table ``upstream_grants``, managed by an operator with
``paylink grants``, never by an upstream) say which stores each upstream may
act for and which roles it may assert there. A merchant command's actor is narrowed to
them: its stores to those where its role is granted. An upstream that may assert the
role nowhere is refused ``ROLE_NOT_ALLOWED``, one that names none of its stores
``STORE_ACCESS_DENIED``; the domain's permission table then judges the narrowed actor,
so a publisher can no longer name itself into another store or a higher role.

Commands that reach paylink without a publisher identity (the default exchange: its
own processes, or upstreams for one more release where a broker allows it) are not
narrowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sqlalchemy import Engine, delete, insert, select

from domain.errors import DomainError, PermissionDenied, StoreAccessDenied
from messages.common import CommandBase, Role
from workers.storage import tables as t

#: store_id -> roles the upstream may assert for it.
Grants = dict[str, frozenset[str]]
#: A revoked grant stops applying within this many seconds (each worker caches them).
CACHE_SECONDS = 5.0


def apply_grants(command: CommandBase, upstream: str, grants: Grants) -> CommandBase | DomainError:
    """``command`` with its actor narrowed to ``grants``, or why it is refused."""
    actor = getattr(command, "actor", None)
    if actor is None:
        return command
    role = actor.role.value
    if not any(role in roles for roles in grants.values()):
        return PermissionDenied(f"upstream {upstream!r} may not act as {role}")
    stores = [s for s in actor.store_ids if role in grants.get(s, frozenset())]
    if not stores:
        return StoreAccessDenied(f"upstream {upstream!r} may not act as {role} for these stores")
    if stores == list(actor.store_ids):
        return command
    narrowed = actor.model_copy(update={"store_ids": stores})
    return command.model_copy(update={"actor": narrowed})


class GrantCache:
    """Each upstream's grants, read at most every ``CACHE_SECONDS`` per process."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, Grants]] = {}

    def get(self, engine: Engine, upstream: str) -> Grants:
        key = (str(engine.url), upstream)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        grants = load_grants(engine, upstream)
        with self._lock:
            self._entries[key] = (now + self.seconds, grants)
        return grants


GRANTS = GrantCache()


def load_grants(engine: Engine, upstream: str) -> Grants:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.upstream_grants.c.store_id, t.upstream_grants.c.roles).where(
                t.upstream_grants.c.upstream == upstream
            )
        ).all()
    return {store: frozenset(r for r in roles.split(",") if r) for store, roles in rows}


def grant(engine: Engine, upstream: str, store_id: str, roles: Sequence[str]) -> None:
    """Let ``upstream`` act for ``store_id`` as any of ``roles`` (replacing what it had)."""
    valid = {r.value for r in Role}
    unknown = sorted(set(roles) - valid)
    if unknown or not roles:
        raise ValueError(f"roles must be some of {sorted(valid)}; not {unknown or 'none'}")
    with engine.begin() as conn:
        conn.execute(
            delete(t.upstream_grants).where(
                (t.upstream_grants.c.upstream == upstream)
                & (t.upstream_grants.c.store_id == store_id)
            )
        )
        conn.execute(
            insert(t.upstream_grants).values(
                upstream=upstream, store_id=store_id, roles=",".join(sorted(set(roles)))
            )
        )


def revoke(engine: Engine, upstream: str, store_id: str | None = None) -> int:
    """Take ``upstream``'s grant for ``store_id`` (every store if None); rows removed."""
    condition = t.upstream_grants.c.upstream == upstream
    if store_id is not None:
        condition = condition & (t.upstream_grants.c.store_id == store_id)
    with engine.begin() as conn:
        return int(conn.execute(delete(t.upstream_grants).where(condition)).rowcount)
