"""``python -m bench.inprocess [--groups 1,4,8,32] [--orders 640]``: the worker's own CPU
per order created and sent, in one thread, without the broker.

The full bench measures the whole machine; this isolates what paylink's code costs
around the database, which is what grouping amortizes. For each group size G it runs
the grouped steps the worker runs (``domain.bus.run_group``) on a scratch PostgreSQL database
with the local outbox: G CreateOrders in one transaction; then, in one transaction,
the attempts of their G send-links and the answers of the previous G; then each
provider call. It prints CPU per order (``time.process_time``, so kernel time too) by
step and the SQL statements per order. Dramatiq, pika, message parsing and the relay
are not in it. The first pass warms up; the second is measured.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, select

from bench.workloads import configure_store, create_order_body
from domain.bus import Job, Result, handle, run_group
from domain.delivery import Attempt, deliver
from domain.notifications import DeliveryReceipt
from messages import commands as c
from messages.common import CommandBase
from messages.routing import ParseError, parse_message
from workers.devtools.harness import create_database, drop_database
from workers.observability.logs import configure_logging
from workers.runtime.composition import App
from workers.settings import Settings
from workers.storage import tables as t

C = TypeVar("C", bound=CommandBase)


def _command(body: bytes | str, kind: type[C]) -> C:
    """The command a Dramatiq message carries, parsed as the worker parses it."""
    parsed = parse_message(body)
    assert not isinstance(parsed, ParseError), parsed
    assert isinstance(parsed.command, kind), parsed.command
    return parsed.command


class _Run:
    def __init__(self, app: App) -> None:
        self.app = app
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.statements: Counter[str] = Counter()
        self.counting = True
        event.listen(app.engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.counting:
            self.statements[statement.split(None, 1)[0].upper()] += 1

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.process_time()
        try:
            yield
        finally:
            self.cpu[name] += time.process_time() - began

    def sends_for(self, orders: list[uuid.UUID]) -> list[c.SendPaymentLink]:
        """The SendPaymentLink commands the creates left in the outbox (not counted: the
        relay and the broker bring them to the worker)."""
        self.counting = False
        try:
            with self.app.engine.connect() as conn:
                rows = conn.execute(
                    select(t.outbox.c.payload).where(
                        t.outbox.c.kind == "command", t.outbox.c.order_id.in_(orders)
                    )
                ).all()
        finally:
            self.counting = True
        sends = [_command(row.payload, c.SendPaymentLink) for row in rows]
        assert len(sends) == len(orders), (len(sends), len(orders))
        return sends

    def orders(self, count: int, group: int) -> None:
        uow, ctx = self.app.uow, self.app.context
        answers: list[Job] = []
        for start in range(0, count, group):
            creates = [
                _command(create_order_body(uuid.uuid4(), start + k), c.CreateOrder)
                for k in range(group)
            ]
            with self.step("create"):
                _committed(run_group([Job.first(cmd) for cmd in creates], uow, ctx))
            sends = self.sends_for([cmd.order_id for cmd in creates])
            with self.step("record"):
                results = _committed(run_group([*answers, *map(Job.first, sends)], uow, ctx))
            answers = []
            for attempt in results[len(results) - len(sends) :]:
                assert isinstance(attempt, Attempt), "an attempt went alone"
                with self.step("deliver"):
                    receipt = deliver(attempt, uow, ctx)
                assert isinstance(receipt, DeliveryReceipt), receipt
                answers.append(Job.answer(attempt, receipt))
        with self.step("record"):
            _committed(run_group(answers, uow, ctx))


def _committed(results: list[Result] | None) -> list[Result]:
    assert results is not None, "a group's transaction failed"
    return results


def measure(group: int, orders: int) -> str:
    url = create_database("paylink_inprocess")
    outbox = tempfile.TemporaryDirectory(prefix="paylink-inprocess-")
    settings = Settings(
        DATABASE_URL=url, PAYLINK_OUTBOX_DIR=Path(outbox.name), PAYLINK_LOG_FORMAT="json"
    )
    app = App(settings)
    try:
        handle(_command(configure_store(), c.ConfigureStore), app.uow, app.context)
        run = _Run(app)
        run.orders(orders, group)  # warm-up: caches, prepared statements
        run.cpu.clear()
        run.statements.clear()
        run.orders(orders, group)
    finally:
        app.engine.dispose()
        drop_database(url)
        outbox.cleanup()
    total = sum(run.cpu.values())
    steps = ", ".join(f"{step} {1000 * s / orders:.2f}" for step, s in run.cpu.items())
    per_order = ", ".join(f"{k} {n / orders:.2f}" for k, n in sorted(run.statements.items()))
    return (
        f"groups of {group:>3}: {1000 * total / orders:.2f} ms CPU per order ({steps}); "
        f"statements per order: {per_order}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    p.add_argument("--groups", default="1,4,8,16,32", help="group sizes, comma-separated")
    p.add_argument("--orders", type=int, default=640, help="orders per pass")
    args = p.parse_args(argv)
    with open(os.devnull, "w") as sink:  # the worker's JSON lines, written and dropped
        configure_logging(Settings(PAYLINK_LOG_FORMAT="json"), stream=sink)
        for group in (int(g) for g in args.groups.split(",")):
            print(measure(group, args.orders - args.orders % group), flush=True)


if __name__ == "__main__":
    main()
