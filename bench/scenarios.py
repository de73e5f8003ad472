"""The measurements. Each ``run_*`` appends ``Figure``s to the run's results."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pika
from sqlalchemy import text

from bench import workloads as w
from bench.acks import total_acks
from bench.floor_table import INSERT_QUEUE, NOOP_QUEUE, floor_metadata
from bench.measure import Figure, percentile
from bench.stack import (
    BenchStack,
    Memory,
    cpu_seconds,
    delete_queues,
    memory_of,
    service_cpu_seconds,
    system_cpu_seconds,
    tree,
)
from messages import commands as c
from messages.routing import EVENTS_EXCHANGE, Queue
from workers.devtools.harness import create_database, drop_database, purge_queues, token_from_outbox
from workers.devtools.services import rabbitmq_url
from workers.processes.scheduler import release_due
from workers.settings import Settings
from workers.storage.engine import make_engine, make_session_factory

Log = Callable[[str], None]
T = TypeVar("T")


@dataclass
class Config:
    processes: int
    threads: int
    reps: int
    floor_n: int
    create_n: int
    lifecycle_n: int
    latency_seconds: float
    expiry_n: int
    pending_n: int
    soak_minutes: float
    workdir: Path
    keep: bool = False
    #: Offered orders/s for latency and soak; None: half the create-order maximum.
    rate: float | None = None
    #: Profile worker, relay and scheduler with py-spy during the create-order reps.
    profile: Path | None = None
    spy_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: Relay processes (one per partition), as ``paylink run`` starts them.
    relays: int = 1


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: What a check found wrong during the run: reported, never a reason to stop a
    #: 25-minute run (a bare assert once aborted one after every ack was counted).
    anomalies: list[str] = field(default_factory=list)

    def add(self, fig: Figure) -> Figure:
        self.figures[fig.key] = fig
        return fig

    def get(self, key: str) -> Figure | None:
        return self.figures.get(key)


class Run:
    def __init__(self, cfg: Config, results: Results, log: Log) -> None:
        self.cfg, self.results, self.log = cfg, results, log
        self.stacks: list[BenchStack] = []
        #: One more floor-2 rep, while the floors' stack is kept for pairing.
        self.floor_probe: Callable[[], float] | None = None
        self._floor_stack: BenchStack | None = None

    def check(self, ok: bool, anomaly: str) -> bool:
        """Record ``anomaly`` (printed now, listed in the results) unless ``ok``; the
        run goes on either way."""
        if not ok:
            self.results.anomalies.append(anomaly)
            self.log(f"[red]anomaly: {anomaly}[/red]")
        return ok

    # ---- stacks ------------------------------------------------------------------

    def new_stack(self, name: str) -> BenchStack:
        purge_queues()
        url = create_database("paylink_bench")
        workdir = self.cfg.workdir / name
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "acks").mkdir(parents=True)
        stack = BenchStack(url, workdir, env_overrides=dict(self.cfg.env))
        self.stacks.append(stack)
        self.log(f"[dim]{name}: database {url.rsplit('/', 1)[1]}, logs in {workdir}[/dim]")
        return stack

    def close_stack(self, stack: BenchStack) -> None:
        stack.close()
        if not self.cfg.keep:
            drop_database(stack.database_url)
        self.stacks.remove(stack)

    def close(self) -> None:
        self.close_floors()
        for stack in list(self.stacks):
            self.close_stack(stack)

    def start_paylink(self, stack: BenchStack) -> None:
        stack.start_worker(processes=self.cfg.processes, threads=self.cfg.threads)
        for partition in range(self.cfg.relays):
            stack.start_relay(partition if self.cfg.relays > 1 else None)
        stack.start_scheduler()
        for queue in (Queue.STORE_CONFIG, Queue.CREATE_ORDER, Queue.SEND_LINK):
            stack.wait_consumers(queue, self.cfg.processes)
        stack.count_events("store.configured")
        stack.count_events("link.sent")
        stack.count_events("order.rejected")
        stack.publish_bodies(Queue.STORE_CONFIG, [w.configure_store()])
        stack.poll(lambda: stack.event_count("store.configured") >= 1, timeout=60, what="store")

    def _create_batch(self, stack: BenchStack, n: int) -> tuple[float, float]:
        """Publish n CreateOrder; return (t_start, t_all_link_sent)."""
        bodies = [w.create_order_body(uuid.uuid4(), i) for i in range(n)]
        stack.reset_count("link.sent")
        t0 = time.monotonic()
        stack.publish_bodies(Queue.CREATE_ORDER, bodies)
        t1 = stack.poll(
            lambda: stack.event_count("link.sent") >= n,
            timeout=60 + n / 5,
            what=f"{n} link.sent",
        )
        return t0, t1

    # ---- a, b: floors ---------------------------------------------------------------

    def floors(self, *, keep_insert_floor: bool = False) -> None:
        """Floors 1 and 2. With ``keep_insert_floor`` the floor-2 worker stays up after
        its reps, and ``floor_probe`` measures one more floor-2 rep on demand: the
        create-order reps are then each paired with a floor-2 rep just before them."""
        cfg = self.cfg
        stack = self.new_stack("floors")
        with stack.engine.begin() as conn:
            floor_metadata.create_all(conn)
        acks = stack.workdir / "acks"
        kept = False
        try:
            for key, label, actor, queue in (
                ("floor_noop", "floor 1: no-op actor", "bench_noop", NOOP_QUEUE),
                ("floor_insert", "floor 2: one INSERT per message", "bench_insert", INSERT_QUEUE),
            ):
                fig = self.results.add(
                    Figure(key, label, "msg/s", note=f"{cfg.floor_n:,} messages per rep")
                )
                worker = stack.start_worker(
                    module="bench.floor_actors",
                    queues=[queue],
                    processes=cfg.processes,
                    threads=cfg.threads,
                )
                stack.wait_consumers(queue, cfg.processes)
                warm = min(500, cfg.floor_n)
                base = total_acks(acks)
                stack.publish_bodies(queue, [w.floor_body(actor, queue, i) for i in range(warm)])
                stack.poll(
                    lambda b=base, k=warm: total_acks(acks) - b >= k, timeout=120, what="warm-up"
                )

                def one_rep(actor: str = actor, queue: str = queue, label: str = label) -> float:
                    bodies = [w.floor_body(actor, queue, i) for i in range(cfg.floor_n)]
                    base = total_acks(acks)
                    t0 = time.monotonic()
                    stack.publish_bodies(queue, bodies)
                    t1 = stack.poll(
                        lambda b=base: total_acks(acks) - b >= cfg.floor_n,
                        timeout=600,
                        what=f"{cfg.floor_n} acks",
                        every=0.005,
                    )
                    depth = stack.queue_depth(queue)
                    self.check(
                        depth == 0,
                        f"{label}: {depth} messages still ready on {queue} after "
                        f"{cfg.floor_n:,} acks were counted",
                    )
                    return cfg.floor_n / (t1 - t0)

                for rep in range(cfg.reps):
                    fig.values.append(one_rep())
                    self.log(f"  {label}: rep {rep + 1}: {fig.values[-1]:,.0f} msg/s")
                if key == "floor_insert":
                    rows = stack.scalar("SELECT count(*) FROM bench_floor")
                    expected = warm + cfg.reps * cfg.floor_n
                    self.check(
                        rows == expected, f"{label}: {rows:,} rows inserted, {expected:,} expected"
                    )
                    if keep_insert_floor:
                        self.floor_probe, self._floor_stack, kept = one_rep, stack, True
                        break
                worker.stop(timeout=10)
                stack.procs.remove(worker)
        finally:
            if not kept:
                self.close_floors(stack)

    def close_floors(self, stack: BenchStack | None = None) -> None:
        """Stop the floors' stack (the kept floor-2 worker too) and delete their queues."""
        stack = stack or self._floor_stack
        self.floor_probe, self._floor_stack = None, None
        if stack is not None and stack in self.stacks:
            self.close_stack(stack)
            delete_queues([NOOP_QUEUE, INSERT_QUEUE])

    # ---- c, d, e, g: paylink ---------------------------------------------------------

    def paylink(self, *, create: bool, lifecycle: bool, latency: bool, soak: bool) -> None:
        stack = self.new_stack("paylink")
        try:
            self.start_paylink(stack)
            warm = min(200, self.cfg.create_n)
            self._create_batch(stack, warm)
            if create or latency or soak:
                self.create(stack)
            self.close_floors()  # no idle floor worker beside the other sections
            if lifecycle:
                self.lifecycle(stack)
            if latency:
                self.latency(stack)
            if soak:
                self.soak(stack)
            rejected = stack.event_count("order.rejected")
            if rejected:
                self.results.notes.append(f"paylink: {rejected} order.rejected events (unexpected)")
        finally:
            self.close_stack(stack)

    def _profilers(self, stack: BenchStack, section: str) -> list[subprocess.Popen[bytes]]:
        if self.cfg.profile is None:
            return []
        self.cfg.profile.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        started = []
        for i, proc in enumerate(stack.procs):
            out = self.cfg.profile / f"{section}-{proc.name}-{i}.txt"
            argv = [
                str(spy),
                "record",
                "--pid",
                str(proc.popen.pid),
                "--format",
                "raw",
                "--nonblocking",
                *self.cfg.spy_args,
                "-o",
                str(out),
            ]
            if proc.name == "worker":
                argv.append("--subprocesses")
            started.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        time.sleep(1)
        return started

    @staticmethod
    def _stop_profilers(started: list[subprocess.Popen[bytes]]) -> None:
        for p in started:
            p.send_signal(signal.SIGINT)
        for p in started:
            p.wait(30)

    def create(self, stack: BenchStack) -> None:
        profilers = self._profilers(stack, "create")
        try:
            self._create(stack)
        finally:
            self._stop_profilers(profilers)

    def _cpu(self, stack: BenchStack) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in stack.procs:
            out[p.name] = out.get(p.name, 0.0) + cpu_seconds(tree(p.popen.pid))
        out["postgresql"] = service_cpu_seconds("postgres")
        out["rabbitmq"] = service_cpu_seconds("beam.smp")
        out["machine"] = system_cpu_seconds()[0]
        return out

    def _measured(self, stack: BenchStack, spent: dict[str, float], run: Callable[[], T]) -> T:
        """``run()``, adding each process's CPU seconds meanwhile to ``spent``."""
        before = self._cpu(stack)
        result = run()
        after = self._cpu(stack)
        for k in after:
            spent[k] = spent.get(k, 0.0) + after[k] - before[k]
        return result

    def _create(self, stack: BenchStack) -> None:
        spent: dict[str, float] = {}
        self._create_reps(stack, spent)
        self.results.add(
            self._cpu_figure(
                "create_cpu",
                "CPU per order (create + send)",
                spent,
                self.cfg.create_n * self.cfg.reps,
            )
        )

    @staticmethod
    def _cpu_figure(
        key: str, label: str, spent_s: dict[str, float], count: int, *, digits: int = 1
    ) -> Figure:
        """Machine CPU in ms per one of ``count`` (orders, expiries), and its split."""
        spent = {k: v * 1000 / count for k, v in spent_s.items()}
        others = spent["machine"] - sum(v for k, v in spent.items() if k != "machine")
        return Figure(
            key,
            label,
            "ms",
            [spent["machine"]],
            note="whole machine; of which worker {0:.{d}f}, relay {1:.{d}f}, scheduler "
            "{2:.{d}f}, PostgreSQL {3:.{d}f}, RabbitMQ {4:.{d}f}, other (bench, kernel, "
            "other users) {5:.{d}f}".format(
                *(spent.get(k, 0) for k in ("worker", "relay", "scheduler")),
                spent["postgresql"],
                spent["rabbitmq"],
                others,
                d=digits,
            ),
            digits=digits,
        )

    def _create_reps(self, stack: BenchStack, spent: dict[str, float]) -> None:
        """The create+send reps (each after its paired floor-2 rep, if kept); ``spent``
        adds up each process's CPU seconds over the create+send reps alone."""
        n = self.cfg.create_n
        fig = self.results.add(
            Figure(
                "create",
                "paylink: create-order + send-link",
                "orders/s",
                note=f"{n:,} orders per rep, publish CreateOrder to link.sent",
            )
        )
        pairing: tuple[Callable[[], float], Figure, Figure] | None = None
        if self.floor_probe is not None:
            pairing = (
                self.floor_probe,
                self.results.add(
                    Figure(
                        "floor_insert_paired",
                        "floor 2, paired: one rep just before each create+send rep",
                        "msg/s",
                    )
                ),
                self.results.add(
                    Figure(
                        "create_ratio_paired",
                        "create+send / floor 2, per pair of adjacent reps",
                        "%",
                        note="median of the per-pair ratios: the machine's drift between the "
                        "floors section and the create section cancels out",
                        digits=1,
                    )
                ),
            )
        idle_share: list[float] = []
        for rep in range(self.cfg.reps):
            if pairing is not None:
                probe, paired, _ = pairing
                idle: dict[str, float] = {}
                t_idle = time.monotonic()
                paired.values.append(self._measured(stack, idle, probe))
                # What the idle paylink stack took from the floor: it should be ~nothing.
                idle_share.append(
                    sum(idle[k] for k in ("worker", "relay", "scheduler"))
                    / (time.monotonic() - t_idle)
                )
                self.log(f"  floor 2 (paired): rep {rep + 1}: {paired.values[-1]:,.0f} msg/s")
            t0, t1 = self._measured(stack, spent, lambda: self._create_batch(stack, n))
            fig.values.append(n / (t1 - t0))
            self.log(f"  create+send: rep {rep + 1}: {fig.values[-1]:,.1f} orders/s")
            if pairing is not None:
                _, paired, ratios = pairing
                ratios.values.append(100 * fig.values[-1] / paired.values[-1])
                self.log(f"  paired ratio: rep {rep + 1}: {ratios.values[-1]:.1f} %")
        if pairing is not None:
            pairing[1].note = (
                f"{self.cfg.floor_n:,} messages per rep; the idle paylink stack beside "
                f"it used {100 * max(idle_share):.1f} % of one core at most"
            )
        sent = stack.scalar("SELECT count(*) FROM notifications WHERE state = 'sent'")
        links = stack.scalar("SELECT count(*) FROM links")
        self.check(sent == links, f"create+send: {sent:,} links sent of {links:,} created")

    def lifecycle(self, stack: BenchStack) -> None:
        n = self.cfg.lifecycle_n
        fig = self.results.add(
            Figure(
                "lifecycle",
                "paylink: full lifecycle",
                "orders/s",
                note=f"{n:,} orders per rep: create, send, open, complete, capture, refund",
                digits=1,
            )
        )
        for rep in range(self.cfg.reps):
            elapsed = LifecycleDriver(stack, n).run()
            fig.values.append(n / elapsed)
            self.log(f"  lifecycle: rep {rep + 1}: {fig.values[-1]:,.1f} orders/s")

    def _offered_rate(self) -> float:
        if self.cfg.rate is not None:
            return self.cfg.rate
        fig = self.results.get("create")
        if fig is None or not fig.values:  # paylink() measures create first when it needs it
            raise RuntimeError("latency and soak need the create-order maximum, or --rate")
        return fig.median / 2

    def _rate_basis(self) -> str:
        return "--rate" if self.cfg.rate is not None else "half the max"

    def latency(self, stack: BenchStack) -> None:
        rate = self._offered_rate()
        figs = {
            p: self.results.add(
                Figure(
                    f"latency_p{p}",
                    f"latency publish to link.sent, p{p}",
                    "ms",
                    note=f"offered {rate:,.0f} orders/s ({self._rate_basis()}) for "
                    f"{self.cfg.latency_seconds:.0f} s per rep",
                )
            )
            for p in (50, 95, 99)
        }
        for rep in range(self.cfg.reps):
            samples = paced_run(stack, rate, self.cfg.latency_seconds)
            for p, fig in figs.items():
                fig.values.append(percentile(samples, p) * 1000)
            self.log(
                f"  latency: rep {rep + 1}: p50 {figs[50].values[-1]:,.0f} ms, "
                f"p95 {figs[95].values[-1]:,.0f} ms, p99 {figs[99].values[-1]:,.0f} ms"
            )

    def soak(self, stack: BenchStack) -> None:
        rate = self._offered_rate()
        worker = stack.procs[0]
        seconds = self.cfg.soak_minutes * 60
        before = memory_of(worker, workers_only=True)
        samples: list[Memory] = []
        latencies = paced_run(
            stack,
            rate,
            seconds,
            every=max(5.0, seconds / 20),
            on_tick=lambda: samples.append(memory_of(worker, workers_only=True)),
        )
        after = memory_of(worker, workers_only=True)
        note = f"{self.cfg.soak_minutes:g} min at {rate:,.0f} orders/s; {len(before.per_process)} worker processes"
        for key, label, value in (
            ("soak_rss_before", "worker RSS before soak (total)", before.total),
            ("soak_rss_after", "worker RSS after soak (total)", after.total),
            (
                "soak_rss_peak",
                "worker RSS peak during soak (total)",
                max([m.total for m in samples] or [after.total]),
            ),
        ):
            self.results.add(Figure(key, label, "MiB", [value / 1024], note=note, digits=1))
        self.results.add(
            Figure(
                "soak_p99",
                "latency p99 during soak",
                "ms",
                [percentile(latencies, 99) * 1000],
                note=f"{len(latencies):,} orders",
            )
        )
        self.log(f"  soak: worker RSS {before.total / 1024:.1f} -> {after.total / 1024:.1f} MiB")

    # ---- f: expiry -------------------------------------------------------------------

    def expiry(self, *, due: bool, pending: bool) -> None:
        stack = self.new_stack("expiry")
        try:
            self.start_paylink(stack)
            stack.sql(w.insert_store_sql())
            stack.count_events("link.expired")
            if due:
                self.due_expiries(stack)
            if pending:
                self.pending_links(stack)
        finally:
            self.close_stack(stack)

    def _bulk_insert(self, stack: BenchStack, n: int, *, due: bool, chunk: int = 100_000) -> str:
        tag = f"B{uuid.uuid4().hex[:6]}-"
        done = 0
        while done < n:
            size = min(chunk, n - done)
            created, expires = w.bulk_times(due=due)
            with stack.engine.begin() as conn:
                for statement in w.bulk_orders_sql():
                    params = {"n": size, "created": created, "expires": expires, "tag": tag}
                    conn.execute(
                        text(statement), {k: v for k, v in params.items() if f":{k}" in statement}
                    )
            done += size
        return tag

    def due_expiries(self, stack: BenchStack) -> None:
        n = self.cfg.expiry_n
        fig = self.results.add(
            Figure(
                "expiry_due",
                f"expiry: {n:,} links due at once, all EXPIRED + link.expired",
                "s",
                note="bulk-inserted due links; from commit to the last event and DB row",
                digits=1,
            )
        )
        profilers = self._profilers(stack, "expiry")
        spent: dict[str, float] = {}
        try:
            self._due(stack, n, fig, spent)
        finally:
            self._stop_profilers(profilers)
        self.results.add(
            Figure("expiry_rate", "expiry throughput", "links/s", [n / v for v in fig.values])
        )
        self.results.add(
            self._cpu_figure(
                "expiry_cpu",
                "CPU per due expiry",
                spent,
                n * self.cfg.reps,
                digits=3,
            )
        )

    def _due(self, stack: BenchStack, n: int, fig: Figure, spent: dict[str, float]) -> None:
        """Each rep: bulk-insert ``n`` due links, time them to EXPIRED + link.expired;
        ``spent`` adds up each process's CPU seconds over those timed spans."""
        for rep in range(self.cfg.reps):
            stack.reset_count("link.expired")
            t_insert = time.monotonic()
            tag = self._bulk_insert(stack, n, due=True, chunk=n)
            t0 = time.monotonic()
            self.log(f"  expiry: rep {rep + 1}: {n:,} due links inserted in {t0 - t_insert:.1f} s")

            def expired(tag: str = tag) -> float:
                stack.poll(
                    lambda: stack.event_count("link.expired") >= n,
                    timeout=60 + n / 20,
                    what=f"{n} link.expired",
                    every=0.1,
                )
                return stack.poll(
                    lambda: (
                        stack.scalar(
                            "SELECT count(*) FROM orders WHERE merchant_reference1 LIKE :t "
                            "AND link_status = 'EXPIRED'",
                            t=tag + "%",
                        )
                        >= n
                    ),
                    timeout=120,
                    what="EXPIRED rows",
                    every=0.1,
                )

            t1 = self._measured(stack, spent, expired)
            fig.values.append(t1 - t0)
            self.log(f"  expiry: rep {rep + 1}: {n:,} expired in {t1 - t0:.1f} s")

    def pending_links(self, stack: BenchStack) -> None:
        n = self.cfg.pending_n
        live = stack.scalar("SELECT count(*) FROM orders WHERE link_due_at IS NOT NULL")
        engine = make_engine(stack.database_url, pool_size=1)
        sessions = make_session_factory(engine)
        worker = stack.procs[0]
        scheduler = next(p for p in stack.procs if p.name == "scheduler")
        relays = [p for p in stack.procs if p.name == "relay"]
        batch = Settings().scheduler_batch_size

        def tick_ms(samples: int = 25) -> list[float]:
            out = []
            for _ in range(samples):
                t0 = time.perf_counter()
                released = release_due(sessions, datetime.now(UTC), batch)
                out.append((time.perf_counter() - t0) * 1000)
                self.check(
                    released == (0, 0),
                    f"pending: an idle scheduler tick released {released} (nothing was due)",
                )
            return out

        def snapshot() -> dict[str, float]:
            stack.sleep(3)  # a few scheduler ticks
            return {
                "worker": memory_of(worker, workers_only=True).total / 1024,
                "scheduler": memory_of(scheduler).total / 1024,
                "relay": sum(memory_of(r).total for r in relays) / 1024,
            }

        zero_ticks = tick_ms()
        zero = snapshot()
        t0 = time.monotonic()
        self._bulk_insert(stack, n, due=False)
        stack.sql("ANALYZE orders")
        self.log(f"  pending: {n:,} pending links inserted in {time.monotonic() - t0:.0f} s")
        many_ticks = tick_ms()
        many = snapshot()
        engine.dispose()
        pend = f"{live:,} pending" if live else "0 pending"
        self.results.add(
            Figure(
                "tick_0",
                f"scheduler tick (release_due), {pend}",
                "ms",
                zero_ticks,
                digits=2,
                note="median of 25 ticks",
            )
        )
        self.results.add(
            Figure(
                "tick_n",
                f"scheduler tick (release_due), {n:,} pending",
                "ms",
                many_ticks,
                digits=2,
                note="median of 25 ticks, none due",
            )
        )
        for proc in ("worker", "scheduler", "relay"):
            self.results.add(
                Figure(f"rss_{proc}_0", f"{proc} RSS, {pend}", "MiB", [zero[proc]], digits=1)
            )
            self.results.add(
                Figure(f"rss_{proc}_n", f"{proc} RSS, {n:,} pending", "MiB", [many[proc]], digits=1)
            )


# ---- open-loop publishing at a fixed rate, measuring publish -> link.sent ---------------


def paced_run(
    stack: BenchStack,
    rate: float,
    seconds: float,
    *,
    every: float | None = None,
    on_tick: Callable[[], None] | None = None,
) -> list[float]:
    """Offer ``rate`` CreateOrders/s for ``seconds``; return each order's latency (s)."""
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url()))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, EVENTS_EXCHANGE, "*.link.sent")  # <store>.<event type>
    published: dict[str, float] = {}
    latencies: list[float] = []

    def on_event(_ch: Any, _m: Any, _p: Any, body: bytes) -> None:
        order_id = json.loads(body).get("order_id")
        t = published.pop(order_id, None)
        if t is not None:
            latencies.append(time.monotonic() - t)

    ch.basic_consume(q, on_event, auto_ack=True)
    total = int(rate * seconds)
    # Bodies are built ahead in chunks (pydantic validation is the client's cost, not
    # paylink's) and restamped when sent.
    t0 = time.monotonic()
    next_tick = t0 + (every or 1e18)
    i = 0
    chunk: list[tuple[str, bytes]] = []
    while i < total:
        if not chunk:
            ids = [uuid.uuid4() for _ in range(200)]
            chunk = [(str(o), w.create_order_body(o, i + k)) for k, o in enumerate(ids)]
            chunk.reverse()
        due = t0 + i / rate
        now = time.monotonic()
        if now >= due:
            order_id, body = chunk.pop()
            published[order_id] = time.monotonic()
            ch.basic_publish(
                "",
                Queue.CREATE_ORDER,
                w.restamp(body),
                pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            )
            i += 1
            continue
        conn.process_data_events(time_limit=min(due - now, 0.01))
        if on_tick is not None and now >= next_tick:
            on_tick()
            next_tick += every or 1e18
    deadline = time.monotonic() + 120
    while published and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    lost = len(published)
    conn.close()
    if lost:
        raise AssertionError(f"{lost} orders got no link.sent within 120 s")
    return latencies


# ---- the full lifecycle, driven by events -------------------------------------------------


class LifecycleDriver:
    """Create n orders; on each event publish the next command; time until n refunds."""

    KEYS = (
        "link.sent",
        "link.opened",
        "order.completed",
        "payment.captured",
        "payment.refunded",
        "order.rejected",
    )

    def __init__(self, stack: BenchStack, n: int) -> None:
        self.stack, self.n = stack, n
        self.refunded = 0
        self.rejected: list[dict[str, Any]] = []
        self.completed_bodies: dict[str, bytes] = {}
        self.orders: set[str] = set()

    def run(self) -> float:
        conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url()))
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        for key in self.KEYS:
            ch.queue_bind(q, EVENTS_EXCHANGE, f"*.{key}")  # <store>.<event type>
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        outbox = self.stack.workdir / "outbox"

        def send(body: bytes) -> None:
            ch.basic_publish("", w.queue_of(body), body, props)

        def on_event(_ch: Any, _m: Any, _p: Any, raw: bytes) -> None:
            event = json.loads(raw)
            order_id = event.get("order_id")
            kind = event["type"]
            if kind == "order.rejected":
                if order_id in self.orders or order_id is None:
                    self.rejected.append(event)
                return
            if order_id not in self.orders:
                return
            if kind == "link.sent":
                token = token_from_outbox(outbox, event["link_id"])
                opened, completed = w.checkout_bodies(token)
                self.completed_bodies[order_id] = completed
                send(opened)
            elif kind == "link.opened":
                send(self.completed_bodies.pop(order_id))
            elif kind == "order.completed":
                send(w.merchant_body(c.CapturePayment, uuid.UUID(order_id)))
            elif kind == "payment.captured":
                send(w.merchant_body(c.RefundPayment, uuid.UUID(order_id)))
            elif kind == "payment.refunded":
                self.refunded += 1

        ch.basic_consume(q, on_event, auto_ack=True)
        ids = [uuid.uuid4() for _ in range(self.n)]
        bodies = [w.create_order_body(o, i) for i, o in enumerate(ids)]
        self.orders = {str(o) for o in ids}
        t0 = time.monotonic()
        for body in bodies:
            send(body)
        deadline = t0 + 120 + self.n / 2
        while self.refunded < self.n:
            conn.process_data_events(time_limit=0.05)
            if self.rejected:
                raise AssertionError(f"lifecycle command rejected: {self.rejected[0]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"lifecycle: {self.refunded}/{self.n} refunded")
        elapsed = time.monotonic() - t0
        conn.close()
        return elapsed
