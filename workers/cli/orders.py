"""`paylink orders`: the order history of seed 000, and one order in full for operators.

The history shows Order ID, Status, Communication method, Order amount, Date and time
created and Created by, like the portal. ``orders show`` is the operator's view: it
includes the customer's contact details, which are never logged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    String,
    Table,
    cast,
    func,
    or_,
    select,
)

from domain.currency import format_minor
from domain.errors import DomainError
from domain.status import LinkStatus, PaymentStatus
from workers.cli.common import CliError, emit_table, open_database
from workers.storage import tables as t

app = typer.Typer(
    help="The order history, and one order with its lines, ledger, links and events.",
    no_args_is_help=True,
)

STATUSES: tuple[str, ...] = (*(s.value for s in LinkStatus), *(s.value for s in PaymentStatus))
CHANNEL_NAMES = {"email": "Email", "sms": "SMS"}


def status_name(status: str) -> str:
    """``IN_PROGRESS`` -> ``In Progress``: how the portal writes statuses."""
    return status.replace("_", " ").title()


def money(amount: int, currency: str) -> str:
    try:
        return format_minor(amount, currency)
    except DomainError:
        return f"{amount} {currency} (minor units)"


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _status(text: str) -> str:
    value = re.sub(r"[\s\-]+", "_", text.strip()).upper()
    if value not in STATUSES:
        names = ", ".join(status_name(s) for s in STATUSES)
        raise CliError(f"unknown status {text!r}; use one of: {names}", 2)
    return value


def _moment(text: str, option: str, *, end: bool) -> datetime:
    """A date (whole day, UTC) or an ISO 8601 time; ``end`` makes a date inclusive."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = date.fromisoformat(text.strip())
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{option}: not a date or time: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)", 2
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _contains(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def _search(text: str) -> ColumnElement[bool]:
    o = t.orders
    matches = [
        _contains(o.c.merchant_reference1, text),
        _contains(o.c.merchant_reference2, text),
        _contains(o.c.customer_name, text),
        _contains(o.c.customer_email, text),
    ]
    hex_prefix = text.strip().lower().replace("-", "")
    if re.fullmatch(r"[0-9a-f]{1,32}", hex_prefix):
        # PostgreSQL renders a uuid with dashes, SQLite stores 32 hex digits: compare both
        # without dashes.
        matches.append(func.replace(cast(o.c.order_id, String), "-", "").like(f"{hex_prefix}%"))
    return or_(*matches)


def _history_row(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    return {
        "order_id": str(row.order_id),
        "store_id": row.store_id,
        "status": row.status,
        "link_status": row.link_status,
        "communication_method": CHANNEL_NAMES.get(row.channel, row.channel),
        "order_amount": row.order_amount,
        "currency": row.currency,
        "order_amount_display": money(row.order_amount, row.currency),
        "created_at": _iso(row.created_at),
        "created_by": row.created_by,
        "merchant_reference1": row.merchant_reference1,
        "merchant_reference2": row.merchant_reference2,
    }


@app.command("list")
def list_orders(
    store: Annotated[
        list[str] | None, typer.Option("--store", help="Store id (repeat for several).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Link or payment status, e.g. 'In Progress', captured."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Created on or after (YYYY-MM-DD, UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Created on or before (YYYY-MM-DD, UTC).")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(help="Merchant reference, order id prefix, customer name or email."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 50,
    completed_only: Annotated[
        bool,
        typer.Option(
            "--completed-only", help="Only orders the customer placed (the portal's Orders page)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines for machines: one order per line.")
    ] = False,
) -> None:
    """List orders, newest first, as the portal's order history shows them."""
    o = t.orders
    query = select(
        o.c.order_id,
        o.c.store_id,
        o.c.status,
        o.c.link_status,
        o.c.channel,
        o.c.order_amount,
        o.c.currency,
        o.c.created_at,
        o.c.created_by,
        o.c.merchant_reference1,
        o.c.merchant_reference2,
    )
    if store:
        query = query.where(o.c.store_id.in_(store))
    if status:
        wanted = [_status(s) for s in status]
        query = query.where(or_(o.c.status.in_(wanted), o.c.link_status.in_(wanted)))
    if completed_only:
        query = query.where(o.c.link_status == LinkStatus.COMPLETED.value)
    if since:
        query = query.where(o.c.created_at >= _moment(since, "--since", end=False))
    if until:
        query = query.where(o.c.created_at < _moment(until, "--until", end=True))
    if search and search.strip():
        query = query.where(_search(search))
    query = query.order_by(o.c.created_at.desc(), o.c.order_id).limit(limit)
    engine = open_database()
    try:
        with engine.connect() as conn:
            rows = [_history_row(r) for r in conn.execute(query)]
    finally:
        engine.dispose()
    if as_json:
        for row in rows:  # ensure_ascii: no control character reaches the terminal
            typer.echo(json.dumps(row))
        return
    emit_table(
        f"Order history ({len(rows)} shown)",
        HISTORY_COLUMNS,
        [
            (
                r["order_id"],
                status_name(r["status"]),
                r["communication_method"],
                r["order_amount_display"],
                when(datetime.fromisoformat(r["created_at"])),
                r["created_by"],
            )
            for r in rows
        ],
        ids=("Order ID",),
        right=("Order amount",),
    )


# ---- one order ---------------------------------------------------------------------


def _tax_rate(basis_points: int) -> str:
    return f"{(Decimal(basis_points) / 100).normalize():f} %"


def _summary(kind: str, payload: str) -> str:
    if kind != "event":
        return ""
    try:
        data = json.loads(payload)
    except ValueError:
        return "(payload is not JSON)"
    keys = ("code", "message", "amount", "currency", "channel", "provider", "reason", "stage")
    return ", ".join(f"{k}={data[k]}" for k in keys if data.get(k) is not None)


def _timeline(conn: Connection, order_id: UUID) -> list[dict[str, Any]]:
    """The order's events from ``event_history`` (which outlives the outbox), each with
    when its outbox row was published: ``sent_at`` None and ``in_outbox`` False once the
    published row was pruned by retention."""
    h, ob = t.event_history, t.outbox
    sent: dict[object, datetime | None] = {}
    for message_id, sent_at in conn.execute(
        select(ob.c.message_id, ob.c.sent_at).where(ob.c.order_id == order_id, ob.c.kind == "event")
    ):
        sent[message_id] = sent.get(message_id) or sent_at
    query = select(h).where(h.c.order_id == order_id).order_by(h.c.id)
    return [
        {
            **dict(row),
            "kind": "event",
            "sent_at": sent.get(row["message_id"]),
            "in_outbox": row["message_id"] in sent,
        }
        for row in conn.execute(query).mappings()
    ]


def load_order(engine: Engine, order_id: UUID) -> dict[str, Any] | None:
    """Everything the operator view shows, as plain data (no token hashes)."""
    o = t.orders
    with engine.connect() as conn:
        order = conn.execute(select(o).where(o.c.order_id == order_id)).mappings().one_or_none()
        if order is None:
            return None

        def rows(table: Table, *order_by: ColumnElement[object]) -> list[dict[str, Any]]:
            query = select(table).where(table.c.order_id == order_id).order_by(*order_by)
            return [dict(r) for r in conn.execute(query).mappings()]

        lines = rows(t.order_lines, t.order_lines.c.position)
        ledger = rows(t.ledger_entries, t.ledger_entries.c.seq)
        links = [
            {k: v for k, v in link.items() if k != "token_hash"}
            for link in rows(t.links, t.links.c.seq)
        ]
        notifications = rows(t.notifications, t.notifications.c.updated_at)
        timeline = _timeline(conn, order_id)
    return {
        "order": dict(order),
        "lines": lines,
        "ledger": ledger,
        "links": links,
        "notifications": notifications,
        "timeline": timeline,
    }


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _redact(value: object) -> object:
    """Link tokens travel inside SendPaymentLink commands; an operator view never shows them."""
    if isinstance(value, dict):
        return {k: "***" if k == "token" else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _uncertain(notification: Mapping[str, object]) -> str:
    """Attempts a killed worker left unknown, and how many of them sent again although
    the provider could not tell (possible duplicates)."""
    uncertain, blind = notification["uncertain_attempts"], notification["blind_resends"]
    return f"{uncertain} ({blind} sent again blind)" if uncertain else "0"


#: The order history's columns, as the portal names them (seed 000).
HISTORY_COLUMNS = (
    "Order ID",
    "Status",
    "Communication method",
    "Order amount",
    "Date and time created",
    "Created by",
)
#: Columns of ``orders show`` that hold ids: shown whole, never folded.
ID_COLUMNS = ("Value", "Link ID")


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    emit_table(title, headers, rows, ids=[h for h in headers if h in ID_COLUMNS])


@app.command("show")
def show_order(
    order_id: Annotated[str, typer.Argument(help="The order id (a UUID).")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines.")] = False,
) -> None:
    """One order: fields, lines, ledger, links, notification state and its event timeline."""
    try:
        oid = UUID(order_id.strip())
    except ValueError:
        raise CliError(f"not an order id: {order_id!r} (expected a UUID)", 2) from None
    engine = open_database()
    try:
        data = load_order(engine, oid)
    finally:
        engine.dispose()
    if data is None:
        raise CliError(f"no order {oid}")
    if as_json:
        for row in data["timeline"]:
            row["payload"] = _redact(json.loads(row["payload"]))
        typer.echo(json.dumps(_jsonable(data), indent=2))
        return
    o, cur = data["order"], data["order"]["currency"]
    fields = {
        "Order ID": o["order_id"],
        "Store": o["store_id"],
        "Status": f"{status_name(o['status'])} (link {status_name(o['link_status'])})",
        "Communication method": CHANNEL_NAMES.get(o["channel"], o["channel"]),
        "Customer": " / ".join(
            str(v) for v in (o["customer_name"], o["customer_email"], o["customer_phone"]) if v
        ),
        "Purchase country": o["purchase_country"],
        "Order amount": money(o["order_amount"], cur),
        "Order tax amount": money(o["order_tax_amount"], cur),
        "Merchant reference 1": o["merchant_reference1"],
        "Merchant reference 2": o["merchant_reference2"],
        "Auto capture": "yes" if o["auto_capture"] else "no",
        "Created by": o["created_by"],
        "Date and time created": when(o["created_at"]),
        "Completed": when(o["completed_at"]),
        "Authorization": o["authorization_id"],
        "Link expires": when(o["link_expires_at"]),
        "Reservation expires": when(o["reservation_expires_at"]),
        "Version": o["version"],
    }
    _table("Order", ("Field", "Value"), list(fields.items()))
    _table(
        "Order lines",
        ("#", "Name", "Reference", "Type", "Qty", "Unit price", "Tax rate", "Total", "Tax"),
        [
            (
                ln["position"],
                ln["name"],
                ln["reference"],
                ln["type"],
                ln["quantity"],
                money(ln["unit_price"], cur),
                _tax_rate(ln["tax_rate"]),
                money(ln["total_amount"], cur),
                money(ln["total_tax_amount"], cur),
            )
            for ln in data["lines"]
        ],
    )
    _table(
        "Ledger",
        ("#", "Kind", "Amount", "At", "Reason", "Lines", "Description"),
        [
            (
                e["seq"],
                e["kind"],
                money(e["amount"], cur),
                when(e["at"]),
                e["reason"],
                ", ".join(f"{s['reference']} ×{s['quantity']}" for s in e["lines"] or []) or None,
                e["description"],
            )
            for e in data["ledger"]
        ],
    )
    _table(
        "Links",
        ("#", "Link ID", "Created", "Expires", "Delivery", "Superseded"),
        [
            (
                lk["seq"],
                lk["link_id"],
                when(lk["created_at"]),
                when(lk["expires_at"]),
                lk["delivery"],
                "yes" if lk["superseded"] else "no",
            )
            for lk in data["links"]
        ],
    )
    _table(
        "Notifications",
        (
            "Link ID",
            "Channel",
            "State",
            "Attempts",
            "Uncertain",
            "Provider",
            "Error",
            "Reported",
            "Updated",
        ),
        [
            (
                n["link_id"],
                n["channel"],
                n["state"],
                n["attempts"],
                _uncertain(n),
                " ".join(filter(None, (n["provider"], n["provider_message_id"]))) or None,
                n["error"],
                " ".join(filter(None, (n["report"], n["report_reason"]))) or None,
                when(n["updated_at"]),
            )
            for n in data["notifications"]
        ],
    )
    _table(
        "Timeline",
        ("#", "At", "Kind", "Type / queue", "Published", "Detail"),
        [
            (
                e["id"],
                when(e["created_at"]),
                e["kind"],
                e["destination"],
                when(e["sent_at"])
                if e["sent_at"]
                else ("pending" if e["in_outbox"] else "yes (row pruned)"),
                _summary(e["kind"], e["payload"]) or None,
            )
            for e in data["timeline"]
        ],
    )
