"""Command-line tools some tests run (Debian package `prometheus`: promtool, prometheus).

Under CI=true a missing tool is a failure (a green CI must have run them); on a laptop
without it the test skips.
"""

from __future__ import annotations

import os
import shutil

import pytest


def required_tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} is not installed (apt-get install {package})"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message}; CI=true needs it")
    pytest.skip(message)
