"""What the deploy files must agree on, read from docs/architecture.md where it is fixed.

The deploy tests import this module (tests/deploy has no __init__.py, so pytest puts the
folder on sys.path); its names are the contract, not copies of the deploy files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

_architecture = ARCHITECTURE.read_text(encoding="utf-8")

#: The command queues, in the order of the table in docs/architecture.md.
COMMAND_QUEUES: tuple[str, ...] = tuple(
    re.findall(r"^\| `(paylink\.[a-z-]+)` \|", _architecture, flags=re.MULTILINE)
)

#: Metrics / health port per process ("Processes" table in docs/architecture.md).
PORTS: dict[str, int] = {
    name: int(port)
    for name, port in re.findall(
        r"^\| (worker|relay|scheduler|exporter|web) \| `paylink [^`]*` \| (\d+)",
        _architecture,
        flags=re.MULTILINE,
    )
}

#: The topic exchange events go to.
EVENTS_EXCHANGE = re.search(r"topic exchange `([a-z.]+)`", _architecture).group(1)  # type: ignore[union-attr]

#: Worker groups and the queues each consumes (the deployment's decision, not the docs').
WORKER_GROUPS: dict[str, tuple[str, ...]] = {
    "order-intake": ("paylink.store-config", "paylink.create-order"),
    "notify": ("paylink.send-link",),
    "checkout": ("paylink.checkout", "paylink.order-management"),
    "expiry": ("paylink.link-expiry",),
}

#: Actors are bounded by a 60 s time limit; stopping must wait longer than that.
ACTOR_TIME_LIMIT_SECONDS = 60

#: The queue upstream systems consume events from (bound to the events exchange with `#`).
UPSTREAM_EVENTS_QUEUE = "upstream.events"


def dq(queue: str) -> str:
    return f"{queue}.DQ"


def xq(queue: str) -> str:
    return f"{queue}.XQ"


def all_command_queue_names() -> set[str]:
    """Every queue Dramatiq uses for the command queues: canonical, delay and dead-letter."""
    return {name for q in COMMAND_QUEUES for name in (q, dq(q), xq(q))}


def yaml_documents(path: Path) -> list[Any]:
    """Every non-empty document of a (multi-document) YAML file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def deploy_files(*suffixes: str) -> Iterator[Path]:
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name.endswith(suffixes):
            yield path


def parse_duration_seconds(text: str) -> float:
    """Compose durations such as `1m30s`, `90s`, `500ms`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)
