"""Relays claiming outbox partitions: none left unpublished, standbys Ready, one count.

These run the claims (``workers.processes.relay_partitions``) against a scratch PostgreSQL
database; tests/integration/test_relay_partitions.py runs whole relays with a broker.
"""

from __future__ import annotations

import asyncio

from tests.ops.support import http_get
from workers.observability.health import start_health_server
from workers.processes.relay import Relay, _conninfo
from workers.processes.relay_partitions import PartitionClaim
from workers.settings import Settings

#: Long enough for a slow CI machine, never waited for when things work.
PATIENCE = 30.0


def claim(database: str, partitions: int = 2, **timing: float) -> PartitionClaim:
    conninfo = _conninfo(database)
    assert conninfo is not None
    fast = {"orphan_grace": 0.0, "check_every": 0.0, "retry_every": 0.05}
    return PartitionClaim(conninfo, partitions, **{**fast, **timing})


async def _settled(relay: PartitionClaim) -> None:
    """Until ``relay`` has either taken a partition or stood by."""

    async def poll() -> None:
        while not (relay.standing_by or relay.held):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), PATIENCE)


async def _until_held(relay: PartitionClaim, stop: asyncio.Event) -> frozenset[int] | None:
    return await asyncio.wait_for(relay.acquire(stop), PATIENCE)


def test_a_lone_relay_publishes_every_partition(database: str) -> None:
    async def scenario() -> tuple[frozenset[int] | None, frozenset[int]]:
        # Given one relay where the deployment counts two partitions
        lone = claim(database)
        try:
            first = await _until_held(lone, asyncio.Event())
            # When it checks its claim and nobody took the other partition
            after = await lone.check()
        finally:
            await lone.release()
        return first, after

    first, after = asyncio.run(scenario())
    # Then it took one, then adopted the one nobody held: nothing stays unpublished
    assert first == frozenset({0})
    assert after == frozenset({0, 1})


def test_an_orphan_is_left_to_standbys_during_the_grace_period(database: str) -> None:
    async def scenario() -> frozenset[int]:
        holder = claim(database, orphan_grace=PATIENCE * 10)
        try:
            await _until_held(holder, asyncio.Event())
            return await holder.check()
        finally:
            await holder.release()

    assert asyncio.run(scenario()) == frozenset({0})


def test_a_relay_holding_two_partitions_hands_one_to_a_standby(database: str) -> None:
    async def scenario() -> tuple[frozenset[int], frozenset[int] | None, bool]:
        # Given a relay that publishes both partitions
        busy = claim(database)
        spare = claim(database)
        stop = asyncio.Event()
        try:
            await _until_held(busy, stop)
            await busy.check()
            # and a second relay arriving: it stands by
            waiting = asyncio.create_task(_until_held(spare, stop))
            await _settled(spare)
            was_ready = spare.healthy_standby()
            # When the busy relay checks its claim, it hands one over
            kept = await busy.check()
            taken = await waiting
        finally:
            await busy.release()
            await spare.release()
        return kept, taken, was_ready

    kept, taken, was_ready = asyncio.run(scenario())
    # Then each publishes one, and the standby counted as ready while it waited
    assert kept == frozenset({0})
    assert taken == frozenset({1})
    assert was_ready


def test_relays_with_another_partition_count_wait_until_those_stop(database: str) -> None:
    async def scenario() -> tuple[bool, frozenset[int] | None]:
        # Given relays running with two partitions
        old = claim(database, partitions=2)
        new = claim(database, partitions=3)
        stop = asyncio.Event()
        try:
            await _until_held(old, stop)
            await old.check()
            # When a relay configured with three starts (a rollout changing the count)
            waiting = asyncio.create_task(_until_held(new, stop))
            await _settled(new)
            claimed_meanwhile = bool(new.held)  # partition 2 was free all along
            # Then it takes partitions only once the old relays are gone
            await old.release()
            taken = await waiting
        finally:
            await old.release()
            await new.release()
        return claimed_meanwhile, taken

    claimed_meanwhile, taken = asyncio.run(scenario())
    assert not claimed_meanwhile
    assert taken == frozenset({0})


def test_a_standby_relay_answers_ready(database: str) -> None:
    settings = Settings(DATABASE_URL=database, PAYLINK_RELAY_PARTITIONS=1 + 1)

    async def scenario() -> tuple[int, int]:
        # Given every partition held by other relays
        holder = claim(database)
        await _until_held(holder, asyncio.Event())
        await holder.check()
        # When a relay in claim mode starts
        relay = Relay(settings, claim=True)
        assert relay.claim is not None
        running = asyncio.create_task(relay.run())
        server = start_health_server(0, relay.ready, host="127.0.0.1")
        try:
            await _settled(relay.claim)
            ready = await asyncio.to_thread(http_get, server.port, "/readyz")
            live = await asyncio.to_thread(http_get, server.port, "/healthz")
        finally:
            relay.stop()
            await asyncio.wait_for(running, PATIENCE)
            server.shutdown()
            server.server_close()
            relay.engine.dispose()
            await holder.release()
        return ready[0], live[0]

    # Then it stands by, Ready: a rollout or a node drain can proceed
    assert asyncio.run(scenario()) == (200, 200)
