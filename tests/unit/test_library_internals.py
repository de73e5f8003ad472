"""The private library code paylink's two adapters build on is still what they were
written against (``workers.runtime.dramatiq_internals``, ``workers.runtime.bulk_publish``).

A library release that renames, re-signs or rewrites what an adapter copies fails here,
by name, instead of silently changing the fast path. When one fails: re-read the named
code in the new release, adapt the adapter, then update the pinned version and the
fingerprint below.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aiormq
import pytest
from dramatiq.broker import MessageProxy
from dramatiq.brokers import rabbitmq

from workers.runtime import bulk_publish, dramatiq_internals
from workers.runtime.library_versions import (
    UnsupportedLibraryVersion,
    major_minor,
    require_version,
)


def _fingerprint(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


#: Fingerprints of the library code the adapters copy or wrap, as of Dramatiq 2.2.1 and
#: aiormq 7.2.4.
COPIED = {
    "dramatiq _RabbitmqConsumer.__next__": (
        rabbitmq._RabbitmqConsumer.__next__,
        "75ac0236fc2754b8",
    ),
    "dramatiq _RabbitmqConsumer.nack": (rabbitmq._RabbitmqConsumer.nack, "a81f830b0d899d59"),
    "dramatiq RabbitmqBroker._declare_queue": (
        rabbitmq.RabbitmqBroker._declare_queue,
        "9ebebb7082f01042",
    ),
    "dramatiq RabbitmqBroker._build_queue_arguments": (
        rabbitmq.RabbitmqBroker._build_queue_arguments,
        "7551172b30346a65",
    ),
    "aiormq Channel.basic_publish": (aiormq.Channel.basic_publish, "4c5c91a4d75be291"),
    "aiormq Channel._split_body": (aiormq.Channel._split_body, "9010dfafc787ade6"),
}


@pytest.mark.parametrize("name", sorted(COPIED))
def test_the_library_code_an_adapter_copies_is_unchanged(name: str) -> None:
    # Given the library function an adapter copies or calls
    function, written_against = COPIED[name]

    # When its source is fingerprinted / Then it is the code the adapter was written from
    assert _fingerprint(function) == written_against, (
        f"{name} changed: re-read it and adapt the adapter that names it"
    )


def test_dramatiq_private_names_keep_their_signatures() -> None:
    # Given the private names the Dramatiq adapter subclasses, constructs or reads
    consumer_init = _parameters(rabbitmq._RabbitmqConsumer.__init__)
    message_init = _parameters(rabbitmq._RabbitmqMessage.__init__)
    proxy_source = inspect.getsource(MessageProxy)
    consumer_source = inspect.getsource(rabbitmq._RabbitmqConsumer.__init__)

    # Then they are as the adapter uses them
    assert consumer_init == ["self", "broker", "queue_name", "prefetch", "timeout"]
    assert message_init == ["self", "redelivered", "tag", "message"]
    assert "self._tag = tag" in inspect.getsource(rabbitmq._RabbitmqMessage)
    assert "self._message = message" in proxy_source
    assert "self._exception = exception" in proxy_source
    for attribute in ("connection", "channel", "iterator", "known_tags", "broker", "queue_name"):
        assert f"self.{attribute} =" in consumer_source, attribute
    assert isinstance(rabbitmq.RabbitmqBroker.consumer_class, property)
    assert _parameters(rabbitmq.RabbitmqBroker._declare_queue) == ["self", "queue_name"]
    assert "queues_pending" in inspect.getsource(rabbitmq.RabbitmqBroker)


def test_aiormq_channel_internals_keep_their_names() -> None:
    # Given the aiormq channel attributes bulk_publish reads and writes
    sources = "".join(
        inspect.getsource(cls)
        for cls in aiormq.Channel.__mro__
        if cls.__module__.startswith("aiormq")
    )

    # Then the channel still has every one of them
    for attribute in (
        "lock",
        "delivery_tag",
        "confirmations",
        "message_id_delivery_tag",
        "write_queue",
        "number",
        "publisher_confirms",
    ):
        assert f"self.{attribute}" in sources or hasattr(aiormq.Channel, attribute), attribute
    assert callable(aiormq.Channel.create_future)
    assert _parameters(aiormq.Channel._split_body) == ["self", "body"]
    assert _parameters(aiormq.abc.ChannelFrame.marshall) == [
        "channel_number",
        "frames",
        "drain_future",
    ]


def test_adapters_pin_the_installed_major_and_minor_versions() -> None:
    # Given the adapters as imported (each refuses another version at import)
    # Then the installed libraries are the versions they pin
    assert major_minor(version("dramatiq")) == dramatiq_internals.WRITTEN_AGAINST
    assert major_minor(version("aiormq")) == bulk_publish.WRITTEN_AGAINST


def test_another_minor_version_is_refused_with_what_to_reread() -> None:
    # Given an adapter written against aiormq 7.2 / When aiormq 7.3 is installed
    with pytest.raises(UnsupportedLibraryVersion) as refused:
        require_version("aiormq", (7, 2), "workers.runtime.bulk_publish", installed="7.3.0")

    # Then it refuses, naming the adapter, both versions and what to do
    message = str(refused.value)
    assert "workers.runtime.bulk_publish" in message
    assert "aiormq 7.2.x" in message
    assert "7.3.0 is installed" in message
    assert "re-read" in message


def test_the_same_minor_version_with_another_patch_is_accepted() -> None:
    require_version("dramatiq", (2, 2), "adapter", installed="2.2.9")


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(UnsupportedLibraryVersion, match=r"major\.minor"):
        require_version("dramatiq", (2, 2), "adapter", installed="nightly")
