"""`paylink customers erase`: a privacy request, published as EraseCustomerData.

The command goes through the broker like any other, so its outcome is an event
upstreams see:
``order.customer_erased`` for each order of the store that had this contact.
"""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated

import typer

from workers.cli.common import CliError
from workers.cli.publish import publish_payload

app = typer.Typer(help="Customers' personal data.", no_args_is_help=True)


@app.command("erase")
def erase(
    store: Annotated[str, typer.Option("--store", help="The store whose orders to erase from.")],
    email: Annotated[str | None, typer.Option("--email", help="The customer's email.")] = None,
    phone: Annotated[
        str | None, typer.Option("--phone", help="The customer's phone (E.164).")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Who asks, for the record (default: ops:<login name>)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the message; send nothing.")
    ] = False,
) -> None:
    """Remove a customer's email, phone and name from every order of a store; the money
    records stay. Prints the command id."""
    if (email is None) == (phone is None):
        raise CliError("give exactly one of --email or --phone", 2)
    payload = {
        "actor": {
            "user_id": user or f"ops:{getpass.getuser()}",
            "role": "Super Admin",
            "store_ids": [store],
        },
        "store_id": store,
        **({"email": email} if email is not None else {"phone": phone}),
    }
    # A fresh id: asking again later must erase the orders created since, not be
    # answered as a duplicate of the first request.
    publish_payload("EraseCustomerData", payload, command_id=str(uuid.uuid4()), dry_run=dry_run)
