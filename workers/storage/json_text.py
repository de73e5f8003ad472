"""A text value of a JSON column, in SQL that PostgreSQL and SQLite both run.

``payload ->> 'key'`` on PostgreSQL, ``json_extract(payload, '$.key')`` on SQLite: the
exporter's business counters read event payloads this way, in the database, instead of
loading every event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String


class JsonText(FunctionElement[str]):
    """``payload ->> key`` on PostgreSQL, ``json_extract(payload, '$.key')`` on SQLite."""

    type = String()
    inherit_cache = True
    name = "json_text"


def json_text(column: Any, key: str) -> JsonText:
    """The text at ``key`` of the JSON in ``column`` (a plain identifier, never user input)."""
    if not key.isidentifier():
        raise ValueError(f"not a JSON key paylink uses: {key!r}")
    return JsonText(column, literal_column(key))


def _parts(element: JsonText, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, key = list(element.clauses)
    return compiler.process(column, **kw), key.name


@compiles(JsonText, "postgresql")
def _json_text_postgresql(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _parts(element, compiler, **kw)
    return f"(CAST({column} AS json) ->> '{key}')"


@compiles(JsonText)
def _json_text_sqlite(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _parts(element, compiler, **kw)
    return f"json_extract({column}, '$.{key}')"
