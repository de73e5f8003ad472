"""One thin Dramatiq actor per command: parse, dispatch, nothing else.

Importing this module registers every actor on the paylink broker; the Dramatiq CLI
(`paylink worker`) imports it. Actor names and queues come from messages.routing.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from messages.routing import ROUTES, CommandRoute
from workers.observability.logs import configure_logging
from workers.runtime.broker import build_broker
from workers.runtime.execution import execute
from workers.settings import get_settings

configure_logging(get_settings())
broker = build_broker(get_settings(), prometheus=get_settings().worker_metrics)
dramatiq.set_broker(broker)


def _thin_actor(route: CommandRoute) -> Callable[[object], None]:
    def handle(command: object) -> None:
        execute(route.actor_name, command)

    handle.__name__ = handle.__qualname__ = route.actor_name
    handle.__doc__ = f"{route.command_type} on {route.queue_name}."
    return handle


ACTORS: dict[str, dramatiq.Actor[[object], None]] = {
    route.actor_name: dramatiq.actor(
        actor_name=route.actor_name, queue_name=route.queue_name, broker=broker
    )(_thin_actor(route))
    for route in ROUTES
}
