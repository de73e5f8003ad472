"""What every actor does with its message: parse, dispatch, log, map failures.

- Valid command: ``domain.bus`` (idempotent, transactional, rejections as events).
- Invalid command that still names a ``command_id``: an ``order.rejected`` event with
  ``VALIDATION_FAILED`` and the field errors; the message is acknowledged.
- Nothing to identify it by: dead-lettered to ``<queue>.XQ`` with the reason.
- A bad Dramatiq envelope (see ``workers.consumer``) whose command names a ``command_id``:
  rejected like an invalid command, with the envelope's problem as the message.
- Text containing NUL characters (no database stores them): invalid, as above; left to
  the database it would fail the same way on every retry.
- ``TransientError``: raised, so Dramatiq retries with exponential backoff (honouring a
  provider's Retry-After); anything unexpected too, and ends in ``<queue>.XQ``.
"""

from __future__ import annotations

import hashlib
import json
from uuid import UUID

import dramatiq
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import CurrentMessage

from domain.bus import reject
from domain.errors import DomainError, TransientError
from domain.outcomes import Cause, payload_hash
from messages.common import CommandBase
from messages.routing import BY_ACTOR, ParseError, parse_command
from workers.runtime.composition import App, get_app
from workers.runtime.consumer import (
    INVALID_ENVELOPE_OPTION,
    MAX_BACKOFF_MS,
    PUBLISHER_OPTION,
    dead_letter,
)
from workers.runtime.grants import GRANTS, apply_grants
from workers.runtime.targets import known_target

log = structlog.get_logger("paylink.worker")


class InvalidCommand(DomainError):
    code = "VALIDATION_FAILED"


def _raw_digest(payload: object) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dead_letter(actor_name: str, reason: str) -> None:
    message = CurrentMessage.get_current_message()
    route = BY_ACTOR.get(actor_name)
    if message is None or route is None:  # pragma: no cover - only outside a worker
        raise RuntimeError(reason)
    broker = dramatiq.get_broker()
    if not isinstance(broker, RabbitmqBroker):  # pragma: no cover - only with RabbitMQ
        raise RuntimeError(reason)
    channel = broker.channel
    dead_letter(channel, route.queue_name, message.encode(), reason)
    log.warning("message dead-lettered", reason=reason, queue=route.queue_name)


def _uuid_or_none(value: object) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _reject_invalid(actor_name: str, payload: object, error: ParseError) -> None:
    assert error.command_id is not None
    app = get_app()
    order_id, store_id = known_target(app.engine, payload)
    cause = Cause(error.command_id, error.command_type or actor_name, order_id, store_id)
    outcome = reject(
        cause, InvalidCommand(error.reason[:1000]), _raw_digest(payload), app.uow, app.context
    )
    log.info("command rejected", code=outcome.code)


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _envelope_problem(actor_name: str, payload: object) -> ParseError | None:
    message = CurrentMessage.get_current_message()
    problem = message.options.get(INVALID_ENVELOPE_OPTION) if message is not None else None
    if problem is None and not _has_nul(payload):
        return None
    route = BY_ACTOR.get(actor_name)
    command_id = _uuid_or_none(payload.get("command_id")) if isinstance(payload, dict) else None
    reason = str(problem) if problem else "text fields may not contain NUL characters"
    return ParseError(
        "VALIDATION_FAILED",
        f"{route.command_type if route else actor_name} is invalid: {reason}",
        command_id=command_id,
        command_type=route.command_type if route else None,
    )


def _granted(command: CommandBase, app: App) -> CommandBase | None:
    """``command`` with its actor narrowed to its publisher's grants (``workers.grants``),
    or None when it was refused for lack of them (the rejection is recorded)."""
    message = CurrentMessage.get_current_message()
    upstream = message.options.get(PUBLISHER_OPTION) if message is not None else None
    if not isinstance(upstream, str):
        return command
    granted = apply_grants(command, upstream, GRANTS.get(app.engine, upstream))
    if isinstance(granted, CommandBase):
        return granted
    outcome = reject(Cause.of(command), granted, payload_hash(command), app.uow, app.context)
    log.info("command rejected", code=outcome.code, command_id=str(command.command_id))
    return None


def execute(actor_name: str, payload: object) -> None:
    structlog.contextvars.clear_contextvars()
    parsed = _envelope_problem(actor_name, payload) or parse_command(actor_name, payload)
    if isinstance(parsed, ParseError):
        if parsed.command_id is None:
            _dead_letter(actor_name, f"{parsed.code}: {parsed.reason}")
        else:
            structlog.contextvars.bind_contextvars(command_id=str(parsed.command_id))
            _reject_invalid(actor_name, payload, parsed)
        return
    app = get_app()
    command = _granted(parsed, app)
    if command is None:
        return
    order_id = getattr(command, "order_id", None)
    structlog.contextvars.bind_contextvars(
        command_id=str(command.command_id),
        command_type=type(command).__name__,
        **({"order_id": str(order_id)} if order_id else {}),
    )
    try:
        outcome = app.batcher.dispatch(command)
    except TransientError as exc:
        log.warning("transient failure, will retry", error=str(exc), retry_after=exc.retry_after)
        if exc.retry_after is not None:
            # never beyond the longest backoff: a later eta is refused (workers.consumer)
            delay = min(int(exc.retry_after * 1000), MAX_BACKOFF_MS)
            raise dramatiq.Retry(str(exc), delay=delay) from exc
        raise
    log.info(
        "command processed",
        outcome=outcome.status,
        code=outcome.code,
        events=[e.type for e in outcome.events],
    )
