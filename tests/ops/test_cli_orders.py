"""`paylink migrate` and `paylink orders`: the order history and one order, on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect

from tests.ops.support import Cli, SeededShop, assert_one_line_error


def _orders(cli: Cli, *args: str) -> list[dict[str, object]]:
    """The history as JSON lines: one order object per line."""
    result = cli("orders", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_migrate_brings_an_empty_database_to_the_current_schema(
    cli: Cli, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an empty database
    monkeypatch.setenv("DATABASE_URL", empty_database)
    # When
    result = cli("migrate")
    # Then
    assert result.exit_code == 0, result.output
    engine = create_engine(empty_database)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"orders", "order_lines", "ledger_entries", "links", "outbox"} <= tables
    assert "postgres" in result.stdout
    assert "head" in result.stdout


def test_migrate_to_an_unreachable_database_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    assert_one_line_error(cli("migrate"), "database error")


def test_history_shows_the_seed_columns_newest_first(cli: Cli, seeded: SeededShop) -> None:
    result = cli("orders", "list")
    assert result.exit_code == 0, result.output
    for header in (
        "Order ID",
        "Status",
        "Communication method",
        "Order amount",
        "Date and time created",
        "Created by",
    ):
        assert header in result.stdout
    assert str(seeded.sent) in result.stdout
    assert str(seeded.placed) in result.stdout
    assert "1050.00 SEK" in result.stdout
    assert "Part Refunded" in result.stdout
    assert "Email" in result.stdout
    rows = _orders(cli)
    assert [r["order_id"] for r in rows] == [str(seeded.placed), str(seeded.sent)]
    placed = rows[0]
    assert placed["communication_method"] == "SMS"
    assert placed["order_amount"] == 105_000
    assert placed["currency"] == "SEK"
    assert placed["status"] == "PART_REFUNDED"
    assert placed["link_status"] == "COMPLETED"
    assert placed["created_by"] == "merchant-admin"


def test_completed_only_shows_orders_the_customer_placed(cli: Cli, seeded: SeededShop) -> None:
    assert [r["order_id"] for r in _orders(cli, "--completed-only")] == [str(seeded.placed)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--store", "store-it"), {"sent", "placed"}),
        (("--store", "elsewhere"), set()),
        (("--store", "elsewhere", "--store", "store-it"), {"sent", "placed"}),
        (("--status", "Created"), {"sent"}),
        (("--status", "in-progress"), set()),
        (("--status", "completed"), {"placed"}),
        (("--status", "part_refunded"), {"placed"}),
        (("--search", "inv-77"), {"placed"}),
        (("--search", "po-10"), {"sent"}),
        (("--search", "ANNA@example"), {"sent"}),
        (("--search", "andersson"), {"sent"}),
        (("--search", "100%"), set()),
        (("--limit", "1"), {"placed"}),
    ],
)
def test_history_filters(
    cli: Cli, seeded: SeededShop, args: tuple[str, ...], expected: set[str]
) -> None:
    ids = {str(seeded.sent): "sent", str(seeded.placed): "placed"}
    assert {ids[r["order_id"]] for r in _orders(cli, *args)} == expected


def test_search_finds_an_order_by_its_id_prefix(cli: Cli, seeded: SeededShop) -> None:
    prefix = str(seeded.placed)[:13]  # includes a dash
    assert [r["order_id"] for r in _orders(cli, "--search", prefix)] == [str(seeded.placed)]


def test_since_and_until_are_whole_days_in_utc(cli: Cli, seeded: SeededShop) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    assert len(_orders(cli, "--since", today.isoformat(), "--until", today.isoformat())) == 2
    assert _orders(cli, "--until", yesterday.isoformat()) == []
    assert _orders(cli, "--since", (today + timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--status", "paid"), "unknown status 'paid'"),
        (("--since", "last tuesday"), "--since: not a date"),
        (("--limit", "0"), "--limit"),
    ],
)
def test_history_bad_input_is_one_line(
    cli: Cli, seeded: SeededShop, args: tuple[str, ...], fragment: str
) -> None:
    assert_one_line_error(cli("orders", "list", *args), fragment)


def test_show_tells_the_whole_story_of_an_order(cli: Cli, seeded: SeededShop) -> None:
    result = cli("orders", "show", str(seeded.placed))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in ("Order lines", "Ledger", "Links", "Notifications", "Timeline"):
        assert title in out
    for fragment in ("Running shoe", "SHOE-42", "25 %", "INV-77", "+46701234567", "600.00 SEK"):
        assert fragment in out
    timeline = out[out.index("Timeline") :]
    events = ["order.created", "link.sent", "order.completed", "payment.captured"]
    positions = [timeline.index(e) for e in [*events, "payment.refunded"]]
    assert positions == sorted(positions)
    assert seeded.token not in out


def test_show_json_has_no_secrets(cli: Cli, seeded: SeededShop) -> None:
    result = cli("orders", "show", str(seeded.placed), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["order"]["order_id"] == str(seeded.placed)
    assert [e["kind"] for e in data["ledger"]][:2] == ["authorization", "capture"] or data["ledger"]
    assert all("token_hash" not in link for link in data["links"])
    assert seeded.token not in result.stdout
    assert [row["id"] for row in data["timeline"]] == sorted(row["id"] for row in data["timeline"])


def test_show_unknown_order_is_one_line(cli: Cli, seeded: SeededShop) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert_one_line_error(cli("orders", "show", missing), f"no order {missing}")


def test_show_something_that_is_not_an_order_id_is_one_line(cli: Cli, seeded: SeededShop) -> None:
    result = cli("orders", "show", "PO-1001")
    assert_one_line_error(result, "not an order id")
    assert result.exit_code == 2
