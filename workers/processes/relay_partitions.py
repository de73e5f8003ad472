"""Which outbox partitions a relay publishes: PostgreSQL advisory locks, claimed live.

One relay per partition keeps each order's events in order (``workers.processes.relay``); these
locks make sure every partition has exactly one relay, whatever the number of relays
running, and that relays agree on how many partitions there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import psycopg
import structlog

log = structlog.get_logger("paylink.relay")

#: First key of the relays' advisory locks (the second is the partition).
LOCK_NAMESPACE = 0x706C6B31  # "plk1"
#: Shared lock every claiming relay holds on (namespace, its partition count): the
#: count the relays run with is visible to all of them.
COUNT_NAMESPACE = 0x706C6B32  # "plk2"
#: Shared lock a relay holds while it stands by, so holders know a spare is waiting.
STANDBY_NAMESPACE = 0x706C6B33  # "plk3"
#: How often a relay holding partitions checks its lock connection and the others.
CLAIM_CHECK_SECONDS = 5.0
#: How often a standby relay tries to take a partition.
STANDBY_RETRY_SECONDS = 2.0
#: A partition nobody has held for this long is adopted by a relay that already holds
#: one: a standby (which retries every 2 s) gets the first chance, and with no standby
#: left no partition stays unpublished.
ORPHAN_GRACE_SECONDS = 15.0
#: A standby that reached the database this recently is healthy, hence Ready.
STANDBY_HEALTHY_SECONDS = 30.0

_HELD_LOCKS = """
SELECT classid::bigint, objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid::bigint IN (%s, %s, %s)
"""


class PartitionClaim:
    """A relay that holds partitions of the outbox, for as long as it lives.

    Each partition is a PostgreSQL session advisory lock held on a connection of its
    own: the database releases it when that connection ends (the relay died or lost the
    database), and another relay takes it. Relays agree on the number of partitions:
    a relay whose count differs from the one relays already run with stands by until
    they are gone (a rollout that changes PAYLINK_RELAY_PARTITIONS). A relay takes one
    free partition; a partition left free for ``ORPHAN_GRACE_SECONDS`` (its relay died
    and no standby took it) is adopted by a relay already holding one, so however many
    relays run, every partition is published; a relay holding several gives one back
    when a standby waits. A relay that can no longer confirm its locks stops publishing
    before anyone else could take them over, so no two relays ever publish one
    partition, and each order's events stay in order.
    """

    def __init__(
        self,
        conninfo: str,
        partitions: int,
        *,
        orphan_grace: float = ORPHAN_GRACE_SECONDS,
        check_every: float = CLAIM_CHECK_SECONDS,
        retry_every: float = STANDBY_RETRY_SECONDS,
    ) -> None:
        # Keepalives: a connection that silently died frees its lock within seconds.
        self.conninfo = (
            conninfo
            + ("&" if "?" in conninfo else "?")
            + "keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3"
        )
        self.partitions = partitions
        self.orphan_grace, self.check_every, self.retry_every = (
            orphan_grace,
            check_every,
            retry_every,
        )
        self.held: frozenset[int] = frozenset()
        self.last_contact = 0.0  # monotonic time the database last answered
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._checked = 0.0
        self._free_since: dict[int, float] = {}
        self.standing_by = False

    @property
    def partition(self) -> int | None:
        """The lowest partition held (None while standing by)."""
        return min(self.held) if self.held else None

    def healthy_standby(self) -> bool:
        return not self.held and time.monotonic() - self.last_contact < STANDBY_HEALTHY_SECONDS

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            self.standing_by = False
            await self._conn.execute(
                "SELECT pg_advisory_lock_shared(%s, %s)", (COUNT_NAMESPACE, self.partitions)
            )
        return self._conn

    async def _others(self, conn: psycopg.AsyncConnection[Any]) -> tuple[set[int], set[int], int]:
        """(partitions held by anyone, partition counts relays run with, standbys)."""
        cur = await conn.execute(_HELD_LOCKS, (LOCK_NAMESPACE, COUNT_NAMESPACE, STANDBY_NAMESPACE))
        held, counts, standbys = set(), set(), 0
        for namespace, key in await cur.fetchall():
            if namespace == LOCK_NAMESPACE:
                held.add(int(key))
            elif namespace == COUNT_NAMESPACE:
                counts.add(int(key))
            elif key == self.partitions:  # a spare that would take one of these
                standbys += 1
        self.last_contact = time.monotonic()
        return held, counts, standbys

    async def _try_lock(self, conn: psycopg.AsyncConnection[Any], slot: int) -> bool:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, slot))
        row = await cur.fetchone()
        if row is None or not row[0]:
            return False
        self.held |= {slot}
        self._checked = time.monotonic()
        log.info("relay partition claimed", partition=slot, partitions=self.partitions)
        return True

    async def _stand_by(self, conn: psycopg.AsyncConnection[Any], standing: bool) -> None:
        if standing != self.standing_by:
            fn = "pg_advisory_lock_shared" if standing else "pg_advisory_unlock_shared"
            await conn.execute(f"SELECT {fn}(%s, %s)", (STANDBY_NAMESPACE, self.partitions))
            self.standing_by = standing

    async def acquire(self, stop: asyncio.Event) -> frozenset[int] | None:
        """Wait until a partition is free and take it; None once ``stop`` is set."""
        logged = ""
        while not stop.is_set():
            try:
                conn = await self._connect()
                _, counts, _ = await self._others(conn)
                if counts - {self.partitions}:
                    why = (
                        f"relays run with {sorted(counts - {self.partitions})} partitions, "
                        f"this one with PAYLINK_RELAY_PARTITIONS={self.partitions}: "
                        "standing by until they stop"
                    )
                else:
                    for slot in range(self.partitions):
                        if await self._try_lock(conn, slot):
                            await self._stand_by(conn, False)
                            return self.held
                    why = "every relay partition is taken: standing by"
                await self._stand_by(conn, True)
                if why != logged:
                    log.info(why)
                    logged = why
            except psycopg.Error as exc:
                log.warning("partition claim failed", error=type(exc).__name__)
                await self.release()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_every)
        return None

    async def check(self) -> frozenset[int]:
        """The partitions still held (empty: the lock connection is gone), checked every
        few seconds: adopt a partition left free too long, give one back to a standby."""
        if self._conn is None or not self.held:
            return frozenset()
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self.held
        try:
            held, _, standbys = await asyncio.wait_for(
                self._others(self._conn), CLAIM_CHECK_SECONDS
            )
            await self._rebalance(self._conn, held, standbys, now)
        except (psycopg.Error, TimeoutError):
            log.warning("relay partition lost", partitions=sorted(self.held))
            await self.release()
            return frozenset()
        self._checked = time.monotonic()
        return self.held

    async def _rebalance(
        self, conn: psycopg.AsyncConnection[Any], held: set[int], standbys: int, now: float
    ) -> None:
        free = set(range(self.partitions)) - held
        self._free_since = {p: self._free_since.get(p, now) for p in free}
        for slot in sorted(free):
            if now - self._free_since[slot] >= self.orphan_grace and await self._try_lock(
                conn, slot
            ):
                log.warning("relay adopted a partition nobody held", partition=slot)
                return
        if standbys and len(self.held) > 1:
            slot = max(self.held)
            await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, slot))
            self.held -= {slot}
            log.info("relay partition handed to a standby", partition=slot)

    async def release(self) -> None:
        self.held = frozenset()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None


class PartitionLost(Exception):
    """This relay can no longer show that it holds its partition."""
