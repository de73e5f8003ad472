"""Logging, redaction and health endpoints shared by every process."""

from __future__ import annotations
