"""deploy/Dockerfile: a small multi-stage image from the lock file, run as non-root."""

from __future__ import annotations

import json
import re
import tomllib

from deploy_contract import DEPLOY, PORTS, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL", re.IGNORECASE)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


INSTRUCTIONS = instructions(DOCKERFILE)


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in INSTRUCTIONS:
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


FINAL = stages()[-1]


def final(name: str) -> list[str]:
    return [args for instruction, args in FINAL if instruction == name]


def env_names(args: str) -> list[str]:
    return re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args)


def test_image_is_built_in_stages_from_python_3_11_slim() -> None:
    (base,) = [a for i, a in INSTRUCTIONS if i == "ARG" and a.startswith("PYTHON_IMAGE=")]

    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base)
    assert [a.split()[0] for i, a in INSTRUCTIONS if i == "FROM"] == ["${PYTHON_IMAGE}"] * 2


def test_dependencies_come_only_from_the_lock_file_without_dev_tools() -> None:
    syncs = [a for i, a in INSTRUCTIONS if i == "RUN" and "uv sync" in a]

    assert syncs
    assert all("--frozen" in a and "--no-dev" in a for a in syncs)
    assert "uv sync" not in " ".join(final("RUN"))


def test_final_stage_copies_only_the_virtualenv_from_the_build() -> None:
    copies = final("COPY")

    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_build_copies_every_package_the_wheel_contains() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {a.split()[0] for i, a in stages()[0] if i == "COPY" and not a.startswith("--")}

    assert set(packages) <= copied


def test_process_runs_as_a_non_root_user() -> None:
    (user,) = final("USER")

    assert user.split(":")[0] not in {"root", "0"}


def test_no_add_of_remote_urls_and_no_secret_in_the_image() -> None:
    for instruction, args in INSTRUCTIONS:
        if instruction == "ADD":
            assert not re.search(r"https?://|git@", args)
        if instruction in {"ENV", "ARG"}:
            names = env_names(args) or [args.split("=")[0].split()[0]]
            assert not any(SECRET_NAME.search(name) for name in names), args


def test_entrypoint_is_the_paylink_command_and_defaults_to_a_worker() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (command,) = final("CMD")

    assert json.loads(entrypoint) == ["paylink"]
    assert json.loads(command) == ["worker"]
    assert final("STOPSIGNAL") == ["SIGTERM"]


def test_healthcheck_asks_the_metrics_port_by_default() -> None:
    (healthcheck,) = final("HEALTHCHECK")
    (env,) = [a for a in final("ENV") if "PAYLINK_HEALTHCHECK_URL" in a]

    assert "PAYLINK_HEALTHCHECK_URL" in healthcheck
    assert f"PAYLINK_HEALTHCHECK_URL=http://127.0.0.1:{PORTS['worker']}/readyz" in env
    assert {str(port) for port in PORTS.values()} <= set(final("EXPOSE")[0].split())


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    text = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    rules = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    copied = {
        source.rstrip("/")
        for instruction, args in stages()[0]
        if instruction == "COPY" and not args.startswith("--")
        for source in args.split()[:-1]
    }

    assert rules[0] == "*"
    assert {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")} == copied
