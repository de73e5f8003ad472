"""`paylink customers erase`: a privacy request published as EraseCustomerData."""

from __future__ import annotations

import json

from tests.ops.conftest import Cli
from tests.ops.support import assert_one_line_error


def test_erase_publishes_the_request_for_the_store_with_an_operator_actor(cli: Cli) -> None:
    # When
    result = cli(
        "customers", "erase", "--store", "shop-1", "--email", "anna@example.com", "--dry-run"
    )
    # Then: the message the workers take, for that store only, by a named operator
    assert result.exit_code == 0, result.output
    message = json.loads(result.stdout)
    (command,) = message["args"]
    assert (message["queue_name"], message["actor_name"]) == (
        "paylink.order-management",
        "erase_customer_data",
    )
    assert (command["store_id"], command["email"], command["actor"]["store_ids"]) == (
        "shop-1",
        "anna@example.com",
        ["shop-1"],
    )
    assert command["actor"]["user_id"].startswith("ops:")


def test_asking_twice_is_two_requests(cli: Cli) -> None:
    args = ("customers", "erase", "--store", "shop-1", "--phone", "+46701234567", "--dry-run")
    ids = {json.loads(cli(*args).stdout)["args"][0]["command_id"] for _ in range(2)}
    assert len(ids) == 2  # orders created since the first request are erased too


def test_erase_needs_exactly_one_contact(cli: Cli) -> None:
    result = cli("customers", "erase", "--store", "shop-1")
    assert_one_line_error(result, "exactly one of --email or --phone")
