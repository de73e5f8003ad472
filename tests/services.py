"""Reaching the real services: skip on a laptop without them, fail under CI=true."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def missing(message: str) -> NoReturn:
    """Skip on a laptop without ``message``'s service; fail under CI=true."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message} (CI=true: integration tests must run against real services)")
    pytest.skip(message)


def require(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        missing(f"{name} is not reachable on {host}:{port}")


def require_rabbitmq() -> None:
    require("RabbitMQ", "127.0.0.1", 5672)


def require_postgres() -> None:
    require("PostgreSQL", "127.0.0.1", 5432)
