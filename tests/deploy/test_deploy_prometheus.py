"""deploy/prometheus: scrape targets on the fixed ports, alert rules on known metrics."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_contract import DEPLOY, PORTS, WORKER_GROUPS, yaml_documents
from known_metrics import known_metric_names
from promql_names import metric_names

PROMETHEUS_DIR = DEPLOY / "prometheus"
(CONFIG,) = yaml_documents(PROMETHEUS_DIR / "prometheus.yml")
(ALERTS,) = yaml_documents(PROMETHEUS_DIR / "alerts.yml")
RULES: list[dict[str, Any]] = [rule for group in ALERTS["groups"] for rule in group["rules"]]
JOBS = {job["job_name"]: job for job in CONFIG["scrape_configs"]}


def targets(job: dict[str, Any]) -> set[tuple[str, int]]:
    found = set()
    for sd in job.get("dns_sd_configs", []):
        found |= {(name, sd["port"]) for name in sd["names"]}
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            found.add((host, int(port)))
    return found


def test_workers_are_scraped_on_the_dramatiq_port_in_every_group() -> None:
    expected = {(f"worker-{group}", PORTS["worker"]) for group in WORKER_GROUPS}

    assert targets(JOBS["paylink-worker"]) == expected


@pytest.mark.parametrize("process", ["relay", "scheduler", "exporter"])
def test_process_is_scraped_on_its_fixed_port(process: str) -> None:
    assert targets(JOBS[f"paylink-{process}"]) == {(process, PORTS[process])}


def test_rabbitmq_node_metrics_come_from_the_endpoint_that_serves_its_alarms() -> None:
    assert targets(JOBS["rabbitmq"]) == {("rabbitmq", 15692)}
    assert JOBS["rabbitmq"]["metrics_path"] == "/metrics"
    assert "params" not in JOBS["rabbitmq"]


def test_rabbitmq_queues_are_scraped_per_queue_in_the_paylink_vhost() -> None:
    job = JOBS["rabbitmq-queues"]

    assert targets(job) == {("rabbitmq", 15692)}
    assert job["metrics_path"] == "/metrics/detailed"
    assert job["params"] == {
        "vhost": ["paylink"],
        "family": ["queue_coarse_metrics", "queue_consumer_count"],
    }


def test_alert_rule_file_is_loaded_from_beside_the_config() -> None:
    assert CONFIG["rule_files"] == ["alerts.yml"]


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in RULES]

    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
def test_alert_has_severity_summary_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["expr"].strip()
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["runbook"].strip()
    assert rule["for"]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
def test_alert_reads_only_known_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])

    assert names
    assert names <= known_metric_names(), names - known_metric_names()


@pytest.mark.parametrize(
    ("alert", "needle"),
    [
        ("PaylinkCommandQueueBacklog", "rabbitmq_detailed_queue_messages_ready{queue=~"),
        ("PaylinkDeadLetters", "rabbitmq_detailed_queue_messages{queue=~"),
        ("PaylinkBrokerResourceAlarm", "rabbitmq_alarms_memory_used_watermark"),
        ("PaylinkLinkDeliveryAuthRefused", 'paylink_link_delivery_failures_total{reason="auth"}'),
        ("PaylinkExporterSourceDown", "paylink_exporter_up"),
        ("PaylinkOutboxLag", "paylink_outbox_oldest_unsent_age_seconds) > 60"),
        ("PaylinkExpiriesOverdue", "paylink_expiries_overdue) > 0"),
        ("PaylinkLinkDeliveryFailures", "rate(paylink_link_delivery_failures_total"),
        ("PaylinkWorkerErrors", "rate(dramatiq_message_errors_total"),
    ],
)
def test_the_required_alerts_watch_what_they_are_named_for(alert: str, needle: str) -> None:
    (rule,) = [r for r in RULES if r["alert"] == alert]

    assert needle in rule["expr"]


def test_overdue_expiries_alert_after_five_minutes() -> None:
    (rule,) = [r for r in RULES if r["alert"] == "PaylinkExpiriesOverdue"]

    assert rule["for"] == "5m"
