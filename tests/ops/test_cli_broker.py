"""`paylink publish`, `paylink queues` and `paylink dlq` against the real RabbitMQ.

Each test cleans the fixed queues it touches before and after, so it sees only what
it published itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from messages.routing import DEAD_LETTER_REASON_HEADER, Queue, command_bytes
from tests.ops.support import Cli, assert_one_line_error
from workers.cli.main import app
from workers.devtools.commands import create_order, opened
from workers.processes.supervisor import relays

CREATE = Queue.CREATE_ORDER
CHECKOUT = Queue.CHECKOUT
Channel = pika.adapters.blocking_connection.BlockingChannel


def _purge(channel: Channel, *names: str) -> None:
    for name in names:
        channel.queue_purge(name)


@pytest.fixture
def create_queue(channel: Channel) -> Iterator[str]:
    _purge(channel, CREATE)
    yield CREATE
    _purge(channel, CREATE)


@pytest.fixture
def checkout_dead_letters(channel: Channel) -> Iterator[str]:
    _purge(channel, CHECKOUT, f"{CHECKOUT}.XQ")
    yield f"{CHECKOUT}.XQ"
    _purge(channel, CHECKOUT, f"{CHECKOUT}.XQ")


def _ready(channel: Channel, name: str) -> int:
    return int(channel.queue_declare(name, passive=True).method.message_count)


def _take_all(channel: Channel, name: str) -> list[tuple[pika.BasicProperties, bytes]]:
    taken = []
    while True:
        method, properties, body = channel.basic_get(name, auto_ack=True)
        if method is None:
            return taken
        taken.append((properties, body))


def _order_file(tmp_path: Path, **drop_or_set: object) -> Path:
    data = json.loads(create_order().model_dump_json())
    for key in ("command_id", "issued_at"):
        data.pop(key)
    for key, value in drop_or_set.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "order.json"
    path.write_text(json.dumps(data, indent=2))
    return path


# ---- publish -----------------------------------------------------------------------


def test_publish_sends_the_exact_dramatiq_message(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    # Given a CreateOrder without command_id and issued_at
    path = _order_file(tmp_path)
    # When
    result = cli("publish", "CreateOrder", "--file", str(path))
    # Then the id is printed, the missing fields were filled (with a note), one message sent
    assert result.exit_code == 0, result.output
    command_id = result.stdout.strip()
    assert uuid.UUID(command_id)
    assert "no command_id given" in result.stderr
    assert "no issued_at given" in result.stderr
    [(properties, body)] = _take_all(channel, create_queue)
    message = json.loads(body)
    assert properties.delivery_mode == 2
    assert message["actor_name"] == "create_order"
    assert message["queue_name"] == create_queue
    assert message["args"][0]["command_id"] == command_id
    assert properties.message_id == message["message_id"]


def test_publish_accepts_the_actor_name_and_keeps_a_given_command_id(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    command = create_order()
    path = tmp_path / "order.json"
    path.write_text(command.model_dump_json())
    result = cli("publish", "create_order", "-f", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(command.command_id)
    assert "note" not in result.stderr
    [(_, body)] = _take_all(channel, create_queue)
    expected = json.loads(command_bytes(command))
    actual = json.loads(body)
    assert actual["args"] == expected["args"]


def test_publishing_a_file_again_sends_the_same_command(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    # Given a command file without a command_id
    path = _order_file(tmp_path)
    # When it is published twice (a retry after a timeout)
    first = cli("publish", "CreateOrder", "--file", str(path))
    second = cli("publish", "CreateOrder", "--file", str(path))
    # Then both carry the same command id, derived from the file: paylink sees a duplicate
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.stdout == second.stdout
    messages = [json.loads(body) for _, body in _take_all(channel, create_queue)]
    assert [m["args"][0]["command_id"] for m in messages] == [first.stdout.strip()] * 2


def test_other_content_gets_another_derived_id(cli: Cli, tmp_path: Path) -> None:
    one = cli("publish", "CreateOrder", "--file", str(_order_file(tmp_path)), "--dry-run")
    other = cli("publish", "CreateOrder", "--file", str(_order_file(tmp_path)), "--dry-run")

    ids = [json.loads(r.stdout)["args"][0]["command_id"] for r in (one, other)]
    assert ids[0] != ids[1]


def test_a_given_command_id_is_used(cli: Cli, create_queue: str, tmp_path: Path) -> None:
    wanted = str(uuid.uuid4())

    result = cli(
        "publish", "CreateOrder", "--file", str(_order_file(tmp_path)), "--command-id", wanted
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == wanted


@pytest.mark.parametrize(
    ("given", "fragment"), [("nope", "not a UUID"), (str(uuid.uuid4()), "differs")]
)
def test_a_command_id_that_cannot_be_used_is_one_line(
    cli: Cli, tmp_path: Path, given: str, fragment: str
) -> None:
    path = tmp_path / "order.json"
    path.write_text(create_order().model_dump_json())

    result = cli("publish", "CreateOrder", "--file", str(path), "--command-id", given)

    assert_one_line_error(result, fragment)


def test_publish_dry_run_sends_nothing(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    result = cli("publish", "CreateOrder", "--file", str(_order_file(tmp_path)), "--dry-run")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["actor_name"] == "create_order"
    assert _ready(channel, create_queue) == 0


def test_publish_malformed_json_names_line_and_column(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "store_id": "store-it",\n  "order_id" "x"\n}\n')
    result = cli("publish", "CreateOrder", "--file", str(path))
    assert_one_line_error(result, "malformed JSON at line 3, column 14")
    assert _ready(channel, create_queue) == 0


def test_publish_missing_required_field_is_refused_before_sending(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    path = _order_file(tmp_path, merchant_reference1=None)
    result = cli("publish", "CreateOrder", "--file", str(path))
    assert_one_line_error(result, "CreateOrder is invalid: merchant_reference1: Field required")
    assert result.exit_code == 1
    assert _ready(channel, create_queue) == 0


def test_publish_prints_every_validation_error(
    cli: Cli, create_queue: str, channel: Channel, tmp_path: Path
) -> None:
    path = _order_file(tmp_path, merchant_reference1=None, purchase_country="Sweden")
    result = cli("publish", "CreateOrder", "--file", str(path))
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2
    assert any("purchase_country" in e for e in errors)
    assert _ready(channel, create_queue) == 0


def test_publish_unknown_command_is_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("publish", "ShipOrder", "--file", str(_order_file(tmp_path)))
    assert_one_line_error(result, "unknown command 'ShipOrder'", "CreateOrder")


def test_publish_missing_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(
        cli("publish", "CreateOrder", "--file", str(tmp_path / "nope.json")), "cannot read"
    )


# ---- queues ------------------------------------------------------------------------


def test_queues_shows_ready_dead_and_delayed_per_queue(
    cli: Cli, create_queue: str, channel: Channel
) -> None:
    for _ in range(3):
        channel.basic_publish("", create_queue, command_bytes(create_order()))
    result = cli("queues", "--json")
    assert result.exit_code == 0, result.output
    depths = {d["queue"]: d for d in json.loads(result.stdout)}
    assert set(depths) >= {CREATE, CHECKOUT, Queue.ORDER_MANAGEMENT}
    assert depths[create_queue]["ready"] == 3
    assert depths[create_queue]["dead"] is not None
    assert depths[create_queue]["delayed"] is not None
    table = cli("queues")
    assert table.exit_code == 0
    for header in ("Ready", "Unacked", "Consumers", "Dead", "Delayed"):
        assert header in table.stdout
    assert "<queue>.XQ" in table.stderr  # the legend, beside the parseable lines


def test_queues_without_rabbitmq_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    assert_one_line_error(cli("queues"), "cannot connect to RabbitMQ at 127.0.0.1:1")


# ---- dead letters ------------------------------------------------------------------


def _dead_letter(channel: Channel, xq: str, body: bytes, reason: str) -> None:
    channel.basic_publish(
        "",
        xq,
        body,
        pika.BasicProperties(delivery_mode=2, headers={DEAD_LETTER_REASON_HEADER: reason}),
    )


def test_dead_letters_are_listed_replayed_and_purged(
    cli: Cli, checkout_dead_letters: str, channel: Channel
) -> None:
    # Given a replayable dead letter (retries exhausted) and one that will never parse
    good = json.loads(command_bytes(opened("t" * 43)))
    good["options"] = {"retries": 20, "traceback": "TransientError: ..."}
    _dead_letter(channel, checkout_dead_letters, json.dumps(good).encode(), "max retries")
    _dead_letter(channel, checkout_dead_letters, b"\x00not json", "MALFORMED_MESSAGE: body")

    # When listed, both show, and both stay
    listed = cli("dlq", "list", CHECKOUT, "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["actor"], r["reason"]) for r in rows] == [
        ("payment_link_opened", "max retries"),
        ("-", "MALFORMED_MESSAGE: body"),
    ]
    assert rows[0]["message_id"] == good["message_id"]
    assert _ready(channel, checkout_dead_letters) == 2
    assert cli("dlq", "list", CHECKOUT).exit_code == 0

    # When the good one is replayed by id, it is back on the queue with a fresh budget
    replay = cli("dlq", "replay", CHECKOUT, "--message-id", good["message_id"])
    assert replay.exit_code == 0, replay.output
    [(properties, body)] = _take_all(channel, CHECKOUT)
    assert json.loads(body)["args"] == good["args"]
    assert json.loads(body)["options"] == {}
    assert DEAD_LETTER_REASON_HEADER not in (properties.headers or {})
    assert _ready(channel, checkout_dead_letters) == 1

    # When everything is replayed, the unparseable one is reported and left in place
    replay_all = cli("dlq", "replay", CHECKOUT, "--all")
    assert replay_all.exit_code == 1
    assert "not replayed" in replay_all.stderr
    assert "Traceback" not in replay_all.output
    assert _ready(channel, checkout_dead_letters) == 1
    assert _ready(channel, CHECKOUT) == 0

    # Purge needs --yes, then empties the XQ
    assert_one_line_error(cli("dlq", "purge", CHECKOUT), "--yes")
    assert _ready(channel, checkout_dead_letters) == 1
    purged = cli("dlq", "purge", CHECKOUT, "--yes")
    assert purged.exit_code == 0, purged.output
    assert "purged 1 message" in purged.stdout
    assert _ready(channel, checkout_dead_letters) == 0


def test_one_dead_letter_is_deleted_and_the_others_stay(
    cli: Cli, checkout_dead_letters: str, channel: Channel
) -> None:
    # Given three dead letters
    bodies = [json.loads(command_bytes(opened("t" * 43))) for _ in range(3)]
    for body in bodies:
        _dead_letter(channel, checkout_dead_letters, json.dumps(body).encode(), "max retries")
    ids = [str(body["message_id"]) for body in bodies]
    # When the middle one is deleted (with --yes)
    refused = cli("dlq", "delete", CHECKOUT, "--message-id", ids[1])
    deleted = cli("dlq", "delete", CHECKOUT, "--message-id", ids[1], "--yes")
    # Then only it is gone, and the others are still there, in order
    assert_one_line_error(refused, "--yes")
    assert deleted.exit_code == 0, deleted.output
    listed = cli("dlq", "list", CHECKOUT, "--json")
    assert [json.loads(line)["message_id"] for line in listed.stdout.splitlines()] == [
        ids[0],
        ids[2],
    ]


def test_deleting_a_dead_letter_that_is_not_there_is_one_line(
    cli: Cli, checkout_dead_letters: str
) -> None:
    result = cli("dlq", "delete", CHECKOUT, "--message-id", "nope", "--yes")

    assert_one_line_error(result, "no message nope")


def test_replaying_an_unknown_message_id_is_one_line(cli: Cli, checkout_dead_letters: str) -> None:
    assert_one_line_error(cli("dlq", "replay", CHECKOUT, "--message-id", "nope"), "no message nope")


def test_replay_needs_a_message_id_or_all(cli: Cli) -> None:
    assert_one_line_error(cli("dlq", "replay", CHECKOUT), "--message-id ID or --all")


@pytest.mark.parametrize(
    "args",
    [
        ("dlq", "list", "paylink.nowhere"),
        ("dlq", "purge", "orders", "--yes"),
        ("worker", "--queues", "paylink.checkout,paylink.nowhere", "--dry-run"),
    ],
)
def test_unknown_queue_is_one_line_listing_the_valid_ones(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert_one_line_error(result, "unknown queue", "paylink.create-order")
    assert result.exit_code == 2


# ---- the command line itself ----------------------------------------------------------


def _command_paths() -> list[tuple[str, ...]]:
    from typer.main import get_command

    root = get_command(app)
    paths: list[tuple[str, ...]] = [()]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append((name,))
        for sub in getattr(command, "commands", {}):
            paths.append((name, sub))
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "paylink")
def test_every_command_has_help(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_worker_runs_dramatiq_with_metrics_on_the_chosen_queues(cli: Cli) -> None:
    result = cli(
        "worker", "-p", "3", "-t", "5", "-Q", "paylink.checkout", "-Q", "paylink.send-link",
        "--metrics-port", "9999", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PAYLINK_WORKER_METRICS=1 PAYLINK_WORKER_PROCESSES=3 dramatiq_prom_port=9999" in (
        result.stdout
    )
    assert result.stdout.rstrip().endswith(
        "-m workers.cli.worker workers.cli.worker_boot --skip-logging "
        "--fork-function workers.cli.worker_group_server:serve -p 3 -t 5 "
        "-Q paylink.checkout paylink.send-link"
    )


def test_unknown_subcommand_is_one_line(cli: Cli) -> None:
    result = cli("launch")
    assert_one_line_error(result, "No such command 'launch'")
    assert result.exit_code == 2


def test_asyncapi_check_passes_on_the_committed_document(cli: Cli) -> None:
    root = Path(__file__).resolve().parents[2]
    result = cli("asyncapi", "--check", "--output", str(root / "docs/asyncapi.yaml"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("partition", ["2", "7"])
def test_relay_partition_beyond_the_configured_count_is_one_line(
    cli: Cli, partition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYLINK_RELAY_PARTITIONS", "2")
    result = cli("relay", "--partition", partition)
    assert_one_line_error(result, "PAYLINK_RELAY_PARTITIONS=2")
    assert result.exit_code == 2


def test_run_starts_one_relay_per_partition_on_postgresql_and_one_on_sqlite() -> None:
    from workers.settings import Settings

    pg = Settings(DATABASE_URL="postgresql+psycopg://db/paylink", PAYLINK_RELAY_PARTITIONS=3)
    started = relays(pg)
    assert [r.argv[r.argv.index("--partition") + 1] for r in started] == ["0", "1", "2"]
    ports = [r.argv[r.argv.index("--health-port") + 1] for r in started[1:]]
    assert len(set(ports)) == 2
    assert "9300" not in ports  # the first relay keeps the relay's port
    sqlite = Settings(DATABASE_URL="sqlite:///x.db", PAYLINK_RELAY_PARTITIONS=3)
    [only] = relays(sqlite)
    assert "--partition" not in only.argv  # SQLite: one relay for the whole outbox


def test_relay_takes_a_partition_or_claims_one_not_both(cli: Cli) -> None:
    result = cli("relay", "--partition", "0", "--claim-partition")
    assert_one_line_error(result, "not both")
    assert result.exit_code == 2
