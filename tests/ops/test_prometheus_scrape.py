"""A real Prometheus scrapes the running paylink processes and RabbitMQ's plugin, and
every metric the alert rules and the dashboard read exists (a name missing is an alert
that can never fire, a panel that is always empty).

Prometheus is the Debian package `prometheus` (.ci/run installs it); under CI=true it is
required, elsewhere the test skips without it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pika
import yaml

from messages.routing import ALL_QUEUES
from tests.ops.support import ROOT, Started, free_port, http_get, wait_for
from tests.services import require
from workers.cli.worker import worker_command

DEPLOY = ROOT / "deploy"
PAYLINK = str(Path(sys.executable).with_name("paylink"))
RABBITMQ_PLUGIN = 15692


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


metric_names = _module(ROOT / "tests" / "deploy" / "promql_names.py").metric_names
required_tool = _module(ROOT / "tests" / "deploy" / "tools.py").required_tool


def _read_expressions() -> list[str]:
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "paylink.json").read_text())
    exprs += [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    exprs += [
        variable["definition"].removeprefix("label_values(").split(",")[0]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return exprs


def _config(targets: dict[str, int], vhost: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml's jobs, pointed at the processes of this test."""
    jobs: list[dict[str, Any]] = [
        {"job_name": f"paylink-{name}", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for name, port in targets.items()
    ]
    plugin = [f"127.0.0.1:{RABBITMQ_PLUGIN}"]
    jobs.append(
        {
            "job_name": "rabbitmq",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": plugin}],
        }
    )
    jobs.append(
        {
            "job_name": "rabbitmq-queues",
            "metrics_path": "/metrics/detailed",
            "params": {
                "vhost": [vhost],
                "family": ["queue_coarse_metrics", "queue_consumer_count"],
            },
            "static_configs": [{"targets": plugin}],
        }
    )
    return {"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}


def _api(port: int, path: str) -> Any:
    status, body = http_get(port, path)
    assert status == 200, body
    return json.loads(body)["data"]


def test_every_metric_the_alerts_and_dashboard_read_is_scraped(
    start: Callable[..., Started], vhost: str, tmp_path: Path
) -> None:
    binary = required_tool("prometheus", "prometheus")
    require("RabbitMQ's prometheus plugin (.ci/run enables it)", "127.0.0.1", RABBITMQ_PLUGIN)
    # Given every paylink process running, each on a port of its own
    ports = {name: free_port() for name in ("worker", "relay", "scheduler", "exporter")}
    argv, extra = worker_command(1, 2, ALL_QUEUES, ports["worker"])
    processes = [
        start(*argv, env=extra),
        start(PAYLINK, "relay", "--health-port", str(ports["relay"])),
        start(PAYLINK, "scheduler", "--health-port", str(ports["scheduler"])),
        start(PAYLINK, "exporter", "--port", str(ports["exporter"])),
    ]
    for process, port in zip(processes, ports.values(), strict=True):
        wait_for(lambda port=port: http_get(port, "/readyz")[0] == 200, "paylink", process.log)
    # and a Prometheus scraping them and RabbitMQ as deploy/prometheus does
    vhost_name = pika.URLParameters(vhost).virtual_host
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(ports, vhost_name)))
    web = free_port()
    prometheus = start(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{web}",
    )

    # When it has scraped every target
    def all_up() -> bool:
        if http_get(web, "/-/ready")[0] != 200:
            return False
        active = _api(web, "/api/v1/targets")["activeTargets"]
        return len(active) == len(ports) + 2 and all(t["health"] == "up" for t in active)

    wait_for(all_up, "every target up in Prometheus", prometheus.log)
    # Then every metric name an alert or a panel reads is among the scraped ones
    query = urllib.parse.quote("/api/v1/label/__name__/values", safe="/")
    scraped = set(_api(web, query))
    wanted = {name for expr in _read_expressions() for name in metric_names(expr)}
    assert wanted
    assert not wanted - scraped, sorted(wanted - scraped)
