"""deploy/: the link page (paylink web) in compose and Kubernetes, wired like `paylink web`."""

from __future__ import annotations

from typing import Any

from deploy_contract import DEPLOY, PORTS, yaml_documents

(COMPOSE,) = yaml_documents(DEPLOY / "compose.yaml")
K8S: dict[tuple[str, str], dict[str, Any]] = {
    (doc["kind"], doc["metadata"]["name"]): doc
    for doc in yaml_documents(DEPLOY / "k8s" / "web.yaml")
}
#: Where `paylink web` serves the page (workers/settings.py: PAYLINK_WEB_PORT's default).
PAGE_PORT = 8080


def test_compose_serves_the_page_on_loopback_and_links_point_there() -> None:
    web = COMPOSE["services"]["web"]

    assert web["command"] == ["web"]
    assert web["ports"] == [f"127.0.0.1:{PAGE_PORT}:{PAGE_PORT}"]
    assert web["environment"]["PAYLINK_WEB_HOST"] == "0.0.0.0"
    assert web["environment"]["PAYLINK_WEB_SECRET"].startswith("${PAYLINK_WEB_SECRET:?")
    assert web["environment"]["BROKER_URL"].startswith("amqp://paylink-checkout:")
    base = COMPOSE["x-paylink-env"]["PAYLINK_CHECKOUT_BASE_URL"]
    assert base.endswith(f":-http://127.0.0.1:{PAGE_PORT}/l}}")


def test_kubernetes_runs_replicas_as_the_checkout_broker_user_with_a_shared_form_key() -> None:
    deployment = K8S[("Deployment", "paylink-web")]
    (web,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in web["env"]}

    assert web["args"] == ["web"]
    assert deployment["spec"]["replicas"] >= 2
    assert env["PAYLINK_WEB_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "paylink-web"
    assert env["BROKER_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "paylink-web",
        "key": "BROKER_URL",
    }
    assert "paylink-checkout" in (DEPLOY / "k8s" / "secret.template.yaml").read_text()
    assert env["PAYLINK_WEB_HOST"]["value"] == "0.0.0.0"
    assert web["ports"] == [
        {"name": "http", "containerPort": PAGE_PORT},
        {"name": "metrics", "containerPort": PORTS["web"]},
    ]
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_customers_reach_the_page_port_and_prometheus_only_the_health_port() -> None:
    page = K8S[("Service", "paylink-web")]
    metrics = K8S[("Service", "paylink-web-metrics")]

    assert [p["targetPort"] for p in page["spec"]["ports"]] == ["http"]
    assert "annotations" not in page["metadata"]
    assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"]
    assert metrics["metadata"]["annotations"]["prometheus.io/port"] == str(PORTS["web"])


def test_a_node_drain_leaves_a_replica_serving() -> None:
    budget = K8S[("PodDisruptionBudget", "paylink-web")]
    deployment = K8S[("Deployment", "paylink-web")]

    assert budget["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
