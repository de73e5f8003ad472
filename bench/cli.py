"""``python -m bench [--quick] [--soak-minutes N] [--only NAME[,NAME]]``."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from rich.console import Console, JustifyMethod
from rich.table import Table
from sqlalchemy import create_engine, text

from bench.scenarios import Config, Results, Run
from bench.stack import rabbitmq_version
from bench.vhost import use_bench_vhost
from workers.devtools.services import postgres_admin_url
from workers.settings import Settings

HERE = Path(__file__).resolve().parent
SECTIONS = ("floors", "create", "lifecycle", "latency", "expiry", "pending", "soak")

console = Console()


def parse(argv: list[str] | None) -> argparse.Namespace:
    s = Settings()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    p.add_argument("--soak-minutes", type=float, default=None, help="soak length (default 10)")
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections among {', '.join(SECTIONS)} "
        "(latency and soak also run create, for the offered rate)",
    )
    p.add_argument("--processes", type=int, default=s.worker_processes, help="worker processes")
    p.add_argument("--threads", type=int, default=s.worker_threads, help="threads per process")
    p.add_argument("--reps", type=int, default=3, help="repetitions per figure (median shown)")
    p.add_argument("--expiry-n", type=int, default=None, help="links due at once (100 000)")
    p.add_argument("--pending-n", type=int, default=None, help="pending links (1 000 000)")
    p.add_argument("--out", type=Path, default=None, help="markdown file (bench/results.md)")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the worker, relay and scheduler during create and expiry (raw stacks)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="setting for every paylink and floor process (e.g. PAYLINK_RELAY_BATCH_SIZE=1000)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offered orders/s for latency and soak (default: half the create maximum)",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch databases")
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> Config:
    quick = args.quick
    env = dict(item.split("=", 1) for item in args.env)
    return Config(
        processes=args.processes,
        threads=args.threads,
        reps=args.reps,
        floor_n=2_000 if quick else 20_000,
        create_n=300 if quick else 3_000,
        lifecycle_n=100 if quick else 1_000,
        latency_seconds=5 if quick else 20,
        expiry_n=args.expiry_n or (5_000 if quick else 100_000),
        pending_n=args.pending_n or (50_000 if quick else 1_000_000),
        soak_minutes=args.soak_minutes
        if args.soak_minutes is not None
        else (0.5 if quick else 10.0),
        workdir=Path(tempfile.gettempdir()) / "paylink-bench",
        keep=args.keep,
        rate=args.rate,
        profile=args.profile,
        # BENCH_SPY_RATE: samples per second (50); BENCH_SPY_GIL=1: only the thread
        # holding the GIL (where the CPU goes, not the waits).
        spy_args=(
            "--rate",
            os.environ.get("BENCH_SPY_RATE", "50"),
            *(("--gil",) if os.environ.get("BENCH_SPY_GIL") else ()),
        ),
        env=env,
        relays=Settings(**env).relay_partitions,  # type: ignore[arg-type]
    )


def sections(only: str) -> list[str]:
    if not only:
        return list(SECTIONS)
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose among {', '.join(SECTIONS)}")
    return chosen


# ---- machine facts ----------------------------------------------------------------------


def _cmd(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_facts(cfg: Config) -> list[tuple[str, str]]:
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    engine = create_engine(postgres_admin_url())
    with engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar()
        sync = conn.execute(text("SHOW synchronous_commit")).scalar()
        fsync = conn.execute(text("SHOW fsync")).scalar()
    engine.dispose()
    s = Settings(**{k: v for k, v in cfg.env.items() if k.startswith("PAYLINK_")})
    dramatiq_prefetch = os.environ.get("dramatiq_queue_prefetch")  # noqa: SIM112 - its name
    prefetch = dramatiq_prefetch or f"{2 * cfg.threads} (Dramatiq: 2 x threads)"
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        (
            "host",
            f"{platform.node()}: {_cmd('nproc')} CPUs ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB RAM",
        ),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("OS", platform.platform()),
        ("Python", sys.version.split()[0]),
        ("RabbitMQ", rabbitmq_version()),
        ("PostgreSQL", f"{pg} (fsync={fsync}, synchronous_commit={sync})"),
        (
            "libraries",
            ", ".join(
                f"{n} {version(n)}"
                for n in ("dramatiq", "pika", "aio-pika", "SQLAlchemy", "psycopg", "pydantic")
            ),
        ),
        (
            "worker",
            f"{cfg.processes} processes x {cfg.threads} threads (same for floors and paylink), prefetch {prefetch}",
        ),
        (
            "broker",
            f"{os.environ['TEST_BROKER_URL'].rsplit('/', 1)[1]} vhost (the bench's own); "
            + ("classic durable queues" if not s.quorum_queues else "quorum queues"),
        ),
        (
            "relay",
            f"{cfg.relays} process(es), one per partition; batch {s.relay_batch_size}, "
            f"poll {s.relay_poll_seconds} s; "
            f"scheduler batch {s.scheduler_batch_size}, poll {s.scheduler_poll_seconds} s",
        ),
        ("engine", "make_engine defaults (pool_size 10, max_overflow 10, pre-ping)"),
        ("overrides", ", ".join(f"{k}={v}" for k, v in cfg.env.items()) or "none"),
        ("notifier", "local file outbox (one .eml per link, fsync'd)"),
        ("log", f"{s.log_format} at {s.log_level} to a file"),
        (
            "counts",
            f"reps {cfg.reps}; floors {cfg.floor_n:,} msgs; create {cfg.create_n:,} orders; "
            f"lifecycle {cfg.lifecycle_n:,} orders; latency {cfg.latency_seconds:g} s; "
            f"expiry {cfg.expiry_n:,} due; pending {cfg.pending_n:,}; soak {cfg.soak_minutes:g} min",
        ),
    ]


# ---- the table -------------------------------------------------------------------------


def _ratio(results: Results, key: str, floor: str) -> str:
    a, b = results.get(key), results.get(floor)
    if a is None or b is None or not a.values or not b.values:
        return "-"
    return f"{100 * a.median / b.median:.1f} %"


def rows(results: Results) -> list[tuple[str, str, str, str, str]]:
    out = []
    for fig in results.figures.values():
        note = fig.note
        if fig.key in ("create", "lifecycle"):
            note = (
                f"{note}; = {_ratio(results, fig.key, 'floor_noop')} of floor 1, "
                f"{_ratio(results, fig.key, 'floor_insert')} of floor 2"
            )
        out.append((fig.label, fig.show(), fig.unit, fig.reps(), note))
    return out


def goals(results: Results) -> list[tuple[str, str, str]]:
    out = []
    create, floor = results.get("create"), results.get("floor_insert")
    if create and floor and create.values and floor.values:
        ratio = create.median / floor.median
        out.append(
            (
                "create-order + send-link >= 25 % of the one-insert floor "
                "(median over median, sections minutes apart)",
                f"{100 * ratio:.1f} %",
                "met" if ratio >= 0.25 else "NOT met",
            )
        )
    paired = results.get("create_ratio_paired")
    if paired and paired.values:
        out.append(
            (
                "create-order + send-link >= 25 % of the one-insert floor "
                "(median of per-pair ratios, adjacent reps)",
                f"{paired.median:.1f} %",
                "met" if paired.median >= 25 else "NOT met",
            )
        )
    due = results.get("expiry_due")
    if due and due.values:
        n = due.label.split(":")[1].split(" links")[0].strip()
        out.append(
            (
                f"{n} due expiries done in <= 30 s (goal set for 100,000)",
                f"{due.median:.1f} s",
                "met" if due.median <= 30 else "NOT met",
            )
        )
    flat = []
    for proc in ("worker", "scheduler"):
        a, b = results.get(f"rss_{proc}_0"), results.get(f"rss_{proc}_n")
        if a and b:
            flat.append((proc, a.median, b.median))
    if flat:
        worst = max(abs(b - a) for _, a, b in flat)
        shown = "; ".join(f"{p} {a:.1f} -> {b:.1f} MiB" for p, a, b in flat)
        out.append(
            (
                "memory flat with a million pending links",
                shown,
                "met" if worst < 5 else "NOT met",
            )
        )
    return out


def render(results: Results, facts: list[tuple[str, str]], elapsed: float) -> str:
    lines = [
        "# paylink benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`); every figure is the median of the",
        "repetitions listed, measured in one run on the same broker, database and worker",
        "settings. Floors: a no-op Dramatiq actor and an actor doing one INSERT, each on its",
        "own queue, run by the Dramatiq CLI with paylink's processes x threads.",
        "",
        "## Machine and settings",
        "",
        *[f"- **{k}**: {v}" for k, v in facts],
        f"- **load average at end**: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- **run time**: {elapsed / 60:.1f} min",
        "",
        "## Results",
        "",
        "| measurement | median | unit | repetitions | notes |",
        "|---|---:|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows(results)],
        "",
    ]
    g = goals(results)
    if g:
        lines += ["## Goals", "", "| goal | this run | |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in g]
        lines.append("")
    if results.anomalies:
        lines += ["## Anomalies", "", *[f"- {a}" for a in results.anomalies], ""]
    if results.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in results.notes], ""]
    return "\n".join(lines)


def show(results: Results) -> None:
    table = Table(title="paylink benchmarks (median of repetitions)")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("measurement", "left"),
        ("median", "right"),
        ("unit", "left"),
        ("repetitions", "left"),
        ("notes", "left"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    g = goals(results)
    if g:
        gt = Table(title="goals")
        for col in ("goal", "this run", ""):
            gt.add_column(col)
        for a, b, c in g:
            gt.add_row(a, b, f"[green]{c}[/green]" if c == "met" else f"[red]{c}[/red]")
        console.print(gt)
    for anomaly in results.anomalies:
        console.print(f"[red]anomaly[/red]: {anomaly}")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops workers and relays too
    args = parse(argv)
    if "TEST_BROKER_URL" not in os.environ:
        use_bench_vhost()
    cfg = config(args)
    chosen = sections(args.only)
    out = args.out or (HERE / ("results.md" if not args.only else f"results-{'-'.join(chosen)}.md"))
    facts = machine_facts(cfg)
    for k, v in facts:
        console.print(f"[bold]{k}[/bold]: {v}")
    results = Results()
    run = Run(cfg, results, console.print)
    started = time.monotonic()
    try:
        creates = any(s in chosen for s in ("create", "latency", "soak"))
        if "floors" in chosen:
            console.rule("floors")
            run.floors(keep_insert_floor=creates)
        if creates or "lifecycle" in chosen:
            console.rule("paylink")
            run.paylink(
                create="create" in chosen,
                lifecycle="lifecycle" in chosen,
                latency="latency" in chosen,
                soak="soak" in chosen,
            )
        if "expiry" in chosen or "pending" in chosen:
            console.rule("expiry")
            run.expiry(due="expiry" in chosen, pending="pending" in chosen)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop every process, write nothing
        console.print("[red]interrupted: stopping the bench's processes[/red]")
        run.close()
        return 130
    except BaseException:
        console.print_exception()
        results.notes.append("the run did not finish (see the console)")
        run.close()
        show(results)
        out.write_text(render(results, facts, time.monotonic() - started))
        return 1
    run.close()
    show(results)
    out.write_text(render(results, facts, time.monotonic() - started))
    console.print(f"written {out}")
    return 0
