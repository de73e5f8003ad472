"""`paylink grants`: which stores each upstream system may act for, and as which roles.

The operator's side of ``workers.runtime.grants`` (its grant, revoke and load functions): an upstream is its RabbitMQ user, the AMQP ``user_id`` it
publishes with; its merchant commands are narrowed to what it is granted here.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from workers.cli.common import CliError, open_database
from workers.runtime import grants as g
from workers.storage import tables as t

app = typer.Typer(help="Upstream systems' grants: stores and roles.", no_args_is_help=True)


@app.command("grant")
def grant(
    upstream: Annotated[str, typer.Argument(help="Its RabbitMQ user (the AMQP user_id).")],
    store: Annotated[str, typer.Argument(help="The store it may act for.")],
    roles: Annotated[str, typer.Option("--roles", help='Comma-separated, e.g. "Admin,User".')],
) -> None:
    """Let an upstream act for a store as some roles (replaces its grant for that store)."""
    engine = open_database()
    try:
        g.grant(engine, upstream, store, [r.strip() for r in roles.split(",") if r.strip()])
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    finally:
        engine.dispose()
    typer.echo(f"{upstream} may act for {store} as {roles}")


@app.command("revoke")
def revoke(
    upstream: Annotated[str, typer.Argument(help="Its RabbitMQ user.")],
    store: Annotated[str | None, typer.Argument(help="One store; all of them if left out.")] = None,
) -> None:
    """Take an upstream's grant for one store, or for all; applies within seconds."""
    engine = open_database()
    try:
        removed = g.revoke(engine, upstream, store)
    finally:
        engine.dispose()
    typer.echo(f"{removed} grant(s) revoked")


@app.command("list")
def list_grants(
    upstream: Annotated[str | None, typer.Argument(help="Only this upstream's.")] = None,
) -> None:
    """Print the grants, one per line: upstream, store, roles (tab-separated)."""
    engine = open_database()
    query = select(t.upstream_grants).order_by("upstream", "store_id")
    if upstream:
        query = query.where(t.upstream_grants.c.upstream == upstream)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    for row in rows:
        typer.echo(f"{row.upstream}\t{row.store_id}\t{row.roles}")
