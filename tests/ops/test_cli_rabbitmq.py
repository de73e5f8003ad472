"""Where the CLI finds RabbitMQ's management API, from the settings deploy/ sets."""

from __future__ import annotations

import pytest

from workers.cli.rabbitmq import ManagementApi, api_root
from workers.settings import Settings

BROKER = "amqp://paylink-worker:w@rabbitmq:5672/paylink"


@pytest.mark.parametrize(
    "given",
    [
        "http://rabbitmq:15672",
        "http://rabbitmq:15672/",
        "http://rabbitmq:15672/api",
        "http://rabbitmq:15672/api/",
    ],
)
def test_the_api_root_never_doubles_the_api_path(given: str) -> None:
    assert api_root(given) == "http://rabbitmq:15672/api"


def test_the_api_root_keeps_a_path_prefix_of_a_proxy() -> None:
    assert api_root("https://ops.example/rabbitmq/api") == "https://ops.example/rabbitmq/api"


def test_deploy_settings_name_the_api_and_its_monitor_user() -> None:
    # Given the exporter's environment in deploy/compose.yaml
    settings = Settings(
        BROKER_URL=BROKER,
        PAYLINK_RABBITMQ_API_URL="http://rabbitmq:15672/api",
        PAYLINK_RABBITMQ_API_USER="paylink-monitor",
        PAYLINK_RABBITMQ_API_PASSWORD="m",
    )
    # When
    api = ManagementApi.from_settings(settings)
    # Then
    assert api == ManagementApi("http://rabbitmq:15672/api", "paylink-monitor", "m")


def test_without_api_settings_the_broker_host_and_credentials_are_used() -> None:
    api = ManagementApi.from_settings(Settings(BROKER_URL=BROKER))

    assert api == ManagementApi("http://rabbitmq:15672/api", "paylink-worker", "w")


def test_none_turns_the_api_off() -> None:
    settings = Settings(BROKER_URL=BROKER, PAYLINK_RABBITMQ_API_URL="none")

    assert ManagementApi.from_settings(settings) is None
    assert ManagementApi.from_settings(Settings(BROKER_URL=BROKER), "off") is None
