"""The wire contract: commands, events, routing and parsing. Imports pydantic only."""

from __future__ import annotations
