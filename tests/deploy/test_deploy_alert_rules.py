"""The alert rules, evaluated: `promtool test rules` on tests/deploy/alerts.test.yml.

Every alert of deploy/prometheus/alerts.yml has a case where it fires and one where it
stays quiet. promtool (Debian package `prometheus`, installed by .ci/run) is required
under CI=true; on a laptop without it these tests skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_contract import DEPLOY, yaml_documents
from tools import required_tool

ALERTS_FILE = DEPLOY / "prometheus" / "alerts.yml"
TESTS_FILE = Path(__file__).resolve().parent / "alerts.test.yml"
(ALERTS,) = yaml_documents(ALERTS_FILE)
(TESTS,) = yaml_documents(TESTS_FILE)
ALERT_NAMES = [rule["alert"] for group in ALERTS["groups"] for rule in group["rules"]]


def promtool() -> str:
    return required_tool("promtool", "prometheus")


def _cases() -> list[tuple[str, bool]]:
    """(alert, fires?) for every alert_rule_test in the test file."""
    return [
        (case["alertname"], bool(case.get("exp_alerts")))
        for test in TESTS["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def _without_annotations(alerts: dict[str, Any]) -> dict[str, Any]:
    """The rules with expression, `for` and labels as deployed, annotations left out:
    promtool compares rendered annotations verbatim, and `promtool check rules` checks
    their templates."""
    return {
        "groups": [
            {
                **group,
                "rules": [
                    {k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]
                ],
            }
            for group in alerts["groups"]
        ]
    }


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet(alert: str) -> None:
    outcomes = {fires for name, fires in _cases() if name == alert}

    assert outcomes == {True, False}


def test_the_cases_name_only_alerts_that_exist() -> None:
    assert {name for name, _ in _cases()} <= set(ALERT_NAMES)


def test_promtool_passes_every_case(tmp_path: Path) -> None:
    # Given the deployed rules beside the test file, as its rule_files names them
    binary = promtool()
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(_without_annotations(ALERTS)))
    shutil.copy(TESTS_FILE, tmp_path / TESTS_FILE.name)
    # When promtool evaluates every case
    result = subprocess.run(
        [binary, "test", "rules", TESTS_FILE.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    # Then each alert fired or stayed quiet as the case says
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_a_case_the_rules_do_not_meet(tmp_path: Path) -> None:
    """The harness can fail: a rule whose threshold moved breaks its case."""
    binary = promtool()
    broken = _without_annotations(ALERTS)
    for group in broken["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "PaylinkOutboxLag":
                rule["expr"] = rule["expr"].replace("> 60", "> 600")
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(broken))
    shutil.copy(TESTS_FILE, tmp_path / TESTS_FILE.name)

    result = subprocess.run(
        [binary, "test", "rules", TESTS_FILE.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "PaylinkOutboxLag" in result.stdout + result.stderr


def test_promtool_accepts_the_deployed_config_and_rules_with_their_annotations() -> None:
    binary = promtool()
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        result = subprocess.run(
            [binary, *args], cwd=ALERTS_FILE.parent, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
