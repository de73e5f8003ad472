"""Every configuration file under deploy/ parses in the format its tool reads."""

from __future__ import annotations

import json
import re

import pytest
from deploy_contract import DEPLOY, deploy_files, yaml_documents

YAML_FILES = list(deploy_files(".yaml", ".yml"))
JSON_FILES = list(deploy_files(".json"))


def test_deploy_has_the_files_ops_run() -> None:
    expected = {
        "Dockerfile",
        "compose.yaml",
        ".env.example",
        "rabbitmq/definitions.json",
        "rabbitmq/rabbitmq.conf",
        "rabbitmq/enabled_plugins",
        "rabbitmq/compose-entrypoint.sh",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/dashboards/paylink.json",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/paylink.yaml",
        "k8s/kustomization.yaml",
    }
    missing = {name for name in expected if not (DEPLOY / name).is_file()}
    assert not missing


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_file_loads_with_at_least_one_document(path) -> None:
    documents = yaml_documents(path)

    assert documents
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_json_file_loads_as_an_object(path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_rabbitmq_conf_is_key_equals_value_lines() -> None:
    lines = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8").splitlines()
    settings = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]

    assert settings
    for line in settings:
        assert re.fullmatch(r"[a-z0-9_.]+ = \S.*", line), line


def test_enabled_plugins_is_an_erlang_list_with_management_and_prometheus() -> None:
    text = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text(encoding="utf-8").strip()

    match = re.fullmatch(r"\[([a-z_]+(?:,\s*[a-z_]+)*)\]\.", text)
    assert match, text
    plugins = {p.strip() for p in match.group(1).split(",")}
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= plugins


def test_env_example_holds_no_secret_values() -> None:
    lines = (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]

    for key, value in pairs:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key)
        assert value in {"", "CHANGE_ME", "local"}, f"{key} has a value in .env.example"


def test_env_file_with_real_values_is_ignored_by_git() -> None:
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
