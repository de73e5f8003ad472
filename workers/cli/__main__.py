"""`python -m workers.cli`: the console script `paylink`, for child processes."""

from __future__ import annotations

from workers.cli.main import app

app()
