"""Publish a batch of messages on an aiormq channel in one socket write.

aiormq's ``basic_publish`` is built for one message at a time: per message it takes
the channel lock, enters a timeout and a close guard, queues the frames as one write
for the connection's writer, and returns a coroutine that the caller must schedule.
For the relay's batches of hundreds of messages that overhead is most of the relay's
CPU: in a py-spy profile of the relay during 100 000 due expiries (``python -m bench
--only expiry --profile DIR``) the writer's one ``write`` per message was 27 % of the
relay's samples, and the lock, timeout, context managers and tasks around each publish
about 20 % more.

:func:`publish_batch` does what ``basic_publish`` does for each message, with the
channel's own bookkeeping (its lock, delivery tags, confirmation futures and the
message-id map it uses to match a ``Basic.Return``), but marshals every message's
frames into one buffer: one entry in the writer's queue, one ``write`` per batch.
Confirms, nacks, returns and a closing channel reach the futures exactly as they would
for ``basic_publish`` (the confirmation futures come from the channel's future store,
which rejects them when the channel closes). ``tests/integration/test_relay.py``
checks confirms, returns, nacks, order, bodies larger than a frame and the bookkeeping
left behind, against a real broker.

This is the one module that writes aiormq's channel internals (``lock``,
``delivery_tag``, ``confirmations``, ``message_id_delivery_tag``, ``write_queue``,
``_split_body``): it mirrors ``Channel.basic_publish`` of aiormq 7.2, refuses to import
with another major/minor version, and ``tests/unit/test_library_internals.py`` fails
when a name it uses disappears or ``basic_publish`` is no longer the code it mirrors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiormq
from aiormq.abc import (
    AbstractChannel,
    ChannelFrame,
    ConfirmationFrameType,
    DeliveredMessage,
    FrameType,
)
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from workers.runtime.library_versions import require_version

#: The aiormq release whose ``Channel.basic_publish`` this module mirrors.
WRITTEN_AGAINST = (7, 2)
require_version("aiormq", WRITTEN_AGAINST, __name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish; ``properties.message_id`` must be set: a returned
    message is matched to its confirmation by it, as in ``basic_publish`` (two messages
    of one batch with the same id match a return to the later one, as there)."""

    body: bytes
    exchange: str
    routing_key: str
    properties: Basic.Properties
    mandatory: bool = False


async def publish_batch(
    channel: AbstractChannel, messages: Sequence[Outgoing]
) -> list[ConfirmationFrameType | DeliveredMessage]:
    """Publish ``messages`` in order, in one write; return each one's confirmation.

    The channel must be in confirm mode. A confirmation is ``Basic.Ack``, or the
    returned message (a mandatory message no queue took, when the channel does not
    raise on returns); a nack, a return that raises, or a channel that closes raises.
    """
    if not isinstance(channel, aiormq.Channel):  # aio-pika's underlay channel is one
        raise TypeError(f"publish_batch writes aiormq.Channel internals, not {type(channel)}")
    if not channel.publisher_confirms:
        raise ValueError("publish_batch needs a channel with publisher confirms")
    confirmations: list[asyncio.Future[ConfirmationFrameType | DeliveredMessage]] = []
    message_ids: list[tuple[str, int]] = []
    async with channel.lock:
        frames: list[FrameType | ContentBody] = []
        for message in messages:
            message_id = message.properties.message_id
            if not message_id:
                raise ValueError("every message of a batch needs a message_id")
            channel.delivery_tag += 1
            tag = channel.delivery_tag
            confirmation = channel.create_future()
            channel.confirmations[tag] = confirmation
            channel.message_id_delivery_tag[message_id] = tag
            confirmations.append(confirmation)
            message_ids.append((message_id, tag))
            frames.append(
                Basic.Publish(
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    mandatory=message.mandatory,
                )
            )
            frames.append(ContentHeader(properties=message.properties, body_size=len(message.body)))
            frames.extend(channel._split_body(message.body))
        try:
            await channel.write_queue.put(
                ChannelFrame.marshall(channel_number=channel.number, frames=frames)
            )
        except BaseException:
            # Nothing reached the writer: give the delivery tags back, as basic_publish does.
            channel.delivery_tag -= len(messages)
            for (message_id, tag), confirmation in zip(message_ids, confirmations, strict=True):
                channel.confirmations.pop(tag, None)
                _forget(channel, message_id, tag)
                confirmation.cancel()
            raise
    try:
        return list(await asyncio.gather(*confirmations))
    finally:
        for message_id, tag in message_ids:
            _forget(channel, message_id, tag)


def _forget(channel: aiormq.Channel, message_id: str, tag: int) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        del channel.message_id_delivery_tag[message_id]
