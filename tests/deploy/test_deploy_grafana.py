"""deploy/grafana: a provisioned dashboard whose queries read only known metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from deploy_contract import DEPLOY, yaml_documents
from known_metrics import known_metric_names
from promql_names import metric_names

GRAFANA = DEPLOY / "grafana"
DASHBOARD: dict[str, Any] = json.loads(
    (GRAFANA / "dashboards" / "paylink.json").read_text(encoding="utf-8")
)
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
EXPRS = [t["expr"] for p in PANELS for t in p["targets"]]
ALL_EXPRS = "\n".join(EXPRS)


def test_dashboard_is_a_current_grafana_dashboard() -> None:
    assert 39 <= DASHBOARD["schemaVersion"] <= 41
    assert DASHBOARD["uid"]
    assert DASHBOARD["title"] == "paylink"


def test_panel_ids_are_unique_and_panels_fit_the_grid() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    cells: set[tuple[int, int]] = set()

    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, f"panel {panel['title']!r} overlaps another"
        cells |= area


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p["title"])
def test_panel_queries_the_prometheus_datasource_variable(panel: dict[str, Any]) -> None:
    assert panel["targets"]
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


@pytest.mark.parametrize("expr", EXPRS)
def test_query_reads_only_known_metrics(expr: str) -> None:
    names = metric_names(expr)

    assert names
    assert names <= known_metric_names(), names - known_metric_names()


def test_template_variables_read_only_known_metrics() -> None:
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            (metric,) = re.findall(r"label_values\((\w+),", variable["definition"])
            assert metric in known_metric_names()


@pytest.mark.parametrize(
    "needle",
    [
        "rabbitmq_detailed_queue_messages_ready{",
        "rabbitmq_detailed_queue_messages_unacked{",
        'rabbitmq_detailed_queue_messages{vhost="paylink", queue=~"($queue)\\\\.XQ"}',
        "rabbitmq_detailed_queue_consumers{",
        "rate(dramatiq_messages_total",
        "histogram_quantile(0.95, sum by (le, actor_name) (rate(dramatiq_message_duration_milliseconds_bucket",
        "rate(dramatiq_message_errors_total",
        "rate(dramatiq_message_retries_total",
        "rate(dramatiq_message_rejects_total",
        "rate(paylink_link_delivery_failures_total",
        "sum by (code) (rate(paylink_orders_rejected_total",
        "paylink_outbox_backlog",
        "paylink_outbox_oldest_unsent_age_seconds",
        "paylink_expiries_pending",
        "paylink_expiries_overdue",
        "sum by (currency) (rate(paylink_orders_created_total",
        "sum by (currency) (increase(paylink_captured_minor_units_total",
        "sum by (currency) (increase(paylink_refunded_minor_units_total",
    ],
)
def test_dashboard_shows(needle: str) -> None:
    assert needle in ALL_EXPRS


def test_grafana_provisions_the_datasource_and_the_dashboard_folder() -> None:
    (datasources,) = yaml_documents(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    (providers,) = yaml_documents(GRAFANA / "provisioning" / "dashboards" / "paylink.yaml")
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    mounts = dict(
        v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith(".")
    )

    (datasource,) = datasources["datasources"]
    assert (datasource["type"], datasource["url"]) == ("prometheus", "http://prometheus:9090")
    (provider,) = providers["providers"]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
