"""An upstream's grants narrow the actor it asserts (workers.runtime.grants)."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import PermissionDenied, StoreAccessDenied
from messages import commands as c
from messages.common import Role
from tests.unit.builders import actor, build
from workers.runtime.grants import apply_grants, grant, load_grants, revoke
from workers.storage.engine import make_engine
from workers.storage.migrate import upgrade

ERP = "upstream-erp"


def _create(role: Role = Role.ADMIN, stores: tuple[str, ...] = ("store-1",)) -> c.CreateOrder:
    return build(c.CreateOrder, actor=actor(role, stores))


def test_an_actor_within_its_upstreams_grants_is_unchanged() -> None:
    command = _create()

    assert apply_grants(command, ERP, {"store-1": frozenset({"Admin"})}) is command


def test_stores_the_upstream_may_not_act_for_are_taken_from_the_actor() -> None:
    command = _create(stores=("store-1", "store-a"))

    granted = apply_grants(command, ERP, {"store-1": frozenset({"Admin"})})

    assert isinstance(granted, c.CreateOrder)
    assert granted.actor.store_ids == ["store-1"]
    assert granted.actor.role is Role.ADMIN


def test_a_store_where_the_role_is_not_granted_is_taken_too() -> None:
    command = _create(Role.ADMIN, ("store-1", "store-2"))

    granted = apply_grants(
        command, ERP, {"store-1": frozenset({"Admin"}), "store-2": frozenset({"User"})}
    )

    assert isinstance(granted, c.CreateOrder)
    assert granted.actor.store_ids == ["store-1"]


def test_a_role_the_upstream_may_assert_nowhere_is_refused() -> None:
    refused = apply_grants(_create(Role.SUPER_ADMIN), ERP, {"store-1": frozenset({"Admin"})})

    assert isinstance(refused, PermissionDenied)
    assert refused.code == "ROLE_NOT_ALLOWED"


def test_an_actor_naming_only_other_stores_is_refused() -> None:
    refused = apply_grants(_create(stores=("store-a",)), ERP, {"store-1": frozenset({"Admin"})})

    assert isinstance(refused, StoreAccessDenied)
    assert refused.code == "STORE_ACCESS_DENIED"


def test_an_upstream_without_grants_may_do_nothing() -> None:
    assert isinstance(apply_grants(_create(), ERP, {}), PermissionDenied)


def test_commands_without_an_actor_are_not_narrowed() -> None:
    command = build(c.PaymentLinkOpened)

    assert apply_grants(command, ERP, {}) is command


def test_grants_given_and_revoked_are_what_the_workers_load(tmp_path: Path) -> None:
    # Given a migrated database
    url = f"sqlite:///{tmp_path}/paylink.db"
    upgrade(url)
    engine = make_engine(url)
    try:
        # When an operator grants two stores, fails to grant an unknown role, revokes one
        grant(engine, ERP, "store-1", ["Admin", "User"])
        grant(engine, ERP, "store-2", ["User"])
        with pytest.raises(ValueError, match="Root"):
            grant(engine, ERP, "store-3", ["Root"])
        granted = load_grants(engine, ERP)
        revoked = revoke(engine, ERP, "store-1")

        # Then the workers load exactly what is left
        assert granted == {
            "store-1": frozenset({"Admin", "User"}),
            "store-2": frozenset({"User"}),
        }
        assert revoked == 1
        assert load_grants(engine, ERP) == {"store-2": frozenset({"User"})}
    finally:
        engine.dispose()
