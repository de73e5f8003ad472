"""deploy/compose.yaml: valid Compose, the fixed processes and queues, no literal secrets."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from deploy_contract import (
    ACTOR_TIME_LIMIT_SECONDS,
    COMMAND_QUEUES,
    DEPLOY,
    PORTS,
    SCHEMAS,
    WORKER_GROUPS,
    parse_duration_seconds,
    yaml_documents,
)

COMPOSE_FILE = DEPLOY / "compose.yaml"
(COMPOSE,) = yaml_documents(COMPOSE_FILE)
SERVICES: dict[str, Any] = COMPOSE["services"]
PAYLINK_SERVICES = {name for name, s in SERVICES.items() if "build" in s}
WORKER_SERVICES = {f"worker-{group}": queues for group, queues in WORKER_GROUPS.items()}
#: An environment value that is only a reference, e.g. ${SENDGRID_API_KEY:-}.
REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*(?::?[-?][^}]*)?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|_SID$")


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))

    jsonschema.validate(COMPOSE, schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_rejects_a_misspelled_service_key() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    broken = {"services": {"relay": {"image": "paylink", "stop_grace_priod": "90s"}}}

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_compose_runs_every_process_of_the_architecture() -> None:
    expected = {"rabbitmq", "postgres", "migrate", "relay", "scheduler", "exporter", "web"}
    expected |= {"prometheus", "grafana"} | set(WORKER_SERVICES)

    paylink = set(WORKER_SERVICES) | {"migrate", "relay", "scheduler", "exporter", "web"}

    assert set(SERVICES) == expected
    assert {name for name, s in SERVICES.items() if "build" in s} == paylink


def test_paylink_services_run_the_image_built_from_the_dockerfile() -> None:
    for name in PAYLINK_SERVICES:
        build = SERVICES[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).is_file()
        assert SERVICES[name]["command"][0] in {
            "worker",
            "relay",
            "scheduler",
            "exporter",
            "web",
            "migrate",
        }


@pytest.mark.parametrize("service", sorted(WORKER_SERVICES))
def test_worker_group_consumes_its_queues_with_processes_and_threads(service: str) -> None:
    command = SERVICES[service]["command"]

    assert command[0] == "worker"
    assert int(option(command, "--processes")) >= 1
    assert int(option(command, "--threads")) >= 1
    assert tuple(option(command, "--queues").split(",")) == WORKER_SERVICES[service]


def test_worker_groups_cover_every_command_queue_exactly_once() -> None:
    queues = [
        q for s in WORKER_SERVICES for q in option(SERVICES[s]["command"], "--queues").split(",")
    ]

    assert sorted(queues) == sorted(COMMAND_QUEUES)


@pytest.mark.parametrize("service", sorted(WORKER_SERVICES))
def test_stopping_a_worker_waits_longer_than_the_longest_actor(service: str) -> None:
    grace = parse_duration_seconds(SERVICES[service]["stop_grace_period"])

    assert grace > ACTOR_TIME_LIMIT_SECONDS
    assert SERVICES[service].get("stop_signal", "SIGTERM") == "SIGTERM"


def test_migrate_runs_once_after_postgres_is_healthy() -> None:
    migrate = SERVICES["migrate"]

    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


@pytest.mark.parametrize(
    "service", ["relay", "scheduler", "exporter", "web", *sorted(WORKER_SERVICES)]
)
def test_long_running_services_start_after_migrations_and_a_healthy_broker(service: str) -> None:
    assert SERVICES[service]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "rabbitmq": {"condition": "service_healthy"},
    }


def test_infrastructure_services_have_healthchecks() -> None:
    for name in ("rabbitmq", "postgres"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD-SHELL"


@pytest.mark.parametrize(
    ("service", "process"),
    [(s, "worker") for s in sorted(WORKER_SERVICES)]
    + [("relay", "relay"), ("scheduler", "scheduler"), ("exporter", "exporter"), ("web", "web")],
)
def test_image_healthcheck_asks_the_process_on_its_fixed_port(service: str, process: str) -> None:
    url = environment(service)["PAYLINK_HEALTHCHECK_URL"]

    path = "readyz" if process == "worker" else "healthz"
    assert url == f"http://127.0.0.1:{PORTS[process]}/{path}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_secrets_are_only_referenced_from_the_environment(service: str) -> None:
    for key, value in environment(service).items():
        if SECRET_NAME.search(key):
            assert REFERENCE.fullmatch(value), f"{service}: {key} is not a ${{...}} reference"
        for password in re.findall(r"://[^:/@]+:([^@]+)@", value):
            assert REFERENCE.fullmatch(password), f"{service}: {key} has a literal password"


def test_provider_keys_reach_only_the_notify_workers() -> None:
    provider_keys = {"SENDGRID_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}
    holders = {name for name in SERVICES if provider_keys & set(environment(name))}

    assert holders == {"worker-notify"}


def test_every_required_variable_is_listed_in_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", text))
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))

    assert required
    assert required <= listed


def test_paylink_processes_declare_quorum_queues_like_the_definitions() -> None:
    for name in PAYLINK_SERVICES - {"migrate", "exporter"}:
        assert environment(name)["PAYLINK_QUORUM_QUEUES"] == "true"


def test_paylink_containers_are_locked_down() -> None:
    for name in PAYLINK_SERVICES:
        service = SERVICES[name]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_bind_mounted_files_exist_in_the_repository(service: str) -> None:
    for volume in SERVICES[service].get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("."):
            assert (COMPOSE_FILE.parent / source).exists(), volume


def test_rabbitmq_gets_plugins_config_and_definitions() -> None:
    targets = {v.split(":")[1] for v in SERVICES["rabbitmq"]["volumes"]}

    assert {
        "/etc/rabbitmq/enabled_plugins",
        "/etc/rabbitmq/definitions.json",
        "/etc/rabbitmq/conf.d/20-paylink.conf",
    } <= targets
    assert SERVICES["rabbitmq"]["image"].startswith(("rabbitmq:3.13-management", "rabbitmq:4."))


def test_published_ports_listen_on_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
