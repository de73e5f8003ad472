"""`paylink grants`: an operator grants, lists and revokes what an upstream may assert."""

from __future__ import annotations

from tests.ops.conftest import Cli
from tests.ops.support import assert_one_line_error


def test_an_operator_grants_lists_and_revokes_an_upstreams_stores(cli: Cli) -> None:
    # When an upstream is granted two stores, one of them with two roles
    assert cli("grants", "grant", "shop-portal", "store-a", "--roles", "Admin,User").exit_code == 0
    assert cli("grants", "grant", "shop-portal", "store-b", "--roles", "User").exit_code == 0
    # Then the list says so, one tab-separated line each
    listed = cli("grants", "list", "shop-portal").stdout.splitlines()
    assert listed == ["shop-portal\tstore-a\tAdmin,User", "shop-portal\tstore-b\tUser"]
    # When one store is revoked, the other stays
    assert "1 grant(s) revoked" in cli("grants", "revoke", "shop-portal", "store-a").stdout
    assert cli("grants", "list").stdout.splitlines() == ["shop-portal\tstore-b\tUser"]


def test_a_role_that_does_not_exist_is_one_clear_line(cli: Cli) -> None:
    result = cli("grants", "grant", "shop-portal", "store-a", "--roles", "Superuser")
    assert_one_line_error(result, "roles must be some of")
