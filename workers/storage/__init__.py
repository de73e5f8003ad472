"""SQLAlchemy persistence: tables, repositories and the unit of work behind domain ports."""

from __future__ import annotations
