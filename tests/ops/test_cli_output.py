"""What the CLI prints: whole ids, JSON lines, escaped control characters, honest hints."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from sqlalchemy import create_engine, update

from messages.routing import DEAD_LETTER_REASON_HEADER, Queue, command_bytes
from tests.ops.support import Cli, SeededShop, assert_one_line_error
from workers.cli import common as cli_common
from workers.devtools.commands import opened
from workers.storage import tables as t

CHECKOUT = Queue.CHECKOUT
Channel = pika.adapters.blocking_connection.BlockingChannel
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: What a hostile stored value tries: retitle the terminal, ring, clear the screen.
HOSTILE = "Mallory\x1b]0;owned\x07\x1b[2J\u202e"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI believes stdout is a person's terminal (rich tables)."""
    monkeypatch.setattr(cli_common, "interactive", lambda: True)


# ---- ids never fold ----------------------------------------------------------------


def test_history_piped_into_a_file_keeps_each_order_id_whole_on_its_row(
    cli: Cli, seeded: SeededShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a narrow terminal width in the environment
    monkeypatch.setenv("COLUMNS", "40")
    # When the history goes to a file (not a terminal)
    result = cli("orders", "list")
    # Then grep finds every order id, whole, on the row that describes it
    assert result.exit_code == 0, result.output
    for order_id, status in ((seeded.sent, "Created"), (seeded.placed, "Part Refunded")):
        [row] = [line for line in result.stdout.splitlines() if str(order_id) in line]
        assert row.split("\t")[:2] == [str(order_id), status]


def test_history_on_a_narrow_terminal_never_folds_an_order_id(
    cli: Cli, seeded: SeededShop, terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    result = cli("orders", "list")

    assert result.exit_code == 0, result.output
    assert str(seeded.sent) in result.stdout
    assert str(seeded.placed) in result.stdout
    assert "│" in result.stdout  # a rich table, not the plain lines


def test_show_on_a_narrow_terminal_keeps_link_ids_whole(
    cli: Cli, seeded: SeededShop, terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "90")

    result = cli("orders", "show", str(seeded.placed))

    assert result.exit_code == 0, result.output
    links = result.stdout[result.stdout.index("Links") : result.stdout.index("Notifications")]
    assert UUID_TEXT.search(links), links


def test_history_json_is_one_order_per_line(cli: Cli, seeded: SeededShop) -> None:
    result = cli("orders", "list", "--json")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line)["order_id"] for line in lines] == [
        str(seeded.placed),
        str(seeded.sent),
    ]


# ---- control characters never reach the terminal -------------------------------------


@pytest.fixture
def hostile_order(seeded: SeededShop, database: str) -> Iterator[uuid.UUID]:
    """An order whose stored name and creator carry terminal escapes (written before
    the wire refused them, or by hand)."""
    engine = create_engine(database)
    with engine.begin() as conn:
        before = conn.execute(t.orders.select().where(t.orders.c.order_id == seeded.sent)).one()
        conn.execute(
            update(t.orders)
            .where(t.orders.c.order_id == seeded.sent)
            .values(customer_name=HOSTILE, created_by=HOSTILE, merchant_reference1=HOSTILE)
        )
    yield seeded.sent
    with engine.begin() as conn:
        conn.execute(
            update(t.orders)
            .where(t.orders.c.order_id == seeded.sent)
            .values(
                customer_name=before.customer_name,
                created_by=before.created_by,
                merchant_reference1=before.merchant_reference1,
            )
        )
    engine.dispose()


@pytest.fixture
def hostile_dead_letter(channel: Channel) -> Iterator[str]:
    xq = f"{CHECKOUT}.XQ"
    channel.queue_purge(xq)
    body = json.loads(command_bytes(opened("t" * 43)))
    body["message_id"] = HOSTILE
    channel.basic_publish(
        "",
        xq,
        json.dumps(body, ensure_ascii=False).encode(),
        pika.BasicProperties(delivery_mode=2, headers={DEAD_LETTER_REASON_HEADER: HOSTILE}),
    )
    yield xq
    channel.queue_purge(xq)


COMMANDS = [
    ("orders", "list"),
    ("orders", "list", "--json"),
    ("orders", "list", "--search", "mallory"),
    ("orders", "show", "{order}"),
    ("orders", "show", "{order}", "--json"),
    ("dlq", "list", CHECKOUT),
    ("dlq", "list", CHECKOUT, "--json"),
    ("dlq", "replay", CHECKOUT, "--message-id", HOSTILE),
    ("orders", "show", HOSTILE),
    ("publish", "CreateOrder", "--file", HOSTILE),
]


@pytest.mark.parametrize("on_a_terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_the_cli_never_prints_a_control_character_it_read(
    cli: Cli,
    hostile_order: uuid.UUID,
    hostile_dead_letter: str,
    broker_url: str,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    on_a_terminal: bool,
) -> None:
    # Given stored text, a dead letter and an argument carrying terminal escapes
    monkeypatch.setattr(cli_common, "interactive", lambda: on_a_terminal)
    # When any command shows them
    result = cli(*(a.replace("{order}", str(hostile_order)) for a in args))
    # Then they appear escaped, never as the characters themselves
    printed = result.stdout + result.stderr
    assert "\x1b" not in printed
    assert "\x07" not in printed
    assert "\u202e" not in printed
    assert "Traceback" not in printed


def test_escaped_text_stays_readable() -> None:
    assert cli_common.printable(HOSTILE) == "Mallory\\x1b]0;owned\\x07\\x1b[2J\\u202e"
    assert cli_common.printable("Åsa Öberg, 東京") == "Åsa Öberg, 東京"
    assert cli_common.printable(None) == "-"


# ---- hints that say what is wrong ----------------------------------------------------


def test_a_missing_sqlite_file_is_named_and_not_created(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "nowhere" / "paylink.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")

    assert_one_line_error(cli("orders", "list"), f"no database at {path}", "paylink migrate")
    assert not path.exists()


def test_a_missing_postgresql_database_is_not_a_missing_migration(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/paylink_no_such_db"
    )

    result = cli("orders", "list")

    assert_one_line_error(result, "does not exist", "createdb")
    assert "run `paylink migrate`" not in result.stderr


def test_an_unmigrated_database_asks_for_the_migration(
    cli: Cli, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)

    assert_one_line_error(cli("orders", "list"), "run `paylink migrate`")


def test_an_unreachable_database_asks_where_it_is(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/paylink")

    assert_one_line_error(cli("orders", "list"), "is PostgreSQL running")
