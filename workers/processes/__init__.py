"""The long-running processes besides the workers: relay, scheduler, exporter, supervisor."""

from __future__ import annotations
