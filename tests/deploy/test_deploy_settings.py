"""The settings deploy/ and README set are the ones workers/settings.py reads, by name.

A variable the code does not read is silently ignored (compose and Kubernetes set
PAYLINK_RABBITMQ_API_URL while the exporter read another name, and unacked counts were
quietly missing); a setting README does not list is one operators cannot find.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy_contract import DEPLOY, ROOT, yaml_documents

from workers.settings import Settings

#: Every variable name the settings model reads.
SETTINGS = frozenset(
    field.alias for field in Settings.model_fields.values() if field.alias is not None
)
#: Variables paylink containers get that something other than the settings model reads.
OTHER_READERS = {
    "PAYLINK_HEALTHCHECK_URL": DEPLOY / "Dockerfile",  # the image's HEALTHCHECK
    "dramatiq_prom_db": DEPLOY / "Dockerfile",  # Dramatiq's metrics directory
}
#: Settings operators never set (tests and `paylink worker` set them), so README need not.
INTERNAL = frozenset({"PAYLINK_WORKER_METRICS", "SENDGRID_BASE_URL", "TWILIO_BASE_URL"})


def _compose_names() -> dict[str, set[str]]:
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    return {
        f"compose service {name}": set(service.get("environment") or {})
        for name, service in compose["services"].items()
        if "build" in service
    }


def _kubernetes_names() -> dict[str, set[str]]:
    docs = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml_documents(path)]
    found: dict[str, set[str]] = {}
    for doc in docs:
        where = f"{doc['kind']} {doc.get('metadata', {}).get('name')}"
        if doc["kind"] == "ConfigMap":
            found[where] = set(doc["data"])
        elif doc["kind"] == "Secret":
            found[where] = set(doc["stringData"])
        elif doc["kind"] in ("Deployment", "Job"):
            spec: dict[str, Any] = doc["spec"]["template"]["spec"]
            found[where] = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    return found


def _readme_names() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {
        name
        for row in rows
        for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", row.split("|")[1])
    }


@pytest.mark.parametrize(
    ("where", "names"),
    sorted({**_compose_names(), **_kubernetes_names()}.items()),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_deploy_sets_only_variables_paylink_reads(where: str, names: set[str]) -> None:
    unknown = names - SETTINGS - set(OTHER_READERS)
    assert not unknown, f"{where} sets {sorted(unknown)}, which nothing in paylink reads"


def test_variables_read_outside_the_settings_model_are_read_there() -> None:
    for name, reader in OTHER_READERS.items():
        assert name in reader.read_text(encoding="utf-8"), f"{reader} does not read {name}"


def test_readme_documents_every_setting_by_its_name() -> None:
    documented = _readme_names()

    assert not (SETTINGS - INTERNAL) - documented, "settings missing from README"
    assert not documented - SETTINGS, "README documents variables paylink does not read"


def test_the_check_catches_a_renamed_variable() -> None:
    # Given the name the exporter once read instead of the one deploy/ sets
    renamed = {"PAYLINK_RABBITMQ_MANAGEMENT_URL"}
    # Then it is not a setting, so a deploy file setting it would fail the check above
    assert renamed - SETTINGS == renamed
    assert "PAYLINK_RABBITMQ_API_URL" in SETTINGS
