"""deploy/k8s: manifests valid for Kubernetes 1.31 (offline schemas) and KEDA, wired together.

kubernetes-validate ships the Kubernetes OpenAPI schemas as JSON Schema; strict mode
forbids unknown fields, so a misspelled key fails here instead of being dropped by the
API server. KEDA's kinds are checked against our own schemas in tests/deploy/schemas.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from deploy_contract import (
    ACTOR_TIME_LIMIT_SECONDS,
    COMMAND_QUEUES,
    DEPLOY,
    PORTS,
    SCHEMAS,
    WORKER_GROUPS,
    yaml_documents,
)

#: A Kubernetes version kubernetes-validate ships schemas for; KEDA 2.16 supports it.
KUBERNETES_VERSION = "1.31"
K8S = DEPLOY / "k8s"
KEDA_SCHEMAS = {
    "ScaledObject": "keda-scaledobject.schema.json",
    "TriggerAuthentication": "keda-triggerauthentication.schema.json",
}
NOT_KUBERNETES = {"Kustomization", *KEDA_SCHEMAS}

DOCUMENTS: list[tuple[Path, dict[str, Any]]] = [
    (path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml_documents(path)
]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == kind}


DEPLOYMENTS = objects("Deployment")
WORKERS = {f"paylink-worker-{group}": queues for group, queues in WORKER_GROUPS.items()}
OTHER_PROCESSES = {f"paylink-{p}": p for p in ("relay", "scheduler", "exporter")}
SECRET_KEYS = {name: set(s["stringData"]) for name, s in objects("Secret").items()}


def pod_spec(name: str) -> dict[str, Any]:
    return DEPLOYMENTS[name]["spec"]["template"]["spec"]


def container(name: str) -> dict[str, Any]:
    (only,) = pod_spec(name)["containers"]
    return only


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def pod_templates() -> list[Any]:
    return [
        pytest.param(doc["metadata"]["name"], doc["spec"]["template"], id=doc["metadata"]["name"])
        for _, doc in DOCUMENTS
        if doc["kind"] in {"Deployment", "Job"}
    ]


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in DOCUMENTS if doc["kind"] not in NOT_KUBERNETES],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_manifest_is_valid_for_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelled_field() -> None:
    broken = copy.deepcopy(DEPLOYMENTS["paylink-relay"])
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 30

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in DOCUMENTS if doc["kind"] in KEDA_SCHEMAS],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_keda_object_matches_its_schema(doc: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / KEDA_SCHEMAS[doc["kind"]]).read_text(encoding="utf-8"))

    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def test_everything_lives_in_the_paylink_namespace() -> None:
    for path, doc in DOCUMENTS:
        if doc["kind"] not in {"Namespace", "Kustomization"}:
            assert doc["metadata"]["namespace"] == "paylink", path.name


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == manifests - {"secret.template.yaml"}
    assert [i["name"] for i in kustomization["images"]] == ["paylink"]


def test_secret_template_holds_no_value() -> None:
    secrets = objects("Secret")

    assert secrets
    for secret in secrets.values():
        assert "data" not in secret
        assert all(value == "" for value in secret["stringData"].values())


def test_one_deployment_per_worker_group_and_process() -> None:
    assert set(DEPLOYMENTS) == set(WORKERS) | set(OTHER_PROCESSES) | {"paylink-web"}


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_worker_deployment_consumes_its_group_of_queues(name: str) -> None:
    args = container(name)["args"]

    assert args[0] == "worker"
    assert int(option(args, "--processes")) >= 1
    assert int(option(args, "--threads")) >= 1
    assert tuple(option(args, "--queues").split(",")) == WORKERS[name]
    assert "replicas" not in DEPLOYMENTS[name]["spec"], "KEDA owns the replica count"


def test_worker_deployments_cover_every_command_queue_exactly_once() -> None:
    queues = [q for name in WORKERS for q in option(container(name)["args"], "--queues").split(",")]

    assert sorted(queues) == sorted(COMMAND_QUEUES)


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_worker_grace_period_outlasts_the_longest_actor(name: str) -> None:
    assert pod_spec(name)["terminationGracePeriodSeconds"] >= 90 > ACTOR_TIME_LIMIT_SECONDS


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_worker_probes_ask_whether_every_process_booted_and_beats(name: str) -> None:
    worker = container(name)

    assert worker["ports"] == [{"name": "metrics", "containerPort": PORTS["worker"]}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert worker[probe]["httpGet"] == {"path": "/readyz", "port": "metrics"}, probe


@pytest.mark.parametrize(("name", "process"), sorted(OTHER_PROCESSES.items()))
def test_process_probes_ask_healthz_and_readyz_on_its_port(name: str, process: str) -> None:
    main = container(name)

    assert main["args"][0] == process
    assert main["ports"] == [{"name": "metrics", "containerPort": PORTS[process]}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_relay_and_scheduler_run_several_replicas_and_say_why_it_is_safe() -> None:
    for name in ("relay", "scheduler"):
        assert DEPLOYMENTS[f"paylink-{name}"]["spec"]["replicas"] >= 2
        assert "SKIP LOCKED" in (K8S / f"{name}.yaml").read_text(encoding="utf-8")
    assert DEPLOYMENTS["paylink-exporter"]["spec"]["replicas"] == 1


@pytest.mark.parametrize(("name", "template"), pod_templates())
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(
    name: str, template: dict[str, Any]
) -> None:
    spec = template["spec"]

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    for c in spec["containers"]:
        context = c["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}


@pytest.mark.parametrize(("name", "template"), pod_templates())
def test_pods_reference_only_defined_config_and_secrets(
    name: str, template: dict[str, Any]
) -> None:
    config_maps = set(objects("ConfigMap"))
    for c in template["spec"]["containers"]:
        assert {s["configMapRef"]["name"] for s in c.get("envFrom", [])} <= config_maps
        for variable in c.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in SECRET_KEYS[ref["name"]], (name, variable["name"])
            else:
                assert "PASSWORD" not in variable["name"], "a password must come from a Secret"


def test_provider_secrets_reach_only_the_notify_workers() -> None:
    readers = {
        name
        for name, doc in DEPLOYMENTS.items()
        for c in doc["spec"]["template"]["spec"]["containers"]
        for v in c.get("env", [])
        if v.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "paylink-providers"
    }

    assert readers == {"paylink-worker-notify"}


def test_migrate_job_runs_paylink_migrate_once() -> None:
    (job,) = objects("Job").values()
    (main,) = job["spec"]["template"]["spec"]["containers"]

    assert main["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_each_worker_group_has_a_disruption_budget_over_its_pods(name: str) -> None:
    budget = objects("PodDisruptionBudget")[name]
    pod_labels = DEPLOYMENTS[name]["spec"]["template"]["metadata"]["labels"]

    assert budget["spec"]["maxUnavailable"] >= 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_keda_scales_each_worker_group_on_its_own_queues(name: str) -> None:
    scaled = objects("ScaledObject")[name]["spec"]
    auth = objects("TriggerAuthentication")

    assert scaled["scaleTargetRef"]["kind"] == "Deployment"
    assert scaled["scaleTargetRef"]["name"] == name
    assert 1 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    assert tuple(t["metadata"]["queueName"] for t in scaled["triggers"]) == WORKERS[name]
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["metadata"]["protocol"] == "amqp"
        assert trigger["metadata"]["vhostName"] == "paylink"
        assert trigger["authenticationRef"]["name"] in auth


def test_every_scaled_object_targets_an_existing_deployment_and_queue() -> None:
    for scaled in objects("ScaledObject").values():
        assert scaled["spec"]["scaleTargetRef"]["name"] in DEPLOYMENTS
        assert {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"]} <= set(
            COMMAND_QUEUES
        )


def test_keda_reads_the_broker_as_the_monitor_user_from_a_secret() -> None:
    for auth in objects("TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in SECRET_KEYS[ref["name"]]
            assert ref["name"] == "paylink-monitor"


def test_metrics_services_select_running_pods_on_their_named_port() -> None:
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in DEPLOYMENTS.values()]
    scraped = {
        name: service
        for name, service in objects("Service").items()
        if service["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"
    }
    assert set(objects("Service")) - set(scraped) == {"paylink-web"}, "only customers' port"
    for name, service in scraped.items():
        selector = service["spec"]["selector"]
        (port,) = service["spec"]["ports"]
        assert any(selector.items() <= pod.items() for pod in labels), name
        assert port["targetPort"] == "metrics"
        assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port["port"])
        assert port["port"] in PORTS.values()


def test_config_map_asks_for_quorum_queues_like_the_definitions() -> None:
    (config,) = objects("ConfigMap").values()

    assert config["data"]["PAYLINK_QUORUM_QUEUES"] == "true"
