"""Compose and Kubernetes run one relay per outbox partition plus a standby.

With fewer relays than partitions a partition waited for a relay that never came
(compose ran one relay with two partitions: half the links were never sent); the
relays now adopt such a partition, but one per partition is what keeps the
throughput, and the spare is what makes failover take seconds.
"""

from __future__ import annotations

from typing import Any

from deploy_contract import DEPLOY, yaml_documents

(COMPOSE,) = yaml_documents(DEPLOY / "compose.yaml")
K8S = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml_documents(path)]


def _k8s(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in K8S if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_compose_runs_a_relay_per_partition_and_a_standby() -> None:
    relay = COMPOSE["services"]["relay"]
    partitions = int(relay["environment"]["PAYLINK_RELAY_PARTITIONS"])

    assert relay["command"] == ["relay", "--claim-partition"]
    assert relay["deploy"]["replicas"] == partitions + 1


def test_kubernetes_runs_a_relay_per_partition_and_a_standby() -> None:
    partitions = int(_k8s("ConfigMap", "paylink-config")["data"]["PAYLINK_RELAY_PARTITIONS"])
    relay = _k8s("Deployment", "paylink-relay")
    (container,) = relay["spec"]["template"]["spec"]["containers"]

    assert container["args"] == ["relay", "--claim-partition"]
    assert relay["spec"]["replicas"] == partitions + 1


def test_every_relay_reads_the_same_partition_count() -> None:
    relay = _k8s("Deployment", "paylink-relay")
    (container,) = relay["spec"]["template"]["spec"]["containers"]
    own = {e["name"] for e in container.get("env", [])}

    assert {"configMapRef": {"name": "paylink-config"}} in container["envFrom"]
    assert "PAYLINK_RELAY_PARTITIONS" not in own  # one value, in the ConfigMap
