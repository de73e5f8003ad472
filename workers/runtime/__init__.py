"""The worker runtime: broker, consumer, actors, grouping, execution, composition root."""

from __future__ import annotations
