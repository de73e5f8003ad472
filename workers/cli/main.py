"""`paylink`: the one console script for every process and for the people who run them.

Processes: ``worker``, ``relay``, ``scheduler``, ``exporter``, ``web`` (and ``run`` for all of
them on one machine), ``migrate``. Operations: ``publish``, ``orders``, ``queues``,
``dlq``, ``asyncapi``. Names and ports are those of docs/architecture.md.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from sqlalchemy.engine import make_url

from messages.routing import ALL_QUEUES
from workers.cli import asyncapi as contract
from workers.cli import customers as cli_customers
from workers.cli import grants as cli_grants
from workers.cli import orders as cli_orders
from workers.cli import publish as cli_publish
from workers.cli import queues as cli_queues
from workers.cli.common import CliError, PaylinkGroup, load_settings, note, split_queues
from workers.cli.worker import WORKER_METRICS_PORT, worker_command

app = typer.Typer(
    cls=PaylinkGroup,
    name="paylink",
    help="paylink: pay-by-link orders over RabbitMQ. Run a process or inspect the system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(cli_orders.app, name="orders")
app.add_typer(cli_customers.app, name="customers")
app.add_typer(cli_grants.app, name="grants")
app.add_typer(cli_queues.dlq_app, name="dlq")
app.command("queues")(cli_queues.queues)
app.command("publish")(cli_publish.publish)

RELAY_PORT = 9300
SCHEDULER_PORT = 9301
WEB_HEALTH_PORT = 9303


def _lazy(module: str, name: str, what: str) -> Callable[..., Any]:
    """Import a process entry point only when its command runs.

    The one deliberate late import of the CLI: every ``paylink`` command would otherwise
    load the web server, aio-pika, alembic and the exporter's SQL. Measured: importing
    ``workers.cli.main`` takes 2.7 s of CPU here, 5.0 s with every process module (median
    of 5, ``/usr/bin/time python -c "import ..."`` on the shared 2-core machine).
    """
    try:
        return cast(Callable[..., Any], getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError) as exc:
        raise CliError(f"the {what} is not available in this build ({exc})") from None


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable DATABASE_URL)"


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Bring the database schema up to date (alembic upgrade)."""
    upgrade = _lazy("workers.storage.migrate", "upgrade", "migration tool")
    settings = load_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database {safe_url(settings.database_url)} is at {revision}")


@app.command()
def worker(
    processes: Annotated[
        int | None,
        typer.Option("--processes", "-p", min=1, max=64, help="Default PAYLINK_WORKER_PROCESSES."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", "-t", min=1, max=256, help="Default PAYLINK_WORKER_THREADS."),
    ] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option("--queues", "-Q", help="Comma-separated command queues; default all."),
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Dramatiq's Prometheus metrics port.")
    ] = WORKER_METRICS_PORT,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the Dramatiq command line; start nothing.")
    ] = False,
) -> None:
    """Run Dramatiq worker processes for the paylink actors (logging JSON lines).

    The group serves /metrics, /readyz (every process booted and beating) and /healthz
    on the metrics port. If one process dies the group stops; restart it as a whole.
    """
    settings = load_settings()
    chosen = split_queues(queues) if queues else list(ALL_QUEUES)
    argv, extra = worker_command(
        processes or settings.worker_processes,
        threads or settings.worker_threads,
        chosen,
        metrics_port,
    )
    if dry_run:
        typer.echo(" ".join([*(f"{k}={v}" for k, v in extra.items()), *argv]))
        return
    if sys.stderr.isatty():  # in a container every line on stderr is a JSON log record
        note(f"starting workers on {', '.join(chosen)}; metrics and health on :{metrics_port}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(sys.executable, argv, {**os.environ, **extra})  # noqa: S606 - fixed args


@app.command()
def relay(
    health_port: Annotated[int, typer.Option(help="/metrics, /healthz, /readyz.")] = RELAY_PORT,
    partition: Annotated[
        int | None,
        typer.Option(
            help="Publish only this partition's orders (0 .. PAYLINK_RELAY_PARTITIONS-1); "
            "default: all of the outbox.",
            min=0,
        ),
    ] = None,
    claim_partition: Annotated[
        bool,
        typer.Option(
            "--claim-partition",
            help="Take whichever partition is free (PostgreSQL advisory lock) and stand by "
            "while all are taken: run PAYLINK_RELAY_PARTITIONS of these, plus spares.",
        ),
    ] = False,
) -> None:
    """Run the outbox relay: publish committed events and commands."""
    settings = load_settings()
    if claim_partition and partition is not None:
        raise typer.BadParameter("give --partition or --claim-partition, not both")
    if partition is not None and partition >= settings.relay_partitions:
        raise typer.BadParameter(
            f"{partition} is not below PAYLINK_RELAY_PARTITIONS={settings.relay_partitions}",
            param_hint="--partition",
        )
    run_relay = _lazy("workers.processes.relay", "run_relay", "outbox relay")
    run_relay(settings, health_port=health_port, partition=partition, claim=claim_partition)


@app.command()
def scheduler(
    health_port: Annotated[int, typer.Option(help="/metrics, /healthz, /readyz.")] = SCHEDULER_PORT,
) -> None:
    """Run the expiry scheduler: release link and reservation expiries when due."""
    run_scheduler = _lazy("workers.processes.scheduler", "run_scheduler", "expiry scheduler")
    run_scheduler(load_settings(), health_port=health_port)


@app.command()
def exporter(
    port: Annotated[int, typer.Option(min=1, max=65535, help="/metrics, /healthz, /readyz.")] = (
        9302
    ),
) -> None:
    """Serve the paylink_* metrics (queues, outbox, expiries, business counters)."""
    run_exporter = _lazy("workers.processes.exporter", "run_exporter", "metrics exporter")
    run_exporter(load_settings(), port=port)


@app.command()
def web(
    health_port: Annotated[
        int, typer.Option(min=1, max=65535, help="/metrics, /healthz, /readyz.")
    ] = WEB_HEALTH_PORT,
) -> None:
    """Serve the hosted link page customers open (PAYLINK_WEB_HOST:PAYLINK_WEB_PORT)."""
    run_web = _lazy("workers.web.server", "run_web", "link page")
    run_web(load_settings(), health_port=health_port)


@app.command()
def run(
    exporter: Annotated[bool, typer.Option(help="Also run the metrics exporter.")] = True,
    demo: Annotated[bool, typer.Option(help="Play the demo scenario once it is up.")] = False,
) -> None:
    """Run everything on this machine (migrate, workers, relay, scheduler, exporter)."""
    run_all = _lazy("workers.processes.supervisor", "run", "supervisor")
    raise typer.Exit(run_all(load_settings(), exporter=exporter, demo=demo))


@app.command()
def demo() -> None:
    """The demo scenario on a throwaway service (SQLite file, 20 s links), then stop."""
    demo_standalone = _lazy("workers.processes.supervisor", "demo_standalone", "demo")
    raise typer.Exit(demo_standalone())


@app.command()
def asyncapi(
    write: Annotated[bool, typer.Option("--write", help="Write the file instead of printing.")] = (
        False
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the file is not up to date.")
    ] = False,
    output: Annotated[Path, typer.Option(help="Where --write/--check look.")] = Path(
        "docs/asyncapi.yaml"
    ),
) -> None:
    """The AsyncAPI 3.0.0 contract generated from messages/ (docs/asyncapi.yaml)."""
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != contract.render():
            raise CliError(f"{output} is out of date; run `paylink asyncapi --write`")
        typer.echo(f"{output} is up to date")
    elif write:
        changed = contract.write(output)
        typer.echo(f"{'wrote' if changed else 'unchanged:'} {output}")
    else:
        typer.echo(contract.render(), nl=False)


if __name__ == "__main__":
    app()
