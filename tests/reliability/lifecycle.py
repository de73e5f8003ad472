"""Orders driven through their lifecycle the way upstream and the hosted checkout do.

The merchant's system publishes ``CreateOrder``; paylink sends the link; the customer
reads it (the token comes from the file outbox, as from their mailbox), opens it and
completes the checkout; the merchant then captures and refunds part. Each step is
published only once the event of the previous one was seen, so every command of a
healthy run is accepted, whatever faults are injected meanwhile.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from messages import commands as c
from messages.common import CommandBase
from workers.devtools.commands import (
    ORDER_AMOUNT,
    completed,
    configure_store,
    create_order,
    merchant,
    opened,
)
from workers.devtools.harness import EventCollector, Publisher, token_from_outbox

#: Event -> what the next actor does about it.
NEXT = {
    "link.sent": "open",
    "link.opened": "complete",
    "order.completed": "capture",
    "payment.captured": "refund",
    "payment.refunded": "done",
}
#: The final status of an order whose lifecycle ended at each event.
FINAL_STATUS = {"order.completed": "AUTHORIZED", "payment.refunded": "PART_REFUNDED"}


@dataclass
class Run:
    order_id: str
    token: str | None = None
    last: str = "order.created"
    finished: bool = False


class Lifecycle:
    def __init__(
        self,
        pub: Publisher,
        events: EventCollector,
        outbox: Path,
        *,
        until: str = "payment.refunded",
        refund: int = 10_000,
        sms_every: int = 5,
    ) -> None:
        self.pub, self.events, self.outbox = pub, events, outbox
        self.until, self.refund, self.sms_every = until, refund, sms_every
        self.runs: dict[str, Run] = {}
        #: command id -> (command type, order id) of every command this driver published
        self.commands: dict[str, tuple[str, str]] = {}
        #: rejections of this driver's commands (a healthy run has none)
        self.rejected: list[dict[str, Any]] = []
        #: events of other orders (e.g. hostile traffic), left for the scenario
        self.other: list[dict[str, Any]] = []

    # ---- publishing ------------------------------------------------------------------

    def _publish(self, command: CommandBase, order_id: str) -> None:
        self.commands[str(command.command_id)] = (type(command).__name__, order_id)
        self.pub.publish(command)

    def configure_store(self) -> None:
        store = configure_store()
        self.pub.publish(store)
        self.events.wait_for(
            lambda: self.events.for_command(store.command_id), 60, "store.configured"
        )

    def create(
        self, n: int, *, pump_every: int = 200, tick: Callable[[], None] | None = None
    ) -> None:
        for i in range(n):
            phone = "+46701234567" if self.sms_every and i % self.sms_every == 0 else None
            cmd = create_order(email=None if phone else "anna@example.com", phone=phone)
            order_id = str(cmd.order_id)
            self.runs[order_id] = Run(order_id)
            self._publish(cmd, order_id)
            if i % pump_every == 0:
                self.pump()
                if tick is not None:
                    tick()

    # ---- reacting to events ----------------------------------------------------------

    def pump(self, budget: float = 0.05) -> int:
        """Act on the events that arrived; returns how many were handled."""
        handled, deadline = 0, time.monotonic() + budget
        while time.monotonic() < deadline:
            try:
                event = self.events.new.get_nowait()
            except Exception:  # queue.Empty
                break
            handled += 1
            self._on(event)
        return handled

    def _on(self, event: dict[str, Any]) -> None:
        run = self.runs.get(event.get("order_id") or "")
        if event["type"] == "order.rejected" and event.get("command_id") in self.commands:
            self.rejected.append(event)
            return
        if run is None:
            self.other.append(event)
            return
        step = NEXT.get(event["type"])
        if step is None or run.finished:
            return
        run.last = event["type"]
        if event["type"] == self.until:
            run.finished = True
            return
        oid = uuid.UUID(run.order_id)
        if step == "open":
            run.token = token_from_outbox(self.outbox, event["link_id"])
            self._publish(opened(run.token), run.order_id)
        elif step == "complete":
            assert run.token is not None
            self._publish(completed(run.token), run.order_id)
        elif step == "capture":
            self._publish(merchant(c.CapturePayment, oid, amount=ORDER_AMOUNT), run.order_id)
        elif step == "refund":
            self._publish(merchant(c.RefundPayment, oid, amount=self.refund), run.order_id)

    @property
    def finished(self) -> int:
        return sum(r.finished for r in self.runs.values())

    def run(self, timeout: float, tick: Callable[[], None] | None = None) -> None:
        """Pump until every order finished (or a rejection of ours shows up)."""
        deadline = time.monotonic() + timeout
        while self.finished < len(self.runs) and not self.rejected:
            if time.monotonic() > deadline:
                stuck: dict[str, int] = {}
                for r in self.runs.values():
                    if not r.finished:
                        stuck[r.last] = stuck.get(r.last, 0) + 1
                raise AssertionError(
                    f"{len(self.runs) - self.finished} of {len(self.runs)} orders did not "
                    f"finish within {timeout}s; last event seen: {stuck}"
                )
            if not self.pump(0.1):
                time.sleep(0.02)
            if tick is not None:
                tick()
        assert not self.rejected, f"commands of the lifecycle were rejected: {self.rejected[:5]}"

    # ---- after the load --------------------------------------------------------------

    def check_final_states(self, states: dict[uuid.UUID, Any]) -> None:
        """Every order ended where its lifecycle says, with the money where it should be."""
        status = FINAL_STATUS[self.until]
        captured = ORDER_AMOUNT if self.until == "payment.refunded" else 0
        refunded = self.refund if self.until == "payment.refunded" else 0
        wrong = []
        for order_id in self.runs:
            s = states.get(uuid.UUID(order_id))
            if s is None or (s.status, s.link_status, s.authorized, s.captured, s.refunded) != (
                status,
                "COMPLETED",
                ORDER_AMOUNT,
                captured,
                refunded,
            ):
                wrong.append(s or order_id)
        assert not wrong, f"{len(wrong)} orders not in their final state: {wrong[:5]}"


def verify_lifecycle_run(
    rig: Any,
    life: Lifecycle,
    report: Any,
    *,
    kills: int,
    in_flight: int = 16,
    settle: float = 120,
) -> None:
    """After a faulted lifecycle load: settle, then every check of ``checks``; the
    counts are reported even when a check fails.

    Uncertain sends only come from the crash window of a kill: a SIGKILL can catch at
    most ``in_flight`` sends (one per worker thread) between "attempting" and "sent",
    so they are bounded by kills x in_flight, and no link is caught more often than
    there were kills. Each asks the provider first; the ones it cannot settle are sent
    again blind, the possible duplicate notifications, never more than the kills (the
    local outbox always can tell, so here that is 0).
    """
    from tests.reliability import checks
    from workers.storage.engine import make_engine

    engine = make_engine(rig.h.database_url)
    report["orders"] = len(life.runs)
    report["commands"] = len(life.commands)
    report["kills"] = kills
    try:
        began = time.monotonic()
        checks.wait_settled(engine, rig.pub, rig.events, settle)
        report["settle_s"] = round(time.monotonic() - began, 1)
        sends = checks.notifications(engine)
        report["links"] = sends.links
        report["uncertain_sends"] = sends.uncertain
        report["duplicate_notifications"] = sends.duplicates
        states = checks.check_ledger(engine)
        life.check_final_states(states)
        records = checks.processed(engine)
        report["rejections"] = sum(r.outcome == "rejected" for r in records.values())
        outcomes = checks.check_outcomes(records, rig.events, life.commands)
        assert outcomes == {"accepted": len(life.commands)}, outcomes
        checks.check_recorded_events_published(records, rig.events)
        assert checks.dead_letters(rig.pub) == {}
        assert sends.links == len(life.runs)
        assert sends.uncertain <= kills * in_flight, f"{sends} for {kills} kills"
        assert sends.worst <= kills, f"a link was caught {sends.worst} times in {kills} kills"
        assert sends.duplicates <= kills, f"{sends} for {kills} kills"
    finally:
        engine.dispose()
        report["restarts"] = len(rig.sup.restarts)
        report["restarted"] = ",".join(sorted({k for k, _ in rig.sup.restarts})) or "-"
        report["event_redeliveries"] = rig.events.deliveries - len(rig.events.by_id)
        logs = rig.h.logs()
        report["worker_transient_retries"] = logs.count("transient failure, will retry")
        report["worker_consumer_restarts"] = logs.count("Restarting consumer")
        report["relay_reconnects"] = logs.count("relay error, retrying")
        report["scheduler_failed_ticks"] = logs.count("scheduler tick failed")
        report["publisher_reconnects"] = rig.pub.reconnects
        answers = _lookups(logs)  # the local outbox's answers to the uncertain sends
        report["found_already_sent"], report["found_not_sent"] = answers[True], answers[False]
        report.emit()


def _lookups(logs: str) -> Counter[bool]:
    """``found`` of every ``notification.looked_up`` line of the processes' JSON logs."""
    answers: Counter[bool] = Counter()
    for line in logs.splitlines():
        if "notification.looked_up" in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "notification.looked_up":
                answers[bool(entry["found"])] += 1
    return answers


def lifecycle_with_outage(
    rig: Any, report: Any, *, orders: int, outage: Callable[[], None], after: float
) -> Lifecycle:
    """Drive ``orders`` lifecycles while ``outage`` runs in a thread ``after`` seconds in.

    The upstream publisher keeps publishing through the outage (it reconnects and
    retries); the stack is expected to recover by itself or through the supervisor.
    """
    import threading

    rig.start_stack(processes=2, threads=8)
    life = Lifecycle(rig.pub, rig.events, rig.outbox)
    life.configure_store()
    errors: list[BaseException] = []

    def inject() -> None:
        try:
            outage()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    fault = threading.Timer(after, inject)
    started = time.monotonic()
    fault.start()
    try:
        life.create(orders)
        life.run(timeout=240)
    finally:
        fault.join()
    report["load_s"] = round(time.monotonic() - started, 1)
    assert not errors, f"the outage itself failed: {errors}"
    return life
