"""JSON Schema export of every command and event (the AsyncAPI document builds on it)."""

from __future__ import annotations

from typing import Any

from messages.events import EVENT_TYPES
from messages.routing import ROUTES


def command_schemas() -> dict[str, dict[str, Any]]:
    return {r.command_type: r.model.model_json_schema(mode="validation") for r in ROUTES}


def event_schemas() -> dict[str, dict[str, Any]]:
    return {
        cls.__name__: cls.model_json_schema(mode="serialization") for cls in EVENT_TYPES.values()
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    return {**command_schemas(), **event_schemas()}
