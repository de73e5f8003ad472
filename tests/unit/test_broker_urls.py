"""BROKER_URL names a cluster's nodes separated by ';': one parser for every client."""

from __future__ import annotations

import pytest

from workers.settings import broker_urls, first_broker_url


def test_a_cluster_url_lists_its_nodes_in_order_without_blanks() -> None:
    # Given a BROKER_URL of two nodes with stray spaces and a trailing separator
    url = " amqp://a:1@node-1:5672/%2F ; amqp://a:1@node-2:5672/%2F;"

    # When it is split / Then both nodes come back, in order, trimmed
    assert broker_urls(url) == ["amqp://a:1@node-1:5672/%2F", "amqp://a:1@node-2:5672/%2F"]
    assert first_broker_url(url) == "amqp://a:1@node-1:5672/%2F"


def test_a_single_url_is_its_own_first_node() -> None:
    assert first_broker_url("amqp://guest:guest@127.0.0.1:5672/%2F") == (
        "amqp://guest:guest@127.0.0.1:5672/%2F"
    )


def test_a_url_naming_no_broker_is_refused() -> None:
    # Given a BROKER_URL of separators only / When it is read / Then it is an error
    with pytest.raises(ValueError, match="names no broker"):
        first_broker_url(" ; ")
